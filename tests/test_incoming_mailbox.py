"""The incoming side of the company's server (issue 20 §1): the mailbox
receiving the bounces and replies of its documents, kept in sync as a core
fetchmail.server, its connection test, and the bounce address of the
documents sent through the company's server."""

from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tests import new_test_user, tagged

from .common import SMTP_PASS, SMTP_USER, SMTPTestServer, free_port, real_smtp_delivery
from .document_common import DocumentEmailCase


@tagged("post_install", "-at_install")
class TestIncomingMailbox(DocumentEmailCase):
    def _save(self, company=None, **values):
        company = company or self.env.company
        base = {
            "smtp_use_default_service": False,
            "smtp_host": "smtp.a.example.com",
            "smtp_port": 587,
            "smtp_encryption": "starttls",
            "smtp_authentication": True,
            "smtp_user": "docs@a.example.com",
            "smtp_pass": "pw-a",
            "incoming_use": True,
            "incoming_host": "imap.a.example.com",
        }
        settings = (
            self.env["res.config.settings"]
            .with_company(company)
            .with_context(allowed_company_ids=[company.id])
            .create(dict(base, **values))
        )
        settings.execute()
        return settings

    def test_fetchmail_server_created_updated_archived(self):
        company = self.env.company
        self.assertFalse(company.document_fetchmail_server_id)
        self._save()
        server = company.document_fetchmail_server_id
        self.assertRecordValues(
            server,
            [
                {
                    "server_type": "imap",
                    "server": "imap.a.example.com",
                    "port": 993,
                    "is_ssl": True,
                    "user": "docs@a.example.com",
                    "password": "pw-a",
                    "object_id": False,
                    "state": "done",
                    "active": True,
                    "document_company_id": company.id,
                }
            ],
        )
        # the outgoing account's password changes: the mailbox follows
        self._save(smtp_pass="pw-a2")
        self.assertEqual(server.password, "pw-a2")
        self._save(
            incoming_type="pop",
            incoming_port=110,
            incoming_encryption="none",
            incoming_same_account=False,
            incoming_user="bounces@a.example.com",
            incoming_pass="pw-bounces",
        )
        self.assertEqual(company.document_fetchmail_server_id, server, "updated")
        self.assertRecordValues(
            server,
            [
                {
                    "server_type": "pop",
                    "port": 110,
                    "is_ssl": False,
                    "user": "bounces@a.example.com",
                    "password": "pw-bounces",
                }
            ],
        )
        self._save(incoming_use=False)
        self.assertFalse(server.active, "archived")
        self._save()
        self.assertTrue(server.active)
        self._save(smtp_use_default_service=True)
        self.assertFalse(server.active, "Odoo's own aliases: nothing to read")

    def test_incomplete_settings_refused(self):
        with self.assertRaisesRegex(ValidationError, "incoming server"):
            self._save(incoming_host=" ")
        with self.assertRaisesRegex(ValidationError, "account of the incoming"):
            self._save(incoming_same_account=False, incoming_user=False)
        self.assertFalse(self.env.company.document_fetchmail_server_id)

    def test_password_admin_only(self):
        self._save(
            incoming_same_account=False,
            incoming_user="b@a.example.com",
            incoming_pass="pw-bounces",
        )
        accountant = new_test_user(
            self.env, login="acc-incoming", groups="account.group_account_manager"
        )
        company = self.env.company.with_user(accountant)
        with self.assertRaises(AccessError):
            company.read(["document_incoming_pass"])
        with self.assertRaises(AccessError):
            self.env.company.document_fetchmail_server_id.with_user(accountant).read(
                ["password"]
            )
        settings = self.env["res.config.settings"].with_user(accountant)
        self.assertNotIn("incoming_pass", settings.fields_get())
        self.assertNotIn("incoming_pass", settings.get_values())

    # ------------------------------------------------------------------
    # Test incoming connection: the diagnosis
    # ------------------------------------------------------------------

    def _assert_diagnosis(self, pattern, **values):
        settings = self._save(
            incoming_host="127.0.0.1",
            smtp_user=SMTP_USER,
            smtp_pass=SMTP_PASS,
            **values,
        )
        with self.assertRaisesRegex(UserError, pattern) as caught:
            settings.action_incoming_test_connection()
        self.assertNotIn(SMTP_PASS, str(caught.exception))
        return str(caught.exception)

    def test_diagnosis_closed_port(self):
        port = free_port()
        message = self._assert_diagnosis("connection refused", incoming_port=port)
        self.assertIn(f"127.0.0.1 port {port}", message)

    def test_diagnosis_not_an_imap_or_pop_server(self):
        with SMTPTestServer("none") as smtp:
            for server_type in ("imap", "pop"):
                self._assert_diagnosis(
                    f"answered, but not as an {server_type.upper()} server",
                    incoming_type=server_type,
                    incoming_port=smtp.port,
                    incoming_encryption="none",
                )

    def test_diagnosis_tls_mismatch(self):
        with SMTPTestServer("none") as smtp:
            self._assert_diagnosis(
                "Encryption mismatch",
                incoming_port=smtp.port,
                incoming_encryption="ssl",
            )

    def test_test_needs_the_mailbox_turned_on(self):
        settings = self._save(incoming_use=False)
        with self.assertRaisesRegex(UserError, "Turn on reading"):
            settings.action_incoming_test_connection()

    # ------------------------------------------------------------------
    # The bounce address of the company's documents
    # ------------------------------------------------------------------

    def _send_invoice(self):
        invoice = self.init_invoice(
            "out_invoice", partner=self.partner_a, amounts=[100.0], post=True
        )
        wizard = self.open_wizard(invoice)
        with real_smtp_delivery():
            wizard.action_send()
        return invoice

    def test_document_bounces_go_to_the_mailbox(self):
        self.partner_a.email = "customer@example.com"
        self.env.company.email = "billing@company.example.com"
        with SMTPTestServer("none") as smtp:
            self._save(
                smtp_host="127.0.0.1",
                smtp_port=smtp.port,
                smtp_encryption="none",
                smtp_authentication=False,
                smtp_user=False,
                smtp_pass=False,
                incoming_same_account=False,
                incoming_user="bounces@company.example.com",
                incoming_pass="pw",
            )
            self._send_invoice()
            self._save(
                smtp_host="127.0.0.1",
                smtp_port=smtp.port,
                smtp_encryption="none",
                smtp_authentication=False,
                smtp_user=False,
                smtp_pass=False,
                incoming_use=False,
            )
            self._send_invoice()
            first, second = smtp.messages
        self.assertEqual(first["mail_from"], "bounces@company.example.com")
        self.assertIn("bounces@company.example.com", first["message"]["Return-Path"])
        self.assertNotEqual(second["mail_from"], "bounces@company.example.com")
