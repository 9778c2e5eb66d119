"""Shared test helpers: a real SMTP server (aiosmtpd) on 127.0.0.1 and the
switch that lets Odoo really deliver while a test runs."""

import contextlib
import datetime
import email
import email.policy
import logging
import socket
import ssl
import tempfile
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

import odoo

SMTP_USER = "docs@example.com"
SMTP_PASS = "s3cret-Pa55-word"


@contextlib.contextmanager
def real_smtp_delivery():
    """Odoo never opens an SMTP connection while a test runs
    (``odoo.modules.module.current_test`` is set). Tests that prove delivery
    switch that off here, deliberately, and only for the block they run."""
    saved = odoo.modules.module.current_test
    odoo.modules.module.current_test = False
    try:
        yield
    finally:
        odoo.modules.module.current_test = saved


@contextlib.contextmanager
def captured_logs():
    """Every log record emitted in the block, at any level (to prove what a
    log does not contain, e.g. a password)."""
    records = []

    class Collect(logging.Handler):
        def emit(self, record):
            records.append(self.format(record))

    handler = Collect(level=logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield records
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def forget_send_marks(case):
    """Send-now marks are committed on a cursor of their own and forgotten
    when the request commits; a TransactionCase never commits: the test's
    marks go when it ends (they are keyed by document and recipients, which
    the next test reuses)."""
    registry = case.env.registry
    with registry.cursor() as cr:
        cr.execute("SELECT COALESCE(MAX(id), 0) FROM document_mail_send_mark")
        [start] = cr.fetchone()

    def forget():
        with registry.cursor() as cr:
            cr.execute("DELETE FROM document_mail_send_mark WHERE id > %s", [start])

    case.addCleanup(forget)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def self_signed_certificate(directory):
    """A throw-away certificate for 127.0.0.1; returns (certfile, keyfile)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = f"{directory}/cert.pem", f"{directory}/key.pem"
    with open(certfile, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(keyfile, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
    return certfile, keyfile


class RecordingHandler:
    """aiosmtpd handler keeping every message it accepts."""

    def __init__(self):
        self.messages = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.SMTP)
        with self.lock:
            self.messages.append(
                {
                    "mail_from": envelope.mail_from,
                    "rcpt_tos": list(envelope.rcpt_tos),
                    "message": message,
                    "size": len(envelope.content),
                    # the DATA lines as sent, dot-stuffing undone, CRLF kept
                    "content": envelope.content,
                }
            )
        return "250 Message accepted for delivery"


class SMTPTestServer:
    """A real SMTP server on 127.0.0.1 and a free port.

    :param encryption: ``none``, ``starttls`` (offered, and required before
        AUTH) or ``ssl`` (implicit TLS)
    :param auth: require AUTH with SMTP_USER / SMTP_PASS
    """

    def __init__(self, encryption="none", auth=False, handler=None, **smtp_kwargs):
        self.encryption = encryption
        self.auth = auth
        self.handler = handler or RecordingHandler()
        self.smtp_kwargs = smtp_kwargs
        self.port = None
        self._controller = None
        self._tmp = None

    @property
    def messages(self):
        return self.handler.messages

    def _authenticator(self, server, session, envelope, mechanism, auth_data):
        ok = (
            auth_data.login.decode() == SMTP_USER
            and auth_data.password.decode() == SMTP_PASS
        )
        return AuthResult(success=ok, handled=False)

    def start(self):
        self._tmp = tempfile.TemporaryDirectory()
        certfile, keyfile = self_signed_certificate(self._tmp.name)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(certfile, keyfile)
        self.certfile = certfile
        kwargs = dict(self.smtp_kwargs)
        if self.encryption == "starttls":
            kwargs.update(tls_context=context, require_starttls=True)
        if self.auth:
            kwargs.update(
                authenticator=self._authenticator,
                auth_required=True,
                # implicit TLS is already encrypted; STARTTLS must come first
                auth_require_tls=self.encryption == "starttls",
            )
        self.port = free_port()
        self._controller = self._controller_class()(
            self.handler,
            hostname="127.0.0.1",
            port=self.port,
            ssl_context=context if self.encryption == "ssl" else None,
            server_hostname="127.0.0.1",
            **kwargs,
        )
        self._controller.start()
        return self

    def _controller_class(self):
        """The handler's own SMTP protocol class (``smtp_class``), if any:
        to answer a command itself (DATA) where no handler hook can."""
        smtp_class = getattr(self.handler, "smtp_class", None)
        if smtp_class is None:
            return Controller

        def factory(controller):
            return smtp_class(controller.handler, **controller.SMTP_kwargs)

        return type("ProtocolController", (Controller,), {"factory": factory})

    def stop(self):
        if self._controller:
            self._controller.stop()
            self._controller = None
        if self._tmp:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def settings_values(self, **overrides):
        """res.config.settings values pointing at this server."""
        values = {
            "smtp_use_default_service": False,
            "smtp_host": "127.0.0.1",
            "smtp_port": self.port,
            "smtp_encryption": self.encryption,
            "smtp_authentication": self.auth,
            "smtp_user": SMTP_USER if self.auth else False,
            "smtp_pass": SMTP_PASS if self.auth else False,
            # the test server's certificate is self-signed
            "smtp_verify_certificate": False,
        }
        values.update(overrides)
        return values

    def company_values(self, **overrides):
        """res.company values pointing at this server."""
        from ..models.res_config_settings import SMTP_SETTINGS

        return {
            SMTP_SETTINGS[name]: value
            for name, value in self.settings_values(**overrides).items()
        }


class SMTPServerMixin:
    """Starts a real SMTP server for the test class (``cls.smtp``) and points
    the main test company at it."""

    smtp_encryption = "none"
    smtp_auth = False

    @classmethod
    def start_smtp_server(cls, company):
        cls.smtp = SMTPTestServer(cls.smtp_encryption, cls.smtp_auth).start()
        cls.addClassCleanup(cls.smtp.stop)
        company.sudo().write(cls.smtp.company_values())

    def received(self):
        return list(self.smtp.messages)

    def setUp(self):
        super().setUp()
        self.smtp.messages.clear()


def pdf_parts(message):
    """The PDF attachments of a received email: [(filename, bytes)]."""
    return [
        (part.get_filename(), part.get_payload(decode=True))
        for part in message.walk()
        if part.get_content_type() == "application/pdf"
    ]


def pdf_text(content):
    """The text of a PDF (pdfminer), to check what a real PDF says."""
    import io

    from pdfminer.high_level import extract_text

    return " ".join(extract_text(io.BytesIO(content)).split())
