"""SMTP details stay with administrators (issue 19 §5): what a billing user
reads of a failed email (the reason on the email, its notification in the
chatter, the batch result, the message after sending) names the problem but
never the company's SMTP host, port or account; Settings' connection test
keeps the full diagnosis. Against real SMTP servers (aiosmtpd)."""

from odoo.exceptions import UserError
from odoo.tests import new_test_user, tagged

from .common import (
    SMTP_PASS,
    SMTP_USER,
    RecordingHandler,
    SMTPTestServer,
    real_smtp_delivery,
)
from .document_common import DocumentEmailCase


class SenderLoginMismatchHandler(RecordingHandler):
    """Refuses every sender as Postfix's reject_sender_login_mismatch does,
    naming the account in its reply."""

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        return (
            f"553 5.7.1 <{address}>: Sender address rejected: not owned by user "
            f"{SMTP_USER}"
        )


@tagged("post_install", "-at_install")
class TestSmtpDetailsStayWithAdministrators(DocumentEmailCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.clerk = new_test_user(
            cls.env,
            login="billing.clerk",
            groups="base.group_user,account.group_account_invoice",
            company_id=cls.env.company.id,
            email="clerk@company.example.com",
        )
        cls.invoice = cls.init_invoice(
            "out_invoice", partner=cls.partner_a, amounts=[100.0], post=True
        )
        cls.invoice_b = cls.init_invoice(
            "out_invoice", partner=cls.partner_b, amounts=[20.0], post=True
        )
        cls.invoice_c = cls.init_invoice(
            "out_invoice", partner=cls.partner_a, amounts=[30.0], post=True
        )

    def _point_at(self, server, **values):
        self.env.company.write(server.company_values(**values))
        self.secrets = ("127.0.0.1", str(server.port), SMTP_USER, SMTP_PASS)

    def assert_no_server_details(self, *texts):
        for text in texts:
            for secret in self.secrets:
                self.assertNotIn(secret, text or "")

    def _send_as_clerk(self, invoices):
        """What the clerk reads after sending alone: (the message shown,
        the email, the reasons of its notifications as the chatter shows
        them)."""
        wizard = self.open_wizard(invoices.with_user(self.clerk))
        with real_smtp_delivery():
            result = wizard.action_send()
        mail = self.env["mail.mail"].search(
            [("model", "=", "account.move"), ("res_id", "=", invoices.id)]
        )
        notifications = (
            self.env["mail.notification"]
            .with_user(self.clerk)
            .search([("mail_mail_id", "=", mail.id)])
        )
        self.assertTrue(notifications)
        shown = [n.format_failure_reason() for n in notifications]
        return (
            result["params"]["message"],
            mail,
            shown + notifications.mapped("failure_reason"),
        )

    def test_refused_account_named_to_administrators_only(self):
        with SMTPTestServer("starttls", auth=True) as server:
            self._point_at(server, smtp_pass="a-wrong-Pa55word")
            self.secrets += ("a-wrong-Pa55word",)
            message, mail, notes = self._send_as_clerk(self.invoice)
            batch = self.send_in_background(
                self.open_wizard(
                    (self.invoice_b | self.invoice_c).with_user(self.clerk)
                )
            )
            with real_smtp_delivery():
                self.env["mail.mail"].process_email_queue()
            lines = batch.with_user(self.clerk).line_ids
            settings = self.env["res.config.settings"].create({})
            with real_smtp_delivery(), self.assertRaises(UserError) as caught:
                settings.action_smtp_test_connection()
        self.assertEqual(mail.state, "exception")
        self.assertIn("refused the account or its password", mail.failure_reason)
        self.assertIn("Test connection", mail.failure_reason)
        self.assertIn("refused the account", message)
        self.assertEqual(set(lines.mapped("state")), {"failed"})
        self.assertIn("refused the account", lines[0].failure_reason)
        self.assert_no_server_details(
            message, mail.failure_reason, *notes, *lines.mapped("failure_reason")
        )
        # Settings, for administrators: the account, host and port
        diagnosis = str(caught.exception)
        self.assertIn(f"refused the account {SMTP_USER}", diagnosis)
        self.assertNotIn("a-wrong-Pa55word", diagnosis)
        with SMTPTestServer("none") as plain:
            self._point_at(plain, smtp_encryption="starttls")
            with real_smtp_delivery(), self.assertRaises(UserError) as caught:
                settings.action_smtp_test_connection()
        self.assertIn(f"on port {plain.port} does not offer", str(caught.exception))

    def test_closed_port_host_and_port_to_administrators_only(self):
        with SMTPTestServer("none") as server:
            self._point_at(server)
        # stopped: nothing answers on its port any more
        message, mail, notes = self._send_as_clerk(self.invoice)
        self.assertIn("Nothing answers", mail.failure_reason)
        self.assertIn("connection refused", mail.failure_reason)
        self.assert_no_server_details(message, mail.failure_reason, *notes)
        settings = self.env["res.config.settings"].create({})
        with real_smtp_delivery(), self.assertRaises(UserError) as caught:
            settings.action_smtp_test_connection()
        self.assertIn(
            f"Nothing answers on 127.0.0.1 port {server.port}", str(caught.exception)
        )

    def test_server_reply_naming_the_account_is_hidden(self):
        handler = SenderLoginMismatchHandler()
        with SMTPTestServer("starttls", auth=True, handler=handler) as server:
            self._point_at(server)
            message, mail, notes = self._send_as_clerk(self.invoice)
            self.assertFalse(server.messages)
        self.assertEqual(mail.state, "exception")
        self.assertIn("not owned by user [account]", mail.failure_reason)
        self.assertIn("553", message)
        self.assertIn("not owned by user", " ".join(notes))
        self.assert_no_server_details(message, mail.failure_reason, *notes)
