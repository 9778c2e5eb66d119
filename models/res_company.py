import logging
import re
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


def _any_of(*error_classes):
    return lambda error: isinstance(error, error_classes)


def _is_timeout(error):
    return isinstance(error, TimeoutError | socket.timeout) or (
        isinstance(error, smtplib.SMTPServerDisconnected) and "timed out" in str(error)
    )


def _is_starttls_missing(error):
    return (
        isinstance(error, smtplib.SMTPNotSupportedError)
        and "STARTTLS" in str(error).upper()
    )


# How an SMTP failure is explained, the first row that matches: (does it
# match the error, the message for administrators (Settings' connection
# test: host, port, account, the server's words), the message for every
# other user (stored on the email: the problem only, the server's words
# without its host or account)).
SMTP_FAILURES = (
    (
        _any_of(socket.gaierror),
        lambda env, p: env._(
            "The server %(host)s could not be found. Check its name.", **p
        ),
        lambda env, p: env._("The company's outgoing mail server could not be found."),
    ),
    (
        _any_of(ConnectionRefusedError),
        lambda env, p: env._(
            "Nothing answers on %(host)s port %(port)s (connection refused). "
            "Check the server and the port.",
            **p,
        ),
        lambda env, p: env._(
            "Nothing answers on the company's outgoing mail server (connection "
            "refused)."
        ),
    ),
    (
        _is_timeout,
        lambda env, p: env._(
            "%(host)s did not answer on port %(port)s in time. Check the port "
            "and the encryption.",
            **p,
        ),
        lambda env, p: env._(
            "The company's outgoing mail server did not answer in time."
        ),
    ),
    (
        _any_of(ssl.SSLCertVerificationError),
        lambda env, p: env._(
            "The certificate of %(host)s could not be verified (%(detail)s). "
            "If the server uses a self-signed certificate you trust, turn off "
            "certificate verification.",
            **p,
        ),
        lambda env, p: env._(
            "The certificate of the company's outgoing mail server could not be "
            "verified."
        ),
    ),
    (
        _any_of(ssl.SSLError, OpenSSLError),
        lambda env, p: env._(
            "Encryption mismatch with %(host)s port %(port)s: the TLS handshake "
            "failed (%(detail)s). Port 465 usually needs SSL/TLS, port 587 "
            "STARTTLS.",
            **p,
        ),
        lambda env, p: env._(
            "Encryption mismatch with the company's outgoing mail server: the TLS "
            "handshake failed."
        ),
    ),
    (
        _any_of(smtplib.SMTPAuthenticationError),
        lambda env, p: env._(
            "The server refused the account %(user)s or its password "
            "(%(detail)s). Check the account and the password.",
            **p,
        ),
        lambda env, p: env._(
            "The company's outgoing mail server refused the account or its password."
        ),
    ),
    (
        _is_starttls_missing,
        lambda env, p: env._(
            "The server on port %(port)s does not offer STARTTLS. Choose "
            "SSL/TLS or no encryption, or another port.",
            **p,
        ),
        lambda env, p: env._(
            "The company's outgoing mail server does not offer STARTTLS."
        ),
    ),
    (
        _any_of(smtplib.SMTPNotSupportedError),
        lambda env, p: env._(
            "The server does not support: %(detail)s. Check the encryption "
            "and whether it requires authentication.",
            **p,
        ),
        lambda env, p: env._(
            "The company's outgoing mail server does not support: %(detail)s.",
            detail=p["detail"],
        ),
    ),
    (
        _any_of(smtplib.SMTPServerDisconnected),
        lambda env, p: env._(
            "%(host)s closed the connection unexpectedly (%(detail)s). Check "
            "the port and the encryption.",
            **p,
        ),
        lambda env, p: env._(
            "The company's outgoing mail server closed the connection "
            "unexpectedly (%(detail)s).",
            detail=p["detail"],
        ),
    ),
    (
        _any_of(smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused),
        lambda env, p: env._("The server refused the address: %(detail)s", **p),
        lambda env, p: env._("The server refused the address: %(detail)s", **p),
    ),
    (
        _any_of(smtplib.SMTPResponseException),
        lambda env, p: env._("The server answered: %(detail)s", **p),
        lambda env, p: env._("The server answered: %(detail)s", **p),
    ),
    (
        _any_of(BaseException),
        lambda env, p: env._("Connection failed: %(detail)s", **p),
        lambda env, p: env._("Connection failed: %(detail)s", **p),
    ),
)


def _smtp_reply(error):
    text = error.smtp_error
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return f"{error.smtp_code} {text}"


def _smtp_refused_recipients(error):
    return "; ".join(
        f"{rcpt}: {code} {msg.decode(errors='replace')}"
        for rcpt, (code, msg) in error.recipients.items()
    )


# the server's words for an error, the first row whose class matches
SMTP_ERROR_DETAILS = (
    (smtplib.SMTPResponseException, _smtp_reply),
    (smtplib.SMTPRecipientsRefused, _smtp_refused_recipients),
    (BaseException, lambda error: str(error) or error.__class__.__name__),
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
        "(some providers allow 20). 0: the queue's own, 20 emails by default.",
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
            if not company.document_smtp_use_default:
                company._check_document_smtp_limits()
                company._check_document_smtp_server()

    def _check_document_smtp_limits(self):
        limits = (
            self.document_smtp_max_per_connection,
            self.document_smtp_max_per_minute,
        )
        if min(limits) < 0:
            raise ValidationError(
                self.env._(
                    "%(company)s: the SMTP limits are numbers of emails, 0 for "
                    "no limit.",
                    company=self.name,
                )
            )

    def _check_document_smtp_server(self):
        if not (self.document_smtp_host or "").strip():
            raise ValidationError(
                self.env._(
                    "%(company)s: enter the SMTP server, or choose the default "
                    "outgoing mail service.",
                    company=self.name,
                )
            )
        if not 1 <= self.document_smtp_port <= 65535:
            raise ValidationError(
                self.env._(
                    "%(company)s: the SMTP port must be between 1 and 65535 "
                    "(usually 587 for STARTTLS or 465 for SSL/TLS).",
                    company=self.name,
                )
            )
        if (
            self.document_smtp_authentication
            and not (self.document_smtp_user or "").strip()
        ):
            raise ValidationError(
                self.env._(
                    "%(company)s: the server requires authentication, enter "
                    "the account.",
                    company=self.name,
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

    def _document_smtp_explain(self, error, detail=True):
        """One plain sentence for an SMTP failure, never the password. With
        detail (Settings' connection test, for administrators): the host, the
        port, the account and the server's words. Without (what is stored on
        the email and read by its users): the problem only."""
        if isinstance(error, DocumentSMTPError):
            error = error.__cause__ or error  # the failure it explains
        params = self._document_smtp_explain_params(error)
        for matches, for_administrators, for_users in SMTP_FAILURES:
            if not matches(error):
                continue
            if detail:
                return for_administrators(self.env, params)
            params["detail"] = self._document_smtp_hide_server(params["detail"])
            return self.env._(
                "%(problem)s An administrator can check the settings in Settings "
                "> General Settings > Emails (Test connection).",
                problem=for_users(self.env, params),
            )

    def _document_smtp_explain_params(self, error):
        sudo_self = self.sudo()
        params = {
            "host": sudo_self.document_smtp_host or "?",
            "port": sudo_self.document_smtp_port,
            "user": sudo_self.document_smtp_user or "",
            "detail": self._document_smtp_error_detail(error),
        }
        if sudo_self.document_smtp_use_default:
            params["host"], params["port"] = self.env._("the default server"), "-"
        return params

    def _document_smtp_error_detail(self, error):
        """The server's words (or the error's), the password masked."""
        detail = next(
            describe(error)
            for error_class, describe in SMTP_ERROR_DETAILS
            if isinstance(error, error_class)
        )
        password = self.sudo().document_smtp_pass
        if password:
            detail = detail.replace(password, "********")
        return detail

    def _document_smtp_hide_server(self, text):
        """The text without the company's SMTP host, account or password, for
        users other than administrators (a server's reply may name them)."""
        sudo_self = self.sudo()
        password = sudo_self.document_smtp_pass
        if not text:
            return text
        if password:
            text = text.replace(password, "********")
        for name, mask in (
            (sudo_self.document_smtp_host, "[server]"),
            (sudo_self.document_smtp_user, "[account]"),
        ):
            if (name or "").strip():
                pattern = rf"(?<![\w-]){re.escape(name.strip())}(?![\w-])"
                text = re.sub(pattern, mask, text, flags=re.IGNORECASE)
        return text
