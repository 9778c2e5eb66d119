"""Bounces come back to the document (issue 20 §2-§4): a real Dovecot
serves the company's mailbox (IMAP, STARTTLS for the test's APPEND, IMAPS for
Odoo's fetchmail.server, which has no STARTTLS); real bounces (tests/eml/)
are delivered into it and read by the add-on's own fetchmail.server."""

import os
import time
import unittest
from datetime import date
from unittest.mock import patch

from odoo import Command
from odoo.tests import new_test_user, tagged

from .aged_common import AgedReceivableMixin
from .common import real_smtp_delivery
from .document_common import DocumentEmailCase
from .dovecot import DovecotServer
from .postfix import PostfixServer, postfix_available

MAILBOX = "bounces@company.example.com"
MAILBOX_PASS = "mailbox-Pa55"
EML = os.path.join(os.path.dirname(__file__), "eml")


class BounceCase(DocumentEmailCase):
    """The company sends through a real SMTP server and reads its mailbox
    on a real Dovecot."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.dovecot = DovecotServer(MAILBOX, MAILBOX_PASS).__enter__()
        cls.addClassCleanup(cls.dovecot.__exit__, None, None, None)
        cls.env.company.sudo().write(
            {
                "document_incoming_use": True,
                "document_incoming_type": "imap",
                "document_incoming_host": "127.0.0.1",
                "document_incoming_port": cls.dovecot.ssl_port,
                "document_incoming_encryption": "ssl",
                "document_incoming_same_account": False,
                "document_incoming_user": MAILBOX,
                "document_incoming_pass": MAILBOX_PASS,
            }
        )
        cls.fetchmail = cls.env.company.sudo().document_fetchmail_server_id

    def _invoice(self, partner=None, salesperson=None):
        invoice = self.init_invoice(
            "out_invoice", partner=partner or self.partner_a, amounts=[100.0]
        )
        invoice.invoice_user_id = salesperson or False
        invoice.action_post()
        return invoice

    def _send(self, invoice):
        """Send the invoice through the company's server: its email."""
        with real_smtp_delivery():
            self.open_wizard(invoice).action_send()
        mail = invoice.document_email_mail_id
        self.assertEqual(mail.state, "sent", mail.failure_reason)
        return mail

    def _deliver(self, name, mail, recipient=None):
        """The fixture, answering ``mail`` (or a mail.message), delivered
        into the mailbox and read by the company's fetchmail.server."""
        with open(os.path.join(EML, name), encoding="utf-8") as fixture:
            text = fixture.read()
        recipient = recipient or mail.partner_ids[:1].email
        for marker, value in (
            ("__MESSAGE_ID__", mail.message_id),
            ("__SUBJECT__", mail.subject or mail.record_name),
            ("__MAILBOX__", MAILBOX),
            ("__RECIPIENT__", recipient),
            ("__OTHER_RECIPIENTS__", f"{recipient}, someone@other.example.com"),
        ):
            text = text.replace(marker, value)
        self.dovecot.append(text.replace("\r\n", "\n").replace("\n", "\r\n").encode())
        self._fetch()

    def _fetch(self):
        self.assertEqual(self.dovecot.count(), 1)
        # fetch_mail commits after each email, as the cron does: inside the
        # test's transaction that commit is a no-op
        with patch.object(self.env.cr, "commit", lambda: None):
            self.fetchmail.fetch_mail()
        self.assertEqual(self.dovecot.count(), 0, "read and marked as seen")


@tagged("post_install", "-at_install")
class TestBounces(BounceCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.salesperson = new_test_user(
            cls.env, login="bounce-sales", groups="account.group_account_invoice"
        )

    def _assert_bounced(self, invoice, mail, reason_parts, user):
        self.assertEqual(invoice.document_email_state, "bounced")
        self.assertTrue(invoice.is_move_sent, "core's meaning: it was sent")
        notification = mail.notification_ids
        self.assertRecordValues(
            notification,
            [{"notification_status": "bounce", "failure_type": "mail_bounce"}],
        )
        for part in reason_parts:
            self.assertIn(part, notification.failure_reason)
            self.assertIn(part, mail.failure_reason)
        self.assertEqual(self.partner_a.message_bounce, 1)
        activity = invoice.activity_ids
        self.assertEqual(len(activity), 1)
        self.assertEqual(activity.user_id, user)
        self.assertIn("Email bounced", activity.summary)
        self.assertIn(
            invoice,
            self.env["account.move"].search([("document_email_state", "=", "bounced")]),
        )
        self.assertEqual(invoice._document_email_undelivered(), invoice)

    def test_postfix_dsn(self):
        invoice = self._invoice(salesperson=self.salesperson)
        mail = self._send(invoice)
        self.assertEqual(invoice.document_email_state, "sent")
        self._deliver("postfix_dsn.eml", mail)
        self._assert_bounced(
            invoice,
            mail,
            ["Status 5.1.1", "550 5.1.1", "User unknown in local recipient table"],
            self.salesperson,
        )
        # a second bounce of the same email: no second activity
        self._deliver("postfix_dsn.eml", mail)
        self.assertEqual(len(invoice.activity_ids), 1)
        self.assertEqual(self.partner_a.message_bounce, 2, "counted as core does")

    def test_exchange_ndr(self):
        invoice = self._invoice()
        mail = self._send(invoice)
        self._deliver("exchange_ndr.eml", mail)
        self._assert_bounced(
            invoice,
            mail,
            ["Status 5.1.10", "RESOLVER.ADR.RecipientNotFound"],
            self.env.user,
        )

    def test_gmail_dsn_counted_by_the_batch(self):
        """Sent in a batch; the returned headers carry a Message-ID that is
        not ours: matched by the DSN's X-Original-Message-ID. The activity
        goes to the batch's user (no salesperson)."""
        invoices = self._invoice() + self._invoice(partner=self.partner_b)
        batch = self.send_in_background(self.open_wizard(invoices))
        with real_smtp_delivery():
            self.env["mail.mail"].process_email_queue()
        self.assertEqual((batch.sent_count, batch.bounced_count), (2, 0))
        self._deliver("gmail_dsn.eml", invoices[0].document_email_mail_id)
        batch.invalidate_recordset()
        self.assertEqual((batch.sent_count, batch.bounced_count), (1, 1))
        self.assertIn("1 bounced", batch.progress)
        self._assert_bounced(
            invoices[0],
            invoices[0].document_email_mail_id,
            ["Status 5.1.1", "The email account that you tried to reach"],
            batch.user_id,
        )
        self.assertEqual(invoices[1].document_email_state, "sent")

    def test_exim_text_bounce(self):
        """No DSN, no returned part: the original's headers are quoted in
        the text, which core does not read."""
        invoice = self._invoice(salesperson=self.salesperson)
        mail = self._send(invoice)
        self._deliver("exim_plain.eml", mail)
        self._assert_bounced(
            invoice, mail, ["550 5.1.1", "User unknown"], self.salesperson
        )
        self.assertNotIn("someone@other.example.com", mail.document_bounced_emails)

    def test_bounce_naming_no_recipient(self):
        """Two recipients, a bounce without DSN naming neither: the email
        bounced (for the document), no partner's notification or counter."""
        invoice = self._invoice(salesperson=self.salesperson)
        wizard = self.open_wizard(
            invoice, partner_ids=[Command.set((self.partner_a | self.partner_b).ids)]
        )
        with real_smtp_delivery():
            wizard.action_send()
        mail = invoice.document_email_mail_id
        self._deliver("exim_plain.eml", mail, "alias@forwarded.example.net")
        self.assertEqual(invoice.document_email_state, "bounced")
        self.assertIn("550 5.1.1", mail.failure_reason)
        self.assertFalse(mail.document_bounced_emails)
        self.assertEqual(
            set(mail.notification_ids.mapped("notification_status")), {"sent"}
        )
        self.assertEqual(self.partner_a.message_bounce, 0)
        self.assertEqual(len(invoice.activity_ids), 1)

    def test_delay_warning_is_no_bounce(self):
        invoice = self._invoice(salesperson=self.salesperson)
        mail = self._send(invoice)
        self._deliver("delayed_dsn.eml", mail)
        self.assertEqual(invoice.document_email_state, "sent")
        self.assertEqual(mail.notification_ids.notification_status, "sent")
        self.assertFalse(invoice.activity_ids)
        self.assertEqual(self.partner_a.message_bounce, 0)

    def test_reply_goes_to_the_chatter(self):
        invoice = self._invoice()
        mail = self._send(invoice)
        self._deliver("reply.eml", mail)
        reply = invoice.message_ids.filtered(
            lambda m: m.message_id == "<reply-1234@customer.example.com>"
        )
        self.assertEqual(len(reply), 1)
        self.assertIn("pay this invoice next week", reply.body)
        self.assertEqual(invoice.document_email_state, "sent")
        self.assertFalse(invoice.activity_ids)

    def test_bounce_of_another_email_left_to_core(self):
        """An email the add-on did not create (core's chatter): core's
        handling, unchanged (its reason is the bounce's whole text)."""
        invoice = self._invoice()
        message = invoice.message_post(
            body="Hello", partner_ids=self.partner_a.ids, message_type="comment"
        )
        self.assertFalse(
            self.env["mail.mail"]
            .sudo()
            .search(
                [("mail_message_id", "=", message.id), ("document_email", "=", True)]
            )
        )
        self._deliver("postfix_dsn.eml", message, self.partner_a.email)
        notification = message.notification_ids
        self.assertEqual(notification.notification_status, "bounce")
        self.assertIn("I'm sorry to have to inform you", notification.failure_reason)
        self.assertFalse(invoice.document_email_state)
        self.assertFalse(invoice.activity_ids)


@tagged("post_install", "-at_install")
class TestStatementBounce(AgedReceivableMixin, BounceCase):
    """A scheduled statement that bounced is not done: its customer is due
    again, flagged, and held back until the address changes."""

    def _run(self, today):
        self.env["res.partner"]._send_due_statements(today)
        self.process_batches()
        with real_smtp_delivery():
            self.env["mail.mail"].process_email_queue()
        return self.statement_mails(self.customer)

    def test_bounced_statement_held_until_the_address_changes(self):
        self.env.company.write(
            {"statement_schedule": "monthly", "statement_month_day": 5}
        )
        self.customer = self.create_customer(
            "Bouncing Ltd", email="wrong@customer.example.com"
        )
        self.create_receivable(self.customer, 1000, 40)
        mail = self._run(date(2024, 7, 5))
        self.assertEqual(mail.state, "sent", mail.failure_reason)
        self.assertEqual(self.customer.statement_next_date, date(2024, 8, 5))
        self._deliver("postfix_dsn.eml", mail)
        log = self.env["document.email.statement"].browse(mail.res_id)
        self.assertEqual(log.mail_state, "bounced")
        self.assertEqual(log.document_email_state, "bounced")
        self.assertEqual(self.customer.statement_next_date, date(2024, 7, 5))
        self.assertEqual(self.customer.message_bounce, 1)
        self.assertEqual(len(log.activity_ids), 1)
        self.assertIn("Email bounced", log.activity_ids.summary)
        # due again, but not sent again to the same address
        self.assertEqual(self._run(date(2024, 7, 6)), mail)
        self.customer.email = "right@customer.example.com"
        mails = self._run(date(2024, 7, 7))
        self.assertEqual(len(mails), 2)
        self.assertEqual((mails - mail).state, "sent")
        self.assertEqual(self.customer.statement_next_date, date(2024, 8, 5))


@tagged("post_install", "-at_install")
class TestPostfixBounce(BounceCase):
    """The company's server is a real Postfix: it takes the email, then
    bounces the unknown recipient with its own DSN into the mailbox."""

    @classmethod
    def setUpClass(cls):
        if not postfix_available():
            # its master process starts as root, then runs as "postfix"
            raise unittest.SkipTest("Postfix (scripts/setup.sh) needs root")
        super().setUpClass()
        cls.postfix = PostfixServer(
            cls.dovecot, ["company.example.com", "customer.example.com"]
        ).__enter__()
        cls.addClassCleanup(cls.postfix.__exit__, None, None, None)
        cls.env.company.sudo().write(
            {
                "document_smtp_use_default": False,
                "document_smtp_host": "127.0.0.1",
                "document_smtp_port": cls.postfix.port,
                "document_smtp_encryption": "none",
                "document_smtp_authentication": False,
                "document_smtp_user": False,
                "document_smtp_pass": False,
            }
        )

    def test_accepted_then_bounced(self):
        self.partner_a.email = "unknown@customer.example.com"
        invoice = self._invoice()
        mail = self._send(invoice)
        deadline = time.monotonic() + 30
        while not self.dovecot.count() and time.monotonic() < deadline:
            time.sleep(0.2)
        self.assertTrue(self.postfix.bounced(), self.postfix.log())
        self._fetch()
        self.assertEqual(invoice.document_email_state, "bounced")
        notification = mail.notification_ids
        self.assertEqual(notification.notification_status, "bounce")
        self.assertIn("Status 5.1.1", notification.failure_reason)
        self.assertIn("unknown@customer.example.com", mail.document_bounced_emails)
        self.assertEqual(self.partner_a.message_bounce, 1)
        self.assertEqual(len(invoice.activity_ids), 1)
