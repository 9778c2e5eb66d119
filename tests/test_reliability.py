"""Nothing lost, nothing sent twice, no leak: each case against a real SMTP
server (aiosmtpd) that refuses, delays, drops or limits."""

import asyncio
import socket
import threading
import time

from odoo import Command, fields
from odoo.exceptions import AccessError
from odoo.tests import new_test_user, tagged

from .common import (
    SMTP_PASS,
    RecordingHandler,
    SMTPTestServer,
    captured_logs,
    real_smtp_delivery,
)
from .document_common import DocumentEmailCase


class ScriptedHandler(RecordingHandler):
    """Refuses the recipients it is told to, with the reply it is given."""

    def __init__(self):
        super().__init__()
        self.rcpt_replies = {}

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.rcpt_replies.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"


class DropAfterDataHandler(RecordingHandler):
    """Stores the message, then drops the connection without answering."""

    async def handle_DATA(self, server, session, envelope):
        await super().handle_DATA(server, session, envelope)
        server.transport.close()
        return "250 never seen by the client"


class SlowDataHandler(RecordingHandler):
    """Stores the message, then answers DATA after the client gave up."""

    delay = 4

    async def handle_DATA(self, server, session, envelope):
        reply = await super().handle_DATA(server, session, envelope)
        await asyncio.sleep(self.delay)
        return reply


class SilentServer:
    """Accepts TCP connections and never greets."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(5)
        self.port = self.sock.getsockname()[1]
        self.clients = []
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self):
        while True:
            try:
                self.clients.append(self.sock.accept()[0])
            except OSError:
                return

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        for client in self.clients:
            client.close()
        self.sock.close()


@tagged("post_install", "-at_install")
class TestReliability(DocumentEmailCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.invoice = cls.init_invoice(
            "out_invoice", partner=cls.partner_a, amounts=[100.0], post=True
        )
        cls.server = cls.env.company.document_mail_server_id

    def _point_at(self, server, **company_values):
        self.env.company.write(server.company_values(**company_values))

    def _send_invoice(self, invoice=None, **wizard_values):
        wizard = self.open_wizard(invoice or self.invoice, **wizard_values)
        with real_smtp_delivery():
            result = wizard.action_send()
        mail = self.env["mail.mail"].search(
            [
                ("model", "=", "account.move"),
                ("res_id", "=", (invoice or self.invoice).id),
            ],
            order="id desc",
            limit=1,
        )
        return result, mail

    def _assert_kept(self, result, mail, reason):
        self.assertEqual(
            result["params"]["type"], "danger", result["params"]["message"]
        )
        self.assertEqual(mail.state, "exception")
        self.assertIn(reason, mail.failure_reason)
        self.assertIn(reason, result["params"]["message"])
        self.assertEqual(self.invoice.state, "posted", "the document stays")
        self.assertTrue(mail.attachment_ids, "the PDF stays")

    # 1. connection ------------------------------------------------------------

    def test_never_greeting_bounded_wait(self):
        with SilentServer() as silent:
            self.env.company.write(
                {"document_smtp_port": silent.port, "document_smtp_encryption": "none"}
            )
            self.server.smtp_timeout = 2
            started = time.monotonic()
            result, mail = self._send_invoice()
            self.assertLess(time.monotonic() - started, 15, "bounded wait")
        self._assert_kept(result, mail, "did not answer")

    def test_tls_expected_not_offered(self):
        with SMTPTestServer("none") as plain:
            self._point_at(plain, smtp_encryption="starttls")
            result, mail = self._send_invoice()
        self._assert_kept(result, mail, "does not offer STARTTLS")

    def test_plain_against_implicit_tls(self):
        with SMTPTestServer("ssl") as tls:
            self._point_at(tls, smtp_encryption="none")
            self.server.smtp_timeout = 2
            result, mail = self._send_invoice()
        self._assert_kept(result, mail, "did not answer")

    def test_wrong_password_reason_without_password(self):
        with SMTPTestServer("starttls", auth=True) as server:
            self._point_at(server, smtp_pass="a-wrong-Pa55word")
            # saving settings is not under test: only what sending logs
            self.env.flush_all()
            with captured_logs() as logs:
                result, mail = self._send_invoice()
        self._assert_kept(result, mail, "refused the account")
        for text in (mail.failure_reason, result["params"]["message"], *logs):
            self.assertNotIn("a-wrong-Pa55word", text)
            self.assertNotIn(SMTP_PASS, text)

    # 10. certificates -------------------------------------------------------

    def test_self_signed_refused_unless_verification_off(self):
        with SMTPTestServer("starttls", auth=True) as server:
            self._point_at(server, smtp_verify_certificate=True)
            result, mail = self._send_invoice()
            self._assert_kept(result, mail, "could not be verified")
            self._point_at(server, smtp_verify_certificate=False)
            mail.action_retry()
            with real_smtp_delivery():
                self.env["mail.mail"].process_email_queue()
            self.assertEqual(mail.state, "sent")
            self.assertEqual(len(server.messages), 1)

    def test_verification_on_by_default(self):
        company = self.env["res.company"].create({"name": "New Co"})
        self.assertTrue(company.document_smtp_verify_certificate)
        defaults = self.env["ir.mail_server"].default_get(["smtp_verify_certificate"])
        self.assertTrue(defaults["smtp_verify_certificate"])

    # 2. refusals --------------------------------------------------------------

    def test_550_only_recipient(self):
        handler = ScriptedHandler()
        handler.rcpt_replies[self.partner_a.email] = "550 5.1.1 No such user"
        with SMTPTestServer(handler=handler) as server:
            self._point_at(server)
            result, mail = self._send_invoice()
        self._assert_kept(result, mail, "550")
        self.assertEqual(mail.document_attempts, 0, "permanent: not retried")

    def test_451_retried_with_backoff_then_delivered_once(self):
        handler = ScriptedHandler()
        handler.rcpt_replies[self.partner_a.email] = "451 4.7.1 Greylisted, try later"
        with SMTPTestServer(handler=handler) as server:
            self._point_at(server)
            result, mail = self._send_invoice()
            self.assertEqual(result["params"]["type"], "warning")
            self.assertIn("not sent yet", result["params"]["message"])
            self.assertEqual(mail.state, "outgoing")
            self.assertEqual(mail.document_attempts, 1)
            self.assertIn("Temporarily refused", mail.failure_reason)
            first_retry = mail.scheduled_date
            self.assertGreater(first_retry, fields.Datetime.now())
            with real_smtp_delivery():
                self.env["mail.mail"].process_email_queue()
            self.assertEqual(mail.state, "outgoing", "not before its time")
            # time passes, still greylisted: a longer delay
            mail.scheduled_date = fields.Datetime.now()
            with real_smtp_delivery():
                self.env["mail.mail"].process_email_queue()
            self.assertEqual(mail.document_attempts, 2)
            self.assertGreater(
                mail.scheduled_date - fields.Datetime.now(),
                first_retry - mail.create_date,
                "backoff grows",
            )
            # the server recovers
            handler.rcpt_replies.clear()
            mail.scheduled_date = fields.Datetime.now()
            with real_smtp_delivery():
                self.env["mail.mail"].process_email_queue()
                self.env["mail.mail"].process_email_queue()
            self.assertEqual(mail.state, "sent")
            self.assertEqual(len(server.messages), 1, "delivered once")

    def test_partial_refusal_is_shown(self):
        handler = ScriptedHandler()
        handler.rcpt_replies[self.partner_b.email] = "550 5.1.1 Mailbox unavailable"
        with SMTPTestServer(handler=handler) as server:
            self._point_at(server)
            result, mail = self._send_invoice(
                partner_ids=[Command.set((self.partner_a | self.partner_b).ids)]
            )
            self.assertEqual(len(server.messages), 1)
            self.assertEqual(server.messages[0]["rcpt_tos"], [self.partner_a.email])
        self.assertEqual(result["params"]["type"], "warning")
        self.assertIn("not to everyone", result["params"]["message"])
        self.assertIn(self.partner_b.email, mail.failure_reason)
        statuses = {
            n.res_partner_id: n.notification_status for n in mail.notification_ids
        }
        self.assertEqual(statuses[self.partner_a], "sent")
        self.assertEqual(statuses[self.partner_b], "exception")

    # 3. size --------------------------------------------------------------------

    def test_too_large_names_the_limit(self):
        with SMTPTestServer(data_size_limit=2000) as server:
            self._point_at(server)
            result, mail = self._send_invoice()
        self._assert_kept(result, mail, "larger than the server accepts")
        self.assertIn("size limit 0.0 MB", mail.failure_reason)
        self.assertFalse(server.messages)

    # 4. uncertain delivery ----------------------------------------------------

    def _assert_delivered_once(self, server, mail):
        """The server stored the message once; the email is kept as "may have
        been delivered" and the queue never sends it again."""
        self.assertEqual(mail.state, "exception")
        self.assertIn("may have been delivered", mail.failure_reason)
        with real_smtp_delivery():
            self.env["mail.mail"].process_email_queue()
        ids = [m["message"]["Message-Id"] for m in server.messages]
        self.assertEqual(ids, [mail.message_id], "stored exactly once")

    def test_dropped_after_data(self):
        with SMTPTestServer(handler=DropAfterDataHandler()) as server:
            self._point_at(server)
            result, mail = self._send_invoice()
            self.assertEqual(result["params"]["type"], "danger")
            self._assert_delivered_once(server, mail)

    def test_data_reply_slower_than_timeout(self):
        handler = SlowDataHandler()
        with SMTPTestServer(handler=handler) as server:
            self._point_at(server)
            self.server.smtp_timeout = 2
            result, mail = self._send_invoice()
            self.assertEqual(result["params"]["type"], "danger")
            time.sleep(handler.delay)
            self._assert_delivered_once(server, mail)

    # 6. duplicate guard ---------------------------------------------------------

    def test_same_document_same_recipients_asks_again(self):
        result, _mail = self._send_invoice()
        self.assertEqual(result["params"]["type"], "success")
        wizard = self.open_wizard(self.invoice)
        with real_smtp_delivery():
            action = wizard.action_send()
        self.assertEqual(action["res_model"], "document.email.wizard")
        self.assertIn(self.invoice.name, wizard.duplicate_warning)
        self.assertEqual(len(self.received()), 1, "nothing sent without confirmation")
        with real_smtp_delivery():
            result = wizard.action_send_again()
        self.assertEqual(result["params"]["type"], "success")
        self.assertEqual(len(self.received()), 2)

    def test_duplicate_window_configurable(self):
        self._send_invoice()
        self.env["ir.config_parameter"].set_param(
            "account_document_email.duplicate_window_minutes", 0
        )
        result, _mail = self._send_invoice()
        self.assertEqual(result["params"]["type"], "success")
        # other recipients are not a duplicate
        self.env["ir.config_parameter"].set_param(
            "account_document_email.duplicate_window_minutes", 10
        )
        result, _mail = self._send_invoice(
            partner_ids=[Command.set(self.partner_b.ids)]
        )
        self.assertEqual(result["params"]["type"], "success")

    # 7. batch result --------------------------------------------------------------

    def test_batch_result_and_retry_failed(self):
        handler = ScriptedHandler()
        handler.rcpt_replies[self.partner_b.email] = "554 5.7.1 Rejected"
        invoice_b = self.init_invoice(
            "out_invoice", partner=self.partner_b, amounts=[20.0], post=True
        )
        lonely = self.init_invoice(
            "out_invoice", partner=self.partner_no_email, amounts=[5.0], post=True
        )
        with SMTPTestServer(handler=handler) as server:
            self._point_at(server)
            batch = self.send_in_background(
                self.open_wizard(self.invoice | invoice_b | lonely)
            )
            with real_smtp_delivery():
                self.env["mail.mail"].process_email_queue()
            batch.invalidate_recordset()
            counts = (batch.sent_count, batch.failed_count, batch.skipped_count)
            self.assertEqual(counts, (1, 1, 1))
            failed = batch.line_ids.filtered(lambda line: line.state == "failed")
            self.assertEqual(failed.res_id, invoice_b.id)
            self.assertIn("554", failed.failure_reason)
            handler.rcpt_replies.clear()
            batch.action_retry_failed()
            with real_smtp_delivery():
                self.env["mail.mail"].process_email_queue()
            batch.invalidate_recordset()
            self.assertEqual((batch.sent_count, batch.failed_count), (2, 0))
            received = sorted(m["rcpt_tos"][0] for m in server.messages)
            self.assertEqual(received, [self.partner_a.email, self.partner_b.email])

    # 8. bad input -------------------------------------------------------------------

    def test_idn_domain_sent_as_punycode(self):
        partner = self.env["res.partner"].create(
            {"name": "Librería", "email": "cliente@librería.example"}
        )
        invoice = self.init_invoice(
            "out_invoice", partner=partner, amounts=[1.0], post=True
        )
        result, _mail = self._send_invoice(invoice)
        self.assertEqual(
            result["params"]["type"], "success", result["params"]["message"]
        )
        [received] = self.received()
        self.assertEqual(received["rcpt_tos"], ["cliente@xn--librera-dza.example"])

    def test_non_ascii_local_part(self):
        partner = self.env["res.partner"].create(
            {"name": "José", "email": "josé@example.com"}
        )
        invoice = self.init_invoice(
            "out_invoice", partner=partner, amounts=[1.0], post=True
        )
        # a server without SMTPUTF8: a readable failure, the email kept
        with SMTPTestServer(enable_SMTPUTF8=False) as plain:
            self._point_at(plain)
            result, mail = self._send_invoice(invoice)
            self.assertFalse(plain.messages)
        self.assertEqual(
            result["params"]["type"], "danger", result["params"]["message"]
        )
        self.assertEqual(mail.state, "exception")
        self.assertIn("SMTPUTF8", mail.failure_reason)
        # a server offering SMTPUTF8 gets it
        with SMTPTestServer(enable_SMTPUTF8=True) as utf8:
            self._point_at(utf8)
            mail.action_retry()
            with real_smtp_delivery():
                self.env["mail.mail"].process_email_queue()
            self.assertEqual(mail.state, "sent", mail.failure_reason)
            self.assertEqual(utf8.messages[0]["rcpt_tos"], ["josé@example.com"])

    def test_attachment_user_may_not_read(self):
        """Another user's upload (not yet attached to anything) cannot be
        linked to an email by id."""
        owner = new_test_user(self.env, login="owner.upload", groups="base.group_user")
        secret = (
            self.env["ir.attachment"]
            .with_user(owner)
            .create(
                {
                    "name": "secret.txt",
                    "raw": b"secret",
                    "res_model": "mail.compose.message",
                }
            )
        )
        clerk = new_test_user(
            self.env,
            login="clerk.att",
            groups="account.group_account_invoice",
            company_id=self.env.company.id,
        )
        clerk_env = self.env(user=clerk, context={"force_report_rendering": True})
        with self.assertRaises(AccessError):
            secret.with_env(clerk_env).read(["datas"])
        wizard = self.open_wizard(self.invoice.with_env(clerk_env))
        wizard.write({"attachment_ids": [Command.link(secret.id)]})
        with self.assertRaises(AccessError):
            wizard.action_send()
        self.assertFalse(secret.res_id, "left where it was")
        self.assertFalse(self.received())

    # 9. access ---------------------------------------------------------------------

    def test_users_without_rights(self):
        portal = new_test_user(
            self.env, login="portal.user", groups="base.group_portal"
        )
        employee = new_test_user(
            self.env, login="plain.employee", groups="base.group_user"
        )
        for user in (portal, employee):
            with self.subTest(user=user.login), self.assertRaises(AccessError):
                self.env["document.email.wizard"].with_user(user).with_context(
                    active_model="account.move", active_ids=self.invoice.ids
                ).create({})
            with self.assertRaises(AccessError):
                self.env.company.with_user(user).read(["document_smtp_pass"])

    def test_report_route_refuses_other_users(self):
        portal = new_test_user(self.env, login="portal.pdf", groups="base.group_portal")
        self.authenticate("portal.pdf", "portal.pdf")
        response = self.url_open(
            f"/report/pdf/account.report_invoice/{self.invoice.id}"
        )
        self.assertNotEqual(response.headers.get("Content-Type"), "application/pdf")
        self.assertFalse(response.content.startswith(b"%PDF"))
        self.assertTrue(portal)

    def test_other_users_mail_attachments_not_readable(self):
        _result, mail = self._send_invoice()
        other = new_test_user(
            self.env,
            login="other.company.user",
            groups="account.group_account_invoice",
            company_id=self.setup_other_company(name="Elsewhere")["company"].id,
        )
        with self.assertRaises(AccessError):
            mail.attachment_ids.with_user(other).read(["datas"])
