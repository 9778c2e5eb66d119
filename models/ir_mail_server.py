import logging
import smtplib
import ssl

from odoo import api, fields, models, modules

_logger = logging.getLogger(__name__)


class DocumentSMTPError(smtplib.SMTPException):
    """A connection failure already explained in plain words."""


class UncertainDeliveryError(smtplib.SMTPException):
    """The connection broke while the server was taking the message: it may
    have been delivered, so it must not be sent again automatically."""


class DocumentSMTPMixin:
    """What Odoo's SMTP session does not keep: which recipients a server
    refused while accepting the message, and which failures are temporary."""

    def _init_document_state(self):
        self.refused_by_message = {}
        self.temporary_by_message = {}

    def data(self, msg):
        try:
            return super().data(msg)
        except (smtplib.SMTPServerDisconnected, OSError) as error:
            raise UncertainDeliveryError(
                "The connection broke while the server was receiving the message "
                f"({error}); it may have been delivered. Check with the recipient "
                "before sending it again."
            ) from error

    def quit(self):
        # after a broken session, closing is all that is left to do
        try:
            return super().quit()
        except (smtplib.SMTPServerDisconnected, OSError):
            self.close()

    def send_message(self, msg, from_addr=None, to_addrs=None, **kwargs):
        message_id = msg["Message-Id"]
        try:
            refused = super().send_message(msg, from_addr, to_addrs, **kwargs)
        except smtplib.SMTPRecipientsRefused as error:
            codes = [code for code, _msg in error.recipients.values()]
            self.temporary_by_message[message_id] = all(400 <= c < 500 for c in codes)
            raise
        except smtplib.SMTPResponseException as error:
            self.temporary_by_message[message_id] = 400 <= error.smtp_code < 500
            if error.smtp_code == 552:
                raise self._size_error(msg, error) from error
            raise
        self.refused_by_message[message_id] = refused
        return refused

    def _size_error(self, msg, error):
        size = len(msg.as_bytes()) / 1024**2
        limit = self.esmtp_features.get("size")
        limit_text = f"{int(limit) / 1024**2:.1f} MB" if limit else "unknown"
        return smtplib.SMTPResponseException(
            error.smtp_code,
            f"The email ({size:.1f} MB) is larger than the server accepts (size "
            f"limit {limit_text}): {error.smtp_error.decode(errors='replace')}",
        )


class DocumentSMTP(DocumentSMTPMixin, smtplib.SMTP):
    pass


class DocumentSMTPSSL(DocumentSMTPMixin, smtplib.SMTP_SSL):
    pass


class IrMailServer(models.Model):
    _inherit = "ir.mail_server"

    document_company_id = fields.Many2one(
        "res.company",
        string="Documents of Company",
        readonly=True,
        index="btree_not_null",
        help="The company whose SMTP settings drive this server.",
    )
    smtp_verify_certificate = fields.Boolean(
        "Verify the server's TLS certificate",
        default=True,
        help="Refuse servers whose certificate is self-signed, expired or for "
        "another host.",
    )
    smtp_timeout = fields.Integer(
        "Timeout (seconds)",
        default=30,
        help="How long to wait for each answer of the server.",
    )

    def connect(
        self,
        host=None,
        port=None,
        user=None,
        password=None,
        encryption=None,
        smtp_from=None,
        ssl_certificate=None,
        ssl_private_key=None,
        smtp_debug=False,
        mail_server_id=None,
        allow_archived=False,
    ):
        server = self.sudo().browse(mail_server_id or [])
        if (
            not server.document_company_id
            or not (server.active or allow_archived)
            or modules.module.current_test
        ):
            return super().connect(
                host=host,
                port=port,
                user=user,
                password=password,
                encryption=encryption,
                smtp_from=smtp_from,
                ssl_certificate=ssl_certificate,
                ssl_private_key=ssl_private_key,
                smtp_debug=smtp_debug,
                mail_server_id=mail_server_id,
                allow_archived=allow_archived,
            )
        return server._document_connect(smtp_from)

    def _document_ssl_context(self):
        if self.smtp_verify_certificate:
            return ssl.create_default_context()
        return ssl._create_unverified_context()

    def _document_connect(self, smtp_from=None):
        """A session with a verified certificate and a bounded wait, which
        Odoo's own connect() does not offer."""
        self.ensure_one()
        context = self._document_ssl_context()
        timeout = self.smtp_timeout or 30
        smtp = None
        try:
            if self.smtp_encryption == "ssl":
                smtp = DocumentSMTPSSL(
                    self.smtp_host, self.smtp_port, timeout=timeout, context=context
                )
            else:
                smtp = DocumentSMTP(self.smtp_host, self.smtp_port, timeout=timeout)
            if self.smtp_encryption == "starttls":
                smtp.starttls(context=context)
            if self.smtp_user:
                self._smtp_login(smtp, self.smtp_user, self.smtp_pass or "")
            smtp.ehlo_or_helo_if_needed()
        except (OSError, smtplib.SMTPException) as error:
            if smtp:
                smtp.close()
            explained = self.document_company_id._document_smtp_explain(error)
            raise DocumentSMTPError(explained) from error
        smtp._init_document_state()
        smtp.from_filter = self.from_filter
        smtp.smtp_from = smtp_from
        return smtp

    @api.model
    def send_email(self, message, *args, smtp_session=None, **kwargs):
        if isinstance(smtp_session, DocumentSMTPMixin):
            self._document_mark_in_flight(
                message["Message-Id"],
                commit=self.env.context.get("document_email_auto_commit"),
            )
        return super().send_email(message, *args, smtp_session=smtp_session, **kwargs)

    def _document_mark_in_flight(self, message_id, commit=False):
        """Before a message goes to the server, write that it is being sent
        (Odoo keeps that write in memory until later): another process sending
        the same email now waits or fails here instead of sending it too. The
        queue (auto-commit) also commits it: a process killed now leaves the
        email failed with this reason instead of sending it again."""
        mail = self.env["mail.mail"].sudo().search([("message_id", "=", message_id)])
        mail.failure_reason = self.env._(
            "Sending was interrupted: the email may have been delivered. Check with "
            "the recipient before sending it again."
        )
        mail.flush_recordset(["state", "failure_reason"])
        if commit:
            self.env.cr.commit()  # pylint: disable=invalid-commit
