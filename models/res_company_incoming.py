import imaplib
import logging
import poplib
import socket
import ssl

from odoo import api, fields, models
from odoo.exceptions import UserError, ValidationError
from odoo.tools import email_normalize

_logger = logging.getLogger(__name__)

INCOMING_FIELDS = (
    "document_incoming_use",
    "document_incoming_type",
    "document_incoming_host",
    "document_incoming_port",
    "document_incoming_encryption",
    "document_incoming_same_account",
    "document_incoming_user",
    "document_incoming_pass",
)
# what the incoming mailbox depends on besides its own settings
INCOMING_SYNC_FIELDS = INCOMING_FIELDS + (
    "document_smtp_use_default",
    "document_smtp_user",
    "document_smtp_pass",
    "name",
)
INCOMING_TIMEOUT = 15


def _is_not_a_mailbox(error):
    """An answer, but not an IMAP or POP greeting (e.g. an SMTP server)."""
    if isinstance(error, imaplib.IMAP4.abort):
        return True
    return isinstance(error, poplib.error_proto) and not str(error).startswith(
        ("-ERR", "b'-ERR")
    )


def _is_refused_login(error):
    return isinstance(error, imaplib.IMAP4.error | poplib.error_proto)


def _is_timeout(error):
    return isinstance(error, TimeoutError | socket.timeout)


# How an incoming connection failure is explained (Settings' connection
# test, administrators only), the first row that matches
INCOMING_FAILURES = (
    (
        lambda error: isinstance(error, socket.gaierror),
        lambda env, p: env._(
            "The server %(host)s could not be found. Check its name.", **p
        ),
    ),
    (
        lambda error: isinstance(error, ConnectionRefusedError),
        lambda env, p: env._(
            "Nothing answers on %(host)s port %(port)s (connection refused). "
            "Check the server and the port.",
            **p,
        ),
    ),
    (
        _is_timeout,
        lambda env, p: env._(
            "%(host)s did not answer on port %(port)s in time. Check the port "
            "and the encryption.",
            **p,
        ),
    ),
    (
        lambda error: isinstance(error, ssl.SSLError),
        lambda env, p: env._(
            "Encryption mismatch with %(host)s port %(port)s: the TLS handshake "
            "failed (%(detail)s). Ports 993 (IMAP) and 995 (POP) usually need "
            "SSL/TLS, ports 143 and 110 none.",
            **p,
        ),
    ),
    (
        _is_not_a_mailbox,
        lambda env, p: env._(
            "%(host)s port %(port)s answered, but not as an %(protocol)s server "
            "(%(detail)s). Check the port and the server type: IMAP uses 993 "
            "(SSL/TLS) or 143, POP 995 (SSL/TLS) or 110.",
            **p,
        ),
    ),
    (
        _is_refused_login,
        lambda env, p: env._(
            "The server refused the account %(user)s or its password "
            "(%(detail)s). Check the account and the password; some providers "
            "need IMAP turned on for the mailbox, or an app password.",
            **p,
        ),
    ),
    (
        lambda error: True,
        lambda env, p: env._("Connection failed: %(detail)s", **p),
    ),
)


class ResCompany(models.Model):
    """The incoming side of the company's own server: the mailbox that
    receives the bounces and replies of its documents, read by a core
    fetchmail.server kept in sync with these settings."""

    _inherit = "res.company"

    document_incoming_use = fields.Boolean(
        "Read the account's mailbox",
        groups="base.group_system",
        help="Odoo reads the mailbox that receives the bounces and replies of "
        "the documents sent through the company's server. Not needed when "
        "the company uses Odoo's own catchall and bounce aliases.",
    )
    document_incoming_type = fields.Selection(
        [("imap", "IMAP"), ("pop", "POP")],
        "Incoming Server Type",
        default="imap",
        required=True,
        groups="base.group_system",
    )
    document_incoming_host = fields.Char("Incoming Server", groups="base.group_system")
    document_incoming_port = fields.Integer(
        "Incoming Port", default=993, groups="base.group_system"
    )
    document_incoming_encryption = fields.Selection(
        [("ssl", "SSL/TLS"), ("none", "None")],
        "Incoming Encryption",
        default="ssl",
        required=True,
        groups="base.group_system",
    )
    document_incoming_same_account = fields.Boolean(
        "Same account as the outgoing server",
        default=True,
        groups="base.group_system",
    )
    document_incoming_user = fields.Char("Incoming Account", groups="base.group_system")
    document_incoming_pass = fields.Char(
        "Incoming Password", groups="base.group_system"
    )
    document_fetchmail_server_id = fields.Many2one(
        "fetchmail.server",
        string="Incoming Mail Server for Documents",
        readonly=True,
        copy=False,
        groups="base.group_system",
        help="Kept in sync with the company's incoming mailbox settings.",
    )

    def _document_incoming_active(self):
        self.ensure_one()
        return self.document_incoming_use and not self.document_smtp_use_default

    @api.constrains(*INCOMING_SYNC_FIELDS)
    def _check_document_incoming(self):
        for company in self.sudo().filtered(lambda c: c._document_incoming_active()):
            problem = company._document_incoming_problem()
            if problem:
                raise ValidationError(
                    self.env._(
                        "%(company)s: %(problem)s",
                        company=company.name,
                        problem=problem,
                    )
                )

    def _document_incoming_problem(self):
        """What is missing in the incoming mailbox settings, or False."""
        if not (self.document_incoming_host or "").strip():
            return self.env._("enter the incoming server (IMAP or POP).")
        if not 1 <= self.document_incoming_port <= 65535:
            return self.env._(
                "the incoming port must be between 1 and 65535 (usually 993 for "
                "IMAP with SSL/TLS)."
            )
        if not self._document_incoming_credentials()[0]:
            return self.env._("enter the account of the incoming mailbox.")
        return False

    def _document_incoming_credentials(self):
        """(account, password) of the mailbox: the outgoing server's unless
        the company gives its own."""
        self.ensure_one()
        if self.document_incoming_same_account:
            return (
                (self.document_smtp_user or "").strip(),
                self.document_smtp_pass or False,
            )
        return (
            (self.document_incoming_user or "").strip(),
            self.document_incoming_pass or False,
        )

    @api.model_create_multi
    def create(self, vals_list):
        companies = super().create(vals_list)
        companies._sync_document_fetchmail_server()
        return companies

    def write(self, vals):
        res = super().write(vals)
        if any(field in vals for field in INCOMING_SYNC_FIELDS):
            self._sync_document_fetchmail_server()
        return res

    def _prepare_document_fetchmail_values(self):
        self.ensure_one()
        user, password = self._document_incoming_credentials()
        return {
            "name": self.env._("%(company)s (bounces and replies)", company=self.name),
            "server_type": self.document_incoming_type,
            "server": self.document_incoming_host.strip(),
            "port": self.document_incoming_port,
            "is_ssl": self.document_incoming_encryption == "ssl",
            "user": user,
            "password": password,
            # no record created for a new conversation: core's routing files
            # bounces and replies with the emails they answer
            "object_id": False,
            "document_company_id": self.id,
            "state": "done",
            "active": True,
        }

    def _sync_document_fetchmail_server(self):
        """Create, update or archive the company's own fetchmail.server."""
        for company in self.sudo():
            server = company.document_fetchmail_server_id
            if not company._document_incoming_active():
                if server.active:
                    server.active = False
                continue
            values = company._prepare_document_fetchmail_values()
            if server:
                server.write(values)
            else:
                server = self.env["fetchmail.server"].sudo().create(values)
                company.document_fetchmail_server_id = server

    def _get_document_bounce_address(self):
        """The address of the mailbox Odoo reads, where the bounces of the
        documents sent through the company's server must go; False when it
        reads none (Odoo's own bounce address then applies, as core does)."""
        self.ensure_one()
        company = self.sudo()
        if not (
            company._document_incoming_active()
            and company.document_fetchmail_server_id.active
        ):
            return False
        return email_normalize(company._document_incoming_credentials()[0]) or False

    # ------------------------------------------------------------------
    # Connection test
    # ------------------------------------------------------------------

    def _document_incoming_test(self):
        """Log in to the mailbox with the saved settings; raise a UserError
        in plain words on failure."""
        self.ensure_one()
        server = self.sudo().document_fetchmail_server_id
        if not (server.active and self.sudo()._document_incoming_active()):
            raise UserError(
                self.env._(
                    "Turn on reading the account's mailbox and save the settings first."
                )
            )
        connection = None
        try:
            connection = self._document_incoming_connect(server)
        except UserError:
            raise
        except Exception as error:  # noqa: BLE001 - every failure is explained
            message = self._document_incoming_explain(error, server)
            _logger.info("Incoming test for company %s failed: %s", self.id, message)
            raise UserError(message) from None
        finally:
            self._document_incoming_close(connection)

    @api.model
    def _document_incoming_connect(self, server):
        """A logged-in session as the fetchmail server opens it, with a
        bounded wait; IMAP also opens the inbox."""
        host, port = server.server, int(server.port)
        if server.server_type == "pop":
            pop = poplib.POP3_SSL if server.is_ssl else poplib.POP3
            connection = pop(host, port, timeout=INCOMING_TIMEOUT)
            connection.user(server.user)
            connection.pass_(server.password)
            return connection
        imap = imaplib.IMAP4_SSL if server.is_ssl else imaplib.IMAP4
        connection = imap(host, port, timeout=INCOMING_TIMEOUT)
        server._imap_login(connection)
        connection.select()
        return connection

    @api.model
    def _document_incoming_close(self, connection):
        if connection is None:
            return
        try:
            if isinstance(connection, poplib.POP3):
                connection.quit()
            else:
                connection.logout()
        except (OSError, imaplib.IMAP4.error, poplib.error_proto) as error:
            # a consequence of the failure already explained
            _logger.debug("Closing the incoming test connection failed: %s", error)

    def _document_incoming_explain(self, error, server):
        """One plain sentence for an incoming failure, never the password."""
        detail = str(error) or error.__class__.__name__
        if server.password:
            detail = detail.replace(server.password, "********")
        params = {
            "host": server.server,
            "port": server.port,
            "user": server.user or "",
            "protocol": (server.server_type or "").upper(),
            "detail": detail,
        }
        return next(
            explain(self.env, params)
            for matches, explain in INCOMING_FAILURES
            if matches(error)
        )
