import logging
import smtplib
import socket
import ssl

from OpenSSL.SSL import Error as OpenSSLError

from odoo import api, fields, models
from odoo.exceptions import UserError, ValidationError
from odoo.tools import email_normalize

from .ir_mail_server import DocumentSMTPError

_logger = logging.getLogger(__name__)

SMTP_FIELDS = (
    "document_smtp_use_default",
    "document_smtp_host",
    "document_smtp_port",
    "document_smtp_authentication",
    "document_smtp_user",
    "document_smtp_pass",
    "document_smtp_encryption",
    "document_smtp_verify_certificate",
    "document_smtp_max_per_connection",
    "document_smtp_max_per_minute",
)


class ResCompany(models.Model):
    _inherit = "res.company"

    # admin-only like the account and password: whoever may change them may
    # send the password to any host
    document_smtp_use_default = fields.Boolean(
        string="Use the default outgoing mail service",
        default=True,
        groups="base.group_system",
        help="The company has no server of its own: Odoo's usual outgoing "
        "server selection applies.",
    )
    document_smtp_host = fields.Char(string="SMTP Server", groups="base.group_system")
    document_smtp_port = fields.Integer(
        string="SMTP Port", default=587, groups="base.group_system"
    )
    document_smtp_authentication = fields.Boolean(
        string="Server requires authentication",
        default=True,
        groups="base.group_system",
    )
    document_smtp_user = fields.Char(string="SMTP Account", groups="base.group_system")
    document_smtp_pass = fields.Char(string="SMTP Password", groups="base.group_system")
    document_smtp_encryption = fields.Selection(
        [("none", "None"), ("starttls", "STARTTLS"), ("ssl", "SSL/TLS")],
        string="SMTP Encryption",
        default="starttls",
        required=True,
        groups="base.group_system",
    )
    document_smtp_verify_certificate = fields.Boolean(
        string="Verify the server's TLS certificate",
        default=True,
        groups="base.group_system",
        help="Refuse servers whose certificate is self-signed, expired or for "
        "another host. Turn off only for a server you trust.",
    )
    document_smtp_max_per_connection = fields.Integer(
        string="Maximum emails per connection",
        default=0,
        groups="base.group_system",
        help="The queue opens a new SMTP connection after this many emails "
        "(some providers allow 20). 0: no limit.",
    )
    document_smtp_max_per_minute = fields.Integer(
        string="Maximum emails per minute",
        default=0,
        groups="base.group_system",
        help="Emails beyond this number wait in the queue for the next minute. "
        "0: no limit.",
    )
    document_mail_server_id = fields.Many2one(
        "ir.mail_server",
        string="Outgoing Mail Server for Documents",
        readonly=True,
        copy=False,
        groups="base.group_system",
        help="Kept in sync with the company's SMTP settings.",
    )

    @api.constrains(*SMTP_FIELDS)
    def _check_document_smtp(self):
        for company in self.sudo():
            if company.document_smtp_use_default:
                continue
            if (
                min(
                    company.document_smtp_max_per_connection,
                    company.document_smtp_max_per_minute,
                )
                < 0
            ):
                raise ValidationError(
                    self.env._(
                        "%(company)s: the SMTP limits are numbers of emails, 0 for "
                        "no limit.",
                        company=company.name,
                    )
                )
            if not (company.document_smtp_host or "").strip():
                raise ValidationError(
                    self.env._(
                        "%(company)s: enter the SMTP server, or choose the default "
                        "outgoing mail service.",
                        company=company.name,
                    )
                )
            if not 1 <= company.document_smtp_port <= 65535:
                raise ValidationError(
                    self.env._(
                        "%(company)s: the SMTP port must be between 1 and 65535 "
                        "(usually 587 for STARTTLS or 465 for SSL/TLS).",
                        company=company.name,
                    )
                )
            if (
                company.document_smtp_authentication
                and not (company.document_smtp_user or "").strip()
            ):
                raise ValidationError(
                    self.env._(
                        "%(company)s: the server requires authentication, enter "
                        "the account.",
                        company=company.name,
                    )
                )

    @api.model_create_multi
    def create(self, vals_list):
        companies = super().create(vals_list)
        companies._sync_document_mail_server()
        return companies

    def write(self, vals):
        res = super().write(vals)
        if any(field in vals for field in SMTP_FIELDS + ("name", "email")):
            self._sync_document_mail_server()
        return res

    def _prepare_document_mail_server_values(self):
        self.ensure_one()
        user = (self.document_smtp_user or "").strip()
        authenticate = self.document_smtp_authentication
        return {
            "name": self.env._("%(company)s (documents)", company=self.name),
            "smtp_host": self.document_smtp_host.strip(),
            "smtp_port": self.document_smtp_port,
            "smtp_encryption": self.document_smtp_encryption,
            "smtp_verify_certificate": self.document_smtp_verify_certificate,
            "document_max_per_connection": self.document_smtp_max_per_connection,
            "document_max_per_minute": self.document_smtp_max_per_minute,
            "document_company_id": self.id,
            "smtp_authentication": "login",
            "smtp_user": user if authenticate else False,
            "smtp_pass": self.document_smtp_pass if authenticate else False,
            # the address the account sends as: any other sender is sent as
            # "Name" <account> (core's from_filter rule)
            "from_filter": email_normalize(user) or self.email or False,
            "sequence": 50,
            "active": True,
        }

    def _sync_document_mail_server(self):
        """Create, update or archive the company's own ir.mail_server."""
        for company in self.sudo():
            server = company.document_mail_server_id
            if company.document_smtp_use_default:
                if server.active:
                    server.active = False
                continue
            values = company._prepare_document_mail_server_values()
            if server:
                server.write(values)
            else:
                server = self.env["ir.mail_server"].sudo().create(values)
                company.document_mail_server_id = server

    def _get_document_mail_server(self):
        """The server documents of this company go through; empty means
        Odoo's default selection."""
        self.ensure_one()
        if self.sudo().document_smtp_use_default:
            return self.env["ir.mail_server"]
        return self.sudo().document_mail_server_id

    # ------------------------------------------------------------------
    # Connection test
    # ------------------------------------------------------------------

    def _document_smtp_connect(self):
        """An authenticated SMTP session with the company's saved settings."""
        self.ensure_one()
        server = self._get_document_mail_server()
        if server:
            return server.connect(mail_server_id=server.id)
        return self.env["ir.mail_server"].connect(smtp_from=self.email)

    def _document_smtp_test(self, email_to=None):
        """Open a session (and send a short email when email_to is given);
        raise a UserError in plain words on failure."""
        self.ensure_one()
        smtp = None
        try:
            smtp = self._document_smtp_connect()
            if email_to:
                self._document_smtp_send_test_email(smtp, email_to)
            else:
                smtp.noop()
        except UserError:
            raise
        except Exception as error:  # noqa: BLE001 - every failure is explained
            message = self._document_smtp_explain(error)
            _logger.info("SMTP test for company %s failed: %s", self.id, message)
            raise UserError(message) from None
        finally:
            if smtp:
                try:
                    smtp.quit()
                except (smtplib.SMTPException, OSError):
                    smtp.close()

    def _document_smtp_send_test_email(self, smtp, email_to):
        mail_server = self.env["ir.mail_server"]
        email_from = self.email_formatted or self.env.user.email_formatted
        message = mail_server.build_email(
            email_from=email_from,
            email_to=[email_to],
            subject=self.env._("Test email from %(company)s", company=self.name),
            body=self.env._(
                "This test email confirms that %(company)s can send documents "
                "by email from Odoo.",
                company=self.name,
            ),
        )
        mail_server.send_email(message, smtp_session=smtp)

    def _document_smtp_explain(self, error):
        """One plain sentence for an SMTP failure; never the password."""
        if isinstance(error, DocumentSMTPError):
            return str(error)
        sudo_self = self.sudo()
        params = {
            "host": sudo_self.document_smtp_host or "?",
            "port": sudo_self.document_smtp_port,
            "user": sudo_self.document_smtp_user or "",
            "detail": self._document_smtp_error_detail(error),
        }
        if sudo_self.document_smtp_use_default:
            params["host"], params["port"] = self.env._("the default server"), "-"
        if isinstance(error, socket.gaierror):
            return self.env._(
                "The server %(host)s could not be found. Check its name.", **params
            )
        if isinstance(error, ConnectionRefusedError):
            return self.env._(
                "Nothing answers on %(host)s port %(port)s (connection refused). "
                "Check the server and the port.",
                **params,
            )
        timed_out = isinstance(error, TimeoutError | socket.timeout) or (
            isinstance(error, smtplib.SMTPServerDisconnected)
            and "timed out" in str(error)
        )
        if timed_out:
            return self.env._(
                "%(host)s did not answer on port %(port)s in time. Check the port "
                "and the encryption.",
                **params,
            )
        if isinstance(error, ssl.SSLCertVerificationError):
            return self.env._(
                "The certificate of %(host)s could not be verified (%(detail)s). "
                "If the server uses a self-signed certificate you trust, turn off "
                "certificate verification.",
                **params,
            )
        if isinstance(error, ssl.SSLError | OpenSSLError):
            return self.env._(
                "Encryption mismatch with %(host)s port %(port)s: the TLS handshake "
                "failed (%(detail)s). Port 465 usually needs SSL/TLS, port 587 "
                "STARTTLS.",
                **params,
            )
        if isinstance(error, smtplib.SMTPAuthenticationError):
            return self.env._(
                "The server refused the account %(user)s or its password "
                "(%(detail)s). Check the account and the password.",
                **params,
            )
        if isinstance(error, smtplib.SMTPNotSupportedError):
            if "STARTTLS" in str(error).upper():
                return self.env._(
                    "The server on port %(port)s does not offer STARTTLS. Choose "
                    "SSL/TLS or no encryption, or another port.",
                    **params,
                )
            return self.env._(
                "The server does not support: %(detail)s. Check the encryption "
                "and whether it requires authentication.",
                **params,
            )
        if isinstance(error, smtplib.SMTPServerDisconnected):
            return self.env._(
                "%(host)s closed the connection unexpectedly (%(detail)s). Check "
                "the port and the encryption.",
                **params,
            )
        if isinstance(error, smtplib.SMTPRecipientsRefused | smtplib.SMTPSenderRefused):
            return self.env._("The server refused the address: %(detail)s", **params)
        if isinstance(error, smtplib.SMTPResponseException):
            return self.env._("The server answered: %(detail)s", **params)
        return self.env._("Connection failed: %(detail)s", **params)

    def _document_smtp_error_detail(self, error):
        if isinstance(error, smtplib.SMTPResponseException):
            text = error.smtp_error
            if isinstance(text, bytes):
                text = text.decode(errors="replace")
            detail = f"{error.smtp_code} {text}"
        elif isinstance(error, smtplib.SMTPRecipientsRefused):
            detail = "; ".join(
                f"{rcpt}: {code} {msg.decode(errors='replace')}"
                for rcpt, (code, msg) in error.recipients.items()
            )
        else:
            detail = str(error) or error.__class__.__name__
        password = self.sudo().document_smtp_pass
        if password:
            detail = detail.replace(password, "********")
        return detail
