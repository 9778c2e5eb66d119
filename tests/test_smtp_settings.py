import idna
from aiosmtpd.smtp import AuthResult

from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tests import TransactionCase, new_test_user, tagged

from .common import (
    SMTP_PASS,
    SMTP_USER,
    SMTPTestServer,
    captured_logs,
    free_port,
    real_smtp_delivery,
)


@tagged("post_install", "-at_install")
class TestSmtpSettings(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.company_a = cls.env.company
        cls.company_b = cls.env["res.company"].create(
            {"name": "Second Company", "email": "billing@second.example.com"}
        )
        cls.env.user.company_ids |= cls.company_b

    def _save(self, company, **values):
        settings = (
            self.env["res.config.settings"]
            .with_company(company)
            .with_context(allowed_company_ids=[company.id])
            .create(values)
        )
        settings.execute()
        return settings

    def _read(self, company):
        return (
            self.env["res.config.settings"]
            .with_company(company)
            .with_context(allowed_company_ids=[company.id])
            .default_get(["smtp_host", "smtp_port", "smtp_user", "smtp_pass"])
        )

    def _own(self, **values):
        base = {
            "smtp_use_default_service": False,
            "smtp_host": "smtp.a.example.com",
            "smtp_port": 587,
            "smtp_encryption": "starttls",
            "smtp_authentication": True,
            "smtp_user": "docs@a.example.com",
            "smtp_pass": "pw-a",
        }
        base.update(values)
        return base

    def test_round_trip_per_company(self):
        self._save(self.company_a, **self._own())
        self._save(
            self.company_b,
            **self._own(
                smtp_host="mail.b.example.com", smtp_port=465, smtp_pass="pw-b"
            ),
        )
        values_a, values_b = self._read(self.company_a), self._read(self.company_b)
        self.assertEqual(
            (values_a["smtp_host"], values_a["smtp_port"], values_a["smtp_pass"]),
            ("smtp.a.example.com", 587, "pw-a"),
        )
        self.assertEqual(
            (values_b["smtp_host"], values_b["smtp_port"], values_b["smtp_pass"]),
            ("mail.b.example.com", 465, "pw-b"),
        )

    def test_mail_server_created_updated_archived(self):
        self.assertFalse(self.company_b.document_mail_server_id)
        self._save(self.company_b, **self._own())
        server = self.company_b.document_mail_server_id
        self.assertTrue(server.active)
        self.assertEqual(
            (server.smtp_host, server.smtp_port, server.smtp_encryption),
            ("smtp.a.example.com", 587, "starttls"),
        )
        self.assertEqual(
            (server.smtp_user, server.smtp_pass), ("docs@a.example.com", "pw-a")
        )
        self.assertEqual(server.from_filter, "docs@a.example.com")

        self._save(self.company_b, **self._own(smtp_port=2525, smtp_encryption="none"))
        self.assertEqual(
            self.company_b.document_mail_server_id, server, "updated in place"
        )
        self.assertEqual((server.smtp_port, server.smtp_encryption), (2525, "none"))

        self._save(self.company_b, smtp_use_default_service=True)
        self.assertFalse(server.active, "archived with the default service")
        self.assertFalse(self.company_b._get_document_mail_server())

        self._save(self.company_b, **self._own())
        self.assertTrue(server.active, "the same server comes back")
        self.assertEqual(
            self.env["ir.mail_server"]
            .with_context(active_test=False)
            .search_count([("name", "ilike", self.company_b.name)]),
            1,
        )

    def test_without_authentication_no_credentials_kept_on_server(self):
        self._save(
            self.company_a, **self._own(smtp_authentication=False, smtp_user=False)
        )
        server = self.company_a.document_mail_server_id
        self.assertFalse(server.smtp_user)
        self.assertFalse(server.smtp_pass)

    def test_two_companies_isolated(self):
        self._save(self.company_a, **self._own())
        self._save(
            self.company_b,
            **self._own(smtp_host="mail.b.example.com", smtp_user="b@b.example.com"),
        )
        server_a = self.company_a.document_mail_server_id
        server_b = self.company_b.document_mail_server_id
        self.assertTrue(server_a and server_b)
        self.assertNotEqual(server_a, server_b)
        self.assertEqual(server_b.smtp_host, "mail.b.example.com")
        self.assertEqual(server_a.smtp_host, "smtp.a.example.com")
        # switching B to the default service leaves A alone
        self._save(self.company_b, smtp_use_default_service=True)
        self.assertTrue(server_a.active)
        self.assertFalse(server_b.active)

    def test_non_admin_cannot_read_password(self):
        self._save(self.company_a, **self._own())
        accountant = new_test_user(
            self.env, login="acc-no-admin", groups="account.group_account_manager"
        )
        with self.assertRaises(AccessError):
            self.company_a.with_user(accountant).read(["document_smtp_pass"])
        with self.assertRaises(AccessError):
            self.company_a.document_mail_server_id.with_user(accountant).read(
                ["smtp_pass"]
            )
        settings_fields = (
            self.env["res.config.settings"].with_user(accountant).fields_get()
        )
        self.assertNotIn("smtp_pass", settings_fields)
        self.assertNotIn(
            "document_smtp_pass",
            self.env["res.company"].with_user(accountant).fields_get(),
        )
        # nothing leaks through the settings defaults either
        values = self.env["res.config.settings"].with_user(accountant).get_values()
        self.assertNotIn("smtp_pass", values)

    def test_invalid_input_refused_nothing_written(self):
        self._save(self.company_a, **self._own())
        server = self.company_a.document_mail_server_id
        cases = [
            ({"smtp_host": ""}, "enter the SMTP server"),
            ({"smtp_host": "   "}, "enter the SMTP server"),
            ({"smtp_port": 0}, "between 1 and 65535"),
            ({"smtp_port": 70000}, "between 1 and 65535"),
            ({"smtp_user": False}, "requires authentication, enter the account"),
        ]
        for values, message in cases:
            with (
                self.subTest(values=values),
                self.assertRaisesRegex(ValidationError, message),
                self.env.cr.savepoint(),
            ):
                self._save(self.company_a, **self._own(**{"smtp_port": 2600, **values}))
            self.assertEqual(server.smtp_port, 587, "nothing half-written")
            self.assertEqual(self.company_a.document_smtp_port, 587)

    def test_ssl_on_port_25_allowed_but_warned(self):
        probe = self.env["res.config.settings"].new(
            {"smtp_encryption": "ssl", "smtp_port": 25}
        )
        warning = probe._onchange_smtp_ssl_port_25()
        self.assertIn("Port 25 rarely offers SSL/TLS", warning["warning"]["message"])
        self.assertFalse(
            self.env["res.config.settings"]
            .new({"smtp_encryption": "ssl", "smtp_port": 465})
            ._onchange_smtp_ssl_port_25()
        )
        self._save(self.company_a, **self._own(smtp_encryption="ssl", smtp_port=25))
        self.assertEqual(self.company_a.document_smtp_port, 25)
        self.assertEqual(self.company_a.document_mail_server_id.smtp_encryption, "ssl")


@tagged("post_install", "-at_install")
class TestSmtpConnection(TransactionCase):
    """Test connection and test email against a real aiosmtpd server."""

    def _configure(self, server, **overrides):
        settings = self.env["res.config.settings"].create(
            server.settings_values(**overrides)
        )
        settings.execute()
        return settings

    def _assert_fails(self, settings, pattern, method="action_smtp_test_connection"):
        with (
            captured_logs() as logs,
            real_smtp_delivery(),
            self.assertRaisesRegex(UserError, pattern) as caught,
        ):
            getattr(settings, method)()
        message = str(caught.exception)
        self.assertNotIn(SMTP_PASS, message)
        self.assertFalse(
            [line for line in logs if SMTP_PASS in line], "password logged"
        )
        return message

    def test_connection_starttls_with_auth(self):
        with SMTPTestServer("starttls", auth=True) as server:
            settings = self._configure(server)
            with real_smtp_delivery():
                action = settings.action_smtp_test_connection()
        self.assertEqual(action["params"]["type"], "success")

    def test_connection_ssl_with_auth(self):
        with SMTPTestServer("ssl", auth=True) as server:
            settings = self._configure(server)
            with real_smtp_delivery():
                action = settings.action_smtp_test_connection()
        self.assertEqual(action["params"]["type"], "success")

    def test_wrong_password(self):
        with SMTPTestServer("starttls", auth=True) as server:
            settings = self._configure(server, smtp_pass="not-the-password")
            message = self._assert_fails(
                settings, "refused the account docs@example.com"
            )
        self.assertNotIn("not-the-password", message)

    def test_wrong_password_never_echoed(self):
        with SMTPTestServer("starttls", auth=True) as server:
            # the real password, refused because the account is wrong
            settings = self._configure(server, smtp_user="other@example.com")
            self._assert_fails(settings, "refused the account other@example.com")

    def test_closed_port(self):
        settings = self.env["res.config.settings"].create(
            {
                "smtp_use_default_service": False,
                "smtp_host": "127.0.0.1",
                "smtp_port": free_port(),
                "smtp_encryption": "none",
                "smtp_authentication": True,
                "smtp_user": SMTP_USER,
                "smtp_pass": SMTP_PASS,
            }
        )
        settings.execute()
        self._assert_fails(settings, "connection refused")

    def test_tls_mismatch_ssl_against_plain_server(self):
        with SMTPTestServer("starttls", auth=True) as server:
            settings = self._configure(server, smtp_encryption="ssl")
            self._assert_fails(settings, "Encryption mismatch")

    def test_tls_mismatch_starttls_not_offered(self):
        with SMTPTestServer("none") as server:
            settings = self._configure(server, smtp_encryption="starttls")
            self._assert_fails(settings, "does not offer STARTTLS")

    def test_unknown_host(self):
        with SMTPTestServer("none") as server:
            settings = self._configure(server, smtp_host="no-such-host.invalid")
            self._assert_fails(settings, "could not be found")

    def test_test_email_arrives(self):
        self.env.company.email = "billing@company.example.com"
        with SMTPTestServer("starttls", auth=True) as server:
            settings = self._configure(
                server, smtp_test_email_to="someone@customer.example.com"
            )
            with real_smtp_delivery():
                action = settings.action_smtp_send_test_email()
            self.assertEqual(action["params"]["type"], "success")
            self.assertEqual(len(server.messages), 1)
            received = server.messages[0]
        self.assertEqual(received["rcpt_tos"], ["someone@customer.example.com"])
        self.assertIn("Test email from", received["message"]["Subject"])

    def test_core_session_options_kept(self):
        """The company's server opens its session through core's connect():
        the server's debug flag holds and an account on an internationalised
        domain logs in IDNA-encoded, over a verified-or-not TLS of our own."""
        logins = []

        def authenticator(server, session, envelope, mechanism, auth_data):
            logins.append(auth_data.login.decode())
            return AuthResult(success=True, handled=False)

        server = SMTPTestServer("starttls", auth=True)
        server._authenticator = authenticator
        server.start()
        self.addCleanup(server.stop)
        self._configure(server, smtp_user="docs@exämple.com")
        self.env.company.document_mail_server_id.smtp_debug = True
        with real_smtp_delivery():
            session = self.env.company._document_smtp_connect()
        self.assertEqual(session.debuglevel, 1)
        self.assertEqual(session.timeout, 30)
        session.quit()
        self.assertEqual(logins, [f"docs@{idna.encode('exämple.com').decode()}"])

    def test_test_email_needs_an_address(self):
        settings = self.env["res.config.settings"].create(
            {"smtp_test_email_to": "not an email"}
        )
        with self.assertRaisesRegex(UserError, "valid email address"):
            settings.action_smtp_send_test_email()
