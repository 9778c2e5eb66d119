"""Payment reminders (issue 23): levels before and after the due date, the
invoices and customers left out, each level of the same invoices given once,
delivered through a real SMTP server with the invoices' real PDFs."""

from datetime import date, timedelta

from odoo.tests import TransactionCase, tagged

from .aged_common import DATE_AT, AgedReceivableMixin
from .common import pdf_parts, pdf_text, real_smtp_delivery
from .document_common import DocumentEmailCase


@tagged("post_install", "-at_install")
class TestPaymentReminders(AgedReceivableMixin, DocumentEmailCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.company = cls.env.company
        cls.company.external_report_layout_id = cls.env.ref(
            "web.external_layout_standard"
        )
        template = cls.env.ref("account_document_email.mail_template_payment_reminder")
        Level = cls.env["account.reminder.level"]
        cls.upcoming, cls.friendly, cls.second = Level.create(
            [
                {
                    "name": "Upcoming payment",
                    "days": -5,
                    "mail_template_id": template.id,
                    "attach_invoices": False,
                },
                {
                    "name": "Friendly reminder",
                    "days": 7,
                    "mail_template_id": template.id,
                },
                {
                    "name": "Second notice",
                    "days": 30,
                    "mail_template_id": template.id,
                    "attach_statement": True,
                },
            ]
        )
        cls.early = cls.create_customer("Early Ltd", email="early@customer.example.com")
        cls.early_invoice = cls.create_receivable(
            cls.early, 100, -3, invoice_date=DATE_AT - timedelta(days=27)
        )
        cls.not_yet = cls.create_customer("Not Yet Ltd", email="notyet@example.com")
        cls.create_receivable(cls.not_yet, 100, -10)
        cls.late = cls.create_customer("Late Ltd", email="late@customer.example.com")
        cls.late_invoices = cls.create_receivable(
            cls.late, 200, 10
        ) | cls.create_receivable(cls.late, 300, 40)

    def run_reminders(self, today=DATE_AT):
        """The daily job's run of ``today``, its batch rendered and queued,
        then the mail queue delivered to the SMTP server."""
        reminders = self.env["account.reminder.level"]._send_due_reminders(today)
        self.process_batches()
        with real_smtp_delivery():
            self.env["mail.mail"].process_email_queue()
        return reminders

    def reminders_of(self, partner):
        return self.env["document.email.statement"].search(
            [("document", "=", "reminder"), ("partner_id", "=", partner.id)]
        )

    # ------------------------------------------------------------------

    def test_levels_before_and_after_due_date(self):
        self.run_reminders()
        [early] = self.messages_to("early@customer.example.com")
        self.assertTrue(early["message"]["Subject"].startswith("Upcoming payment:"))
        self.assertIn(self.early_invoice.name, early["message"].get_body().as_string())
        self.assertEqual(pdf_parts(early["message"]), [], "that level attaches none")
        # the highest level reached, listing both overdue invoices
        [late] = self.messages_to("late@customer.example.com")
        self.assertTrue(late["message"]["Subject"].startswith("Second notice:"))
        body = late["message"].get_body(("html",)).get_content()
        for invoice in self.late_invoices:
            self.assertIn(invoice.name, body)
            self.assertIn(invoice.get_portal_url(), body.replace("&amp;", "&"))
        pdfs = dict(pdf_parts(late["message"]))
        self.assertEqual(len(pdfs), 3, "two invoices and the statement")
        for invoice in self.late_invoices:
            content = pdfs[invoice._get_invoice_report_filename()]
            self.assertIn(invoice.name, pdf_text(content))
        self.assertIn("Late Ltd", pdf_text(pdfs["Statement - Late Ltd.pdf"]))
        [history] = self.reminders_of(self.late)
        self.assertEqual(history.reminder_level_id, self.second)
        self.assertEqual(history.reminder_move_ids, self.late_invoices)
        self.assertEqual(history.mail_state, "sent")
        # the partner's chatter gets a note without figures
        note = self.late.message_ids[:1]
        self.assertIn("Second notice", note.body)
        self.assertNotIn("300.00", note.body)
        # an invoice due in 10 days has not reached the first level (-5)
        self.assertFalse(self.messages_to("notyet@example.com"))
        self.assertFalse(self.reminders_of(self.not_yet))

    def test_left_out_invoices_and_customers(self):
        flagged = self.create_customer(
            "Flagged Ltd", email="flagged@customer.example.com"
        )
        self.create_receivable(flagged, 500, 40).reminder_excluded = True
        self.create_receivable(flagged, 600, 40).reminder_dispute = True
        kept = self.create_receivable(flagged, 70, 10)
        opted_out = self.create_customer(
            "Opted Out Ltd",
            email="optout@customer.example.com",
            payment_reminder_excluded=True,
        )
        self.create_receivable(opted_out, 800, 40)
        self.run_reminders()
        self.assertFalse(self.messages_to("optout@customer.example.com"))
        [message] = self.messages_to("flagged@customer.example.com")
        # only the invoice not flagged, at its own level
        self.assertTrue(message["message"]["Subject"].startswith("Friendly reminder:"))
        self.assertEqual(self.reminders_of(flagged).reminder_move_ids, kept)

    def test_paid_invoices_never_reminded(self):
        paid = self.create_customer("Paid Ltd", email="paid@customer.example.com")
        self.pay(self.create_receivable(paid, 400, 40), 400, DATE_AT)
        self.run_reminders()
        self.assertFalse(self.messages_to("paid@customer.example.com"))
        self.assertEqual(len(self.messages_to("late@customer.example.com")), 1)
        # once paid, the next run (even at a later level) sends nothing
        for invoice in self.late_invoices:
            self.pay(invoice, invoice.amount_residual, DATE_AT)
        self.smtp.messages.clear()
        self.run_reminders(DATE_AT + timedelta(days=30))
        self.assertFalse(self.messages_to("late@customer.example.com"))

    def test_job_run_twice_sends_each_reminder_once(self):
        Level = self.env["account.reminder.level"]
        first = Level._send_due_reminders(DATE_AT)
        # before its batch is even rendered, then after delivery
        self.assertFalse(Level._send_due_reminders(DATE_AT))
        self.process_batches()
        self.assertFalse(Level._send_due_reminders(DATE_AT))
        self.run_reminders()
        self.run_reminders(DATE_AT + timedelta(days=1))
        self.assertEqual(len(first), 2)
        self.assertEqual(len(self.messages_to("late@customer.example.com")), 1)
        self.assertEqual(len(self.messages_to("early@customer.example.com")), 1)
        # the early invoice reaches the next level: reminded at that level
        self.smtp.messages.clear()
        self.run_reminders(DATE_AT + timedelta(days=10))
        [message] = self.messages_to("early@customer.example.com")
        self.assertTrue(message["message"]["Subject"].startswith("Friendly reminder:"))
        self.assertFalse(self.messages_to("late@customer.example.com"))

    def test_failed_reminder_is_not_given(self):
        self.run_reminders()
        [reminder] = self.reminders_of(self.late)
        mail = self.env["mail.mail"].search(
            [("model", "=", reminder._name), ("res_id", "=", reminder.id)]
        )
        mail.write({"state": "exception", "failure_reason": "mailbox full"})
        reminder.invalidate_recordset(["mail_state"])
        self.assertEqual(reminder.mail_state, "failed")
        self.smtp.messages.clear()
        self.run_reminders(DATE_AT + timedelta(days=1))
        self.assertEqual(len(self.messages_to("late@customer.example.com")), 1)
        self.assertFalse(self.messages_to("early@customer.example.com"))
        # a retried email counts as given again: nothing more
        mail.action_retry()
        self.assertFalse(
            self.env["account.reminder.level"]._send_due_reminders(
                DATE_AT + timedelta(days=2)
            )
        )

    def test_bounced_reminder_held_until_the_address_changes(self):
        """A bounced reminder is not given, yet not sent again every day to
        the same address: held until the address changes, also when the
        bounce names no recipient. (The bounce's reading from a real mailbox
        is tested in test_bounces; here it is handed to the email.)"""
        self.run_reminders()
        [reminder] = self.reminders_of(self.late)
        mail = self.env["mail.mail"].search(
            [("model", "=", reminder._name), ("res_id", "=", reminder.id)]
        )
        mail._document_receive_bounce(
            {"late@customer.example.com": "Status 5.1.1"}, "MAILER-DAEMON@mx.example"
        )
        reminder.invalidate_recordset(["mail_state"])
        self.assertTrue(mail.document_bounced)
        self.assertEqual(reminder.mail_state, "failed", "not given")
        self.smtp.messages.clear()
        self.run_reminders(DATE_AT + timedelta(days=1))
        self.assertFalse(self.messages_to("late@customer.example.com"))
        self.assertEqual(len(self.reminders_of(self.late)), 1)
        self.late.email = "ap@late.example.com"
        self.run_reminders(DATE_AT + timedelta(days=2))
        self.assertEqual(len(self.messages_to("ap@late.example.com")), 1)
        # bounced again, naming no recipient: held as well
        second = self.reminders_of(self.late)[0]
        self.env["mail.mail"].search(
            [("model", "=", second._name), ("res_id", "=", second.id)]
        )._document_receive_bounce({"": "550 no such user"}, "postmaster@mx.example")
        self.smtp.messages.clear()
        self.run_reminders(DATE_AT + timedelta(days=3))
        self.assertFalse(self.messages_to("ap@late.example.com"))
        self.assertEqual(len(self.reminders_of(self.late)), 2)

    def test_aged_screen_filters_by_last_level(self):
        self.run_reminders()
        wizard = self.env["account.aged.receivable.wizard"].create(
            {"date_at": DATE_AT, "reminder_level_id": self.second.id}
        )
        wizard.action_list()
        self.assertEqual(wizard.line_ids.partner_id, self.late)
        wizard.reminder_level_id = self.upcoming
        wizard.action_list()
        self.assertEqual(wizard.line_ids.partner_id, self.early)


@tagged("post_install", "-at_install")
class TestPaymentRemindersSpanish(AgedReceivableMixin, DocumentEmailCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env["res.lang"]._activate_lang("es_ES")
        cls.env["ir.module.module"]._load_module_terms(
            ["account_document_email"], ["es_ES"], overwrite=True
        )
        cls.level = cls.env["account.reminder.level"].create(
            {
                "name": "Friendly reminder",
                "days": 7,
                "mail_template_id": cls.env.ref(
                    "account_document_email.mail_template_payment_reminder"
                ).id,
                "attach_invoices": False,
            }
        )
        cls.level.with_context(lang="es_ES").name = "Recordatorio amistoso"
        cls.customer = cls.create_customer(
            "Cliente Moroso", lang="es_ES", email="moroso@example.com"
        )
        cls.invoice = cls.create_receivable(cls.customer, 250, 10)

    def test_spanish_wording(self):
        self.env["account.reminder.level"]._send_due_reminders(DATE_AT)
        self.process_batches()
        with real_smtp_delivery():
            self.env["mail.mail"].process_email_queue()
        [received] = self.messages_to("moroso@example.com")
        message = received["message"]
        self.assertEqual(
            message["Subject"],
            f"Recordatorio amistoso: facturas a pagar a {self.env.company.name}",
        )
        body = message.get_body(("html",)).get_content()
        self.assertIn("Estimado/a", body)
        self.assertIn("Fecha de vencimiento", body)
        self.assertIn(self.invoice.name, body)


@tagged("post_install", "-at_install")
class TestPaymentRemindersDemo(TransactionCase):
    """The demo has two levels and customers who reach each of them."""

    def test_demo_customers_reach_both_levels(self):
        friendly = self.env.ref(
            "account_document_email.demo_reminder_level_friendly",
            raise_if_not_found=False,
        )
        if not friendly:
            self.skipTest("installed without demo data")
        second = self.env.ref("account_document_email.demo_reminder_level_second")
        levels = self.env["account.reminder.level"].with_company(friendly.company_id)
        reminders = levels._send_due_reminders(date.today())
        fjord = self.env.ref("account_document_email.demo_reminder_customer_fjord")
        self.assertEqual(
            reminders.filtered(lambda r: r.partner_id == fjord).reminder_level_id,
            friendly,
        )
        self.assertIn(second, reminders.reminder_level_id)
        disputed = self.env.ref("account_document_email.demo_aged_move_danube_2")
        self.assertNotIn(disputed, reminders.reminder_move_ids)
