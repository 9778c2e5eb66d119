import contextlib
import contextvars
import logging
import smtplib
import ssl

from odoo import api, fields, models
from odoo.tools import email_normalize, email_normalize_all
from odoo.tools.mail import encapsulate_email

from odoo.addons.base.models import ir_mail_server as core_ir_mail_server

_logger = logging.getLogger(__name__)

# (timeout, TLS context) while core's connect() opens a session for a
# company's documents server; None for every other connection
_DOCUMENT_TRANSPORT = contextvars.ContextVar("document_transport", default=None)


# the documents server whose connection failed last in this thread: the
# queue leaves its other slices to the next run
CONNECT_FAILED = contextvars.ContextVar("document_connect_failed", default=None)


class DocumentSMTPError(smtplib.SMTPException):
    """A connection failure already explained in plain words."""


class UncertainDeliveryError(smtplib.SMTPException):
    """The connection broke while the server was taking the message: it may
    have been delivered, so it must not be sent again automatically."""


class NotHandedOverError(smtplib.SMTPException):
    """The session broke before the message was handed over (before DATA):
    nothing reached the server, it is tried again later."""


class DocumentSMTPMixin:
    """What Odoo's SMTP session does not keep: which recipients a server
    refused while accepting the message, and which failures are temporary."""

    def _init_document_state(self):
        self.refused_by_message = {}
        self.temporary_by_message = {}
        self.uncertain_by_message = set()
        # the recipients (To) whose message the server accepted, per Message-Id:
        # core sends one message per recipient partner, all with the same id
        self.accepted_by_message = {}
        # the last message's bytes as handed to DATA (before dot-stuffing)
        self.handed_over = None

    # where data() is: "command" until the server answers DATA, then
    # "message" once it said 354 (the message goes), or "refused"
    document_data_stage = None

    def getreply(self):
        reply = super().getreply()
        if self.document_data_stage == "command":
            self.document_data_stage = "message" if reply[0] == 354 else "refused"
        return reply

    def data(self, msg):
        self.document_data_stage = "command"
        self.handed_over = msg
        try:
            code, reply = super().data(msg)
        except smtplib.SMTPDataError as error:
            if self.document_data_stage == "refused":
                self._document_data_refused(error)
            raise
        except Exception as error:
            if self.document_data_stage == "message":
                raise self._document_uncertain(error) from error
            if isinstance(error, (smtplib.SMTPServerDisconnected, OSError)):
                # no 354 yet: nothing of the message was sent (send_message)
                raise smtplib.SMTPServerDisconnected(str(error)) from error
            raise
        finally:
            self.document_data_stage = None
        # after the whole message, only a well-formed 4xx/5xx answer says the
        # server did not take it (RFC 5321); anything else may be a yes
        if code != 250 and not 400 <= code < 600:
            raise self._document_uncertain(smtplib.SMTPDataError(code, reply))
        return code, reply

    def _document_uncertain(self, error):
        # what the server says next cannot be trusted: the next email waits
        self.close()
        return UncertainDeliveryError(
            "The server's answer to the message was lost or unreadable "
            f"({error}); it may have been delivered. Check with the recipient "
            "before sending it again."
        )

    def _document_data_refused(self, error):
        """The server answered DATA itself with an error: nothing was taken,
        and smtplib leaves the transaction open; the next email starts
        clean (a 421 closes the session, as smtplib does after RCPT)."""
        if error.smtp_code == 421:
            self.close()
        else:
            self._rset()

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
        except UncertainDeliveryError:
            self.uncertain_by_message.add(message_id)
            raise
        except smtplib.SMTPRecipientsRefused as error:
            codes = [code for code, _msg in error.recipients.values()]
            # a 421 closed the session before DATA: the whole email waits
            self.temporary_by_message[message_id] = 421 in codes or all(
                400 <= c < 500 for c in codes
            )
            raise
        except smtplib.SMTPResponseException as error:
            self.temporary_by_message[message_id] = 400 <= error.smtp_code < 500
            if error.smtp_code == 552:
                raise self._size_error(msg, error) from error
            raise
        except smtplib.SMTPServerDisconnected as error:
            # before DATA (data() raises UncertainDeliveryError after it)
            self.close()
            self.temporary_by_message[message_id] = True
            raise NotHandedOverError(
                f"The connection broke before the email was handed over ({error})."
            ) from error
        self.refused_by_message[message_id] = refused
        self.accepted_by_message.setdefault(message_id, []).append(msg["To"])
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
    tls_context = None

    def starttls(self, *args, context=None, **kwargs):
        return super().starttls(*args, context=context or self.tls_context, **kwargs)


class DocumentSMTPSSL(DocumentSMTPMixin, smtplib.SMTP_SSL):
    pass


class DocumentAwareSMTPConnection(core_ir_mail_server.SMTPConnection):
    """Core's session wrapper; for a documents server only (inside its
    connect()), the socket waits a bounded time and TLS verifies the
    certificate before the password is sent. Core's connect() creates the
    socket in this constructor, with neither, and offers no other hook."""

    def __init__(self, server, port, encryption, context=None):
        transport = _DOCUMENT_TRANSPORT.get()
        if transport is None:
            super().__init__(server, port, encryption, context=context)
            return
        timeout, verified = transport
        if encryption == "ssl":
            self.__obj__ = DocumentSMTPSSL(
                server, port, timeout=timeout, context=context or verified
            )
        else:
            self.__obj__ = DocumentSMTP(server, port, timeout=timeout)
            self.__obj__.tls_context = context or verified


core_ir_mail_server.SMTPConnection = DocumentAwareSMTPConnection


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
    document_max_per_connection = fields.Integer(
        "Maximum emails per connection",
        readonly=True,
        help="The queue opens a new SMTP connection after this many emails "
        "(some providers allow 20). 0: the queue's own, 20 emails by default.",
    )
    document_max_per_minute = fields.Integer(
        "Maximum emails per minute",
        readonly=True,
        help="Emails beyond this number wait in the queue for the next minute. "
        "0: no limit.",
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
        arguments = {
            "host": host,
            "port": port,
            "user": user,
            "password": password,
            "encryption": encryption,
            "smtp_from": smtp_from,
            "ssl_certificate": ssl_certificate,
            "ssl_private_key": ssl_private_key,
            "smtp_debug": smtp_debug,
            "mail_server_id": mail_server_id,
            "allow_archived": allow_archived,
        }
        server = self.sudo().browse(mail_server_id or [])
        if not server.document_company_id:
            return super().connect(**arguments)
        # core opens the session (debug, certificate, IDNA login, other
        # modules' overrides); the transport underneath is ours
        with server._document_connecting():
            connection = super().connect(**arguments)
        if connection is None:  # test mode: core connects to nothing
            return None
        return server._document_session(connection)

    @contextlib.contextmanager
    def _document_connecting(self):
        """Core's connect() inside runs over this server's transport; its
        failures come out explained."""
        token = _DOCUMENT_TRANSPORT.set(self._document_transport())
        try:
            yield
        except (OSError, smtplib.SMTPException) as error:
            CONNECT_FAILED.set(self.id)
            raise self._document_connect_error(error) from error
        finally:
            _DOCUMENT_TRANSPORT.reset(token)

    def _document_connect_error(self, error):
        """The failure in plain words, without the host or the account: it
        is stored on the emails, which other users read. The log and
        Settings' connection test (administrators) keep the full diagnosis."""
        company = self.document_company_id
        _logger.info(
            "SMTP connection of company %s failed: %s",
            company.id,
            company._document_smtp_explain(error),
        )
        return DocumentSMTPError(company._document_smtp_explain(error, detail=False))

    def _document_session(self, connection):
        """Core's session, ready to tell what happens to each email."""
        session = connection.__obj__
        session._init_document_state()
        session.document_server_id = self.id
        # the sender is aligned with the account per message
        session.smtp_from = False
        return session

    def _document_transport(self):
        """(timeout, TLS context) of the company's own server: a verified
        certificate unless turned off, and a bounded wait."""
        self.ensure_one()
        if self.smtp_verify_certificate:
            context = ssl.create_default_context()
        else:
            context = ssl._create_unverified_context()
        return self.smtp_timeout or 30, context

    def _find_mail_server(self, email_from, mail_servers=None):
        """A company's documents server carries only the documents' emails
        (which name it explicitly): never Odoo's choice for any other email."""
        if mail_servers is None:
            mail_servers = self.sudo().search([], order="sequence")
        return super()._find_mail_server(
            email_from, mail_servers.filtered(lambda s: not s.document_company_id)
        )

    def _document_aligned_sender(self, sender, settings=None):
        """The From this server's account may use: the sender itself when the
        server accepts it (core's from_filter rule), else the sender's name
        with the account's address, as core does for notifications."""
        self.ensure_one()
        settings = settings or {"from_filter": self.from_filter}
        if not sender or self._match_from_filter(sender, settings["from_filter"]):
            return sender
        if "account" not in settings:
            settings["account"] = self._get_test_email_from()
        return encapsulate_email(sender, settings["account"]) or sender

    def _document_session_settings(self, smtp_session):
        """What a documents server's session sends with, read once per
        session: the queue commits after each email, and Odoo's cache goes
        with every commit."""
        settings = getattr(smtp_session, "document_settings", None)
        if settings is None:
            server = self.sudo().browse(smtp_session.document_server_id)
            company = server.document_company_id
            settings = smtp_session.document_settings = {
                "server": server,
                "company_id": company.id,
                "from_filter": server.from_filter,
                "limit": server.document_max_per_minute,
                # bounces of the company's documents go to the mailbox Odoo reads
                "bounce": company._get_document_bounce_address(),
            }
        return settings

    def _prepare_email_message(self, message, smtp_session):
        if not isinstance(smtp_session, DocumentSMTPMixin):
            return super()._prepare_email_message(message, smtp_session)
        settings = self._document_session_settings(smtp_session)
        self._document_align_sender(message, settings)
        smtp_from, smtp_to_list, message = super()._prepare_email_message(
            message, smtp_session
        )
        bounce_address = settings["bounce"]
        if bounce_address:
            smtp_from = bounce_address
            del message["Return-Path"]
            message["Return-Path"] = bounce_address
        return smtp_from, smtp_to_list, message

    @api.model
    def _document_align_sender(self, message, settings):
        """From becomes an address the server may send as; the original
        sender goes into Reply-To so that replies still reach them."""
        sender = message["From"]
        aligned = settings["server"]._document_aligned_sender(sender, settings)
        if aligned == sender:
            return
        message.replace_header("From", aligned)
        reply_to = message["Reply-To"]
        if email_normalize(sender) not in email_normalize_all(reply_to or ""):
            reply_to = ", ".join(filter(None, [sender, reply_to]))
            del message["Reply-To"]
            message["Reply-To"] = reply_to

    @api.model
    def send_email(self, message, *args, smtp_session=None, **kwargs):
        mail_id = self.env.context.get("document_email_mail_id")
        if not isinstance(smtp_session, DocumentSMTPMixin) or not mail_id:
            return super().send_email(
                message, *args, smtp_session=smtp_session, **kwargs
            )
        mail = self.env["mail.mail"].sudo().browse(mail_id)
        queued = self.env.context.get("document_email_auto_commit") is True
        self._document_mark_in_flight(mail, commit=queued)
        if queued:
            return super().send_email(
                message, *args, smtp_session=smtp_session, **kwargs
            )
        return self._document_send_now(mail, message, smtp_session, args, kwargs)

    def _document_send_now(self, mail, message, smtp_session, args, kwargs):
        """Sent in the user's request: the mark in flight, then the outcome,
        are committed on a cursor of their own (document.mail.send.mark); a
        replay of the request finds them and sends nothing."""
        marks = self.env["document.mail.send.mark"].sudo()
        mark_id, earlier = marks._begin(
            marks._key(mail, message), message["Message-Id"]
        )
        if earlier:
            return self._document_sent_earlier(earlier, message, smtp_session)
        try:
            message_id = super().send_email(
                message, *args, smtp_session=smtp_session, **kwargs
            )
        except Exception:
            if message["Message-Id"] not in smtp_session.uncertain_by_message:
                marks._settle(mark_id, forget=True)
            raise
        marks._settle(mark_id, sent=True)
        return message_id

    def _document_sent_earlier(self, earlier, message, smtp_session):
        """An earlier attempt of this request sent the email (its Message-Id
        is the email's), or may have: then it is shown uncertain."""
        state, message_id = earlier
        if state == "sent":
            return message_id
        smtp_session.uncertain_by_message.add(message["Message-Id"])
        raise UncertainDeliveryError(
            self.env._(
                "An earlier attempt to send this email did not finish: it may have "
                "been delivered. Check with the recipient before sending it again."
            )
        )

    def _document_mark_in_flight(self, mail, commit=False):
        """Before a message goes to the server, write that it is being sent
        (Odoo keeps that write in memory until later): another process sending
        the same email now waits or fails here instead of sending it too. The
        queue (auto-commit) also commits it: a process killed now leaves the
        email failed with this reason, uncertain, instead of sending it again."""
        mail.failure_reason = self.env._(
            "Sending was interrupted: the email may have been delivered. Check with "
            "the recipient before sending it again."
        )
        mail.document_uncertain = True
        mail.flush_recordset(["state", "failure_reason", "document_uncertain"])
        if commit:
            self._document_commit_keeping_cache()

    def _document_commit_keeping_cache(self):
        """Commit, but keep the claimed emails in memory: no other worker sends
        or changes them, and core's _send goes on with this one right after,
        which would otherwise read it all again. The transaction's changes are
        flushed first; the commit then runs without the transaction, which it
        would clear; everything else is then forgotten, as a commit does."""
        cr = self.env.cr
        cr.flush()  # the changes, then the precommit hooks
        self.env.flush_all()  # what those hooks wrote
        transaction = cr.transaction
        cr.transaction = None
        try:
            cr.commit()  # pylint: disable=invalid-commit
        finally:
            cr.transaction = transaction
        # only the claimed emails stay in memory: what other transactions may
        # have changed (a partner's address) is read again, and the files'
        # bytes of a long queue run do not pile up in the worker
        cache = self.env.cache
        cache.invalidate(
            [
                (field, None)
                for field in list(cache._data)
                if field.model_name != "mail.mail"
            ]
        )
