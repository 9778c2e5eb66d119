"""Scheduled customer statements (issue #14): when they are due, to whom,
what they show, and that a customer's date moves on only once their
statement has really been delivered."""

from datetime import date, timedelta

from odoo.tests import tagged

from .aged_common import AgedReceivableMixin
from .common import (
    SMTPTestServer,
    free_port,
    pdf_parts,
    pdf_text,
    real_smtp_delivery,
)
from .document_common import DocumentEmailCase
from .test_reliability import DropAfterDataHandler

RUN = date(2024, 7, 5)  # a Friday, the company's day of the month


@tagged("post_install", "-at_install")
class TestStatementSchedule(AgedReceivableMixin, DocumentEmailCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.company = cls.env.company
        cls.company.external_report_layout_id = cls.env.ref(
            "web.external_layout_standard"
        )
        cls.company.write(
            {
                "statement_schedule": "monthly",
                "statement_month_day": 5,
                "statement_weekday": "0",
            }
        )
        cls.Partner = cls.env["res.partner"]
        cls.owing = cls.create_customer("Owing Ltd", email="owing@customer.example.com")
        cls.invoice = cls.create_receivable(cls.owing, 1000, 40)  # due 2024-05-21
        cls.settled = cls.create_customer(
            "Settled Ltd", email="settled@customer.example.com"
        )
        settled_invoice = cls.create_receivable(cls.settled, 300, 10)
        cls.pay(settled_invoice, 300, date(2024, 6, 25))
        cls.opted_out = cls.create_customer(
            "Opted Out Ltd",
            email="optout@customer.example.com",
            statement_frequency="never",
        )
        cls.create_receivable(cls.opted_out, 200, 10)
        cls.weekly = cls.create_customer(
            "Weekly Ltd",
            email="weekly@customer.example.com",
            statement_frequency="weekly",
        )
        cls.create_receivable(cls.weekly, 400, 3)

    def run_statements(self, today=RUN):
        before = self.env["mail.mail"].search(
            [("document_statement_date", "!=", False)]
        )
        self.Partner._send_due_statements(today)
        # each run is one batch, rendered and queued by its scheduled job
        self.process_batches()
        return (
            self.env["mail.mail"].search([("document_statement_date", "!=", False)])
            - before
        )

    def deliver(self):
        with real_smtp_delivery():
            self.env["mail.mail"].process_email_queue()

    def statement_text(self, address):
        [received] = self.messages_to(address)
        [(_filename, content)] = pdf_parts(received["message"])
        return pdf_text(content)

    # ------------------------------------------------------------------

    def test_schedule_dates(self):
        company = self.company
        self.assertEqual(
            company._get_statement_date_after(date(2024, 7, 4), "monthly"),
            date(2024, 7, 5),
        )
        self.assertEqual(
            company._get_statement_date_after(date(2024, 7, 5), "monthly"),
            date(2024, 8, 5),
        )
        self.assertEqual(
            company._get_statement_date_after(date(2024, 12, 20), "monthly"),
            date(2025, 1, 5),
        )
        # Mondays
        self.assertEqual(
            company._get_statement_date_after(date(2024, 7, 5), "weekly"),
            date(2024, 7, 8),
        )
        self.assertEqual(
            company._get_statement_date_after(date(2024, 7, 8), "weekly"),
            date(2024, 7, 15),
        )
        self.assertEqual(
            company._get_statement_period_start(date(2024, 7, 5), "monthly"),
            date(2024, 6, 6),
        )
        self.assertEqual(
            company._get_statement_period_start(date(2024, 7, 8), "weekly"),
            date(2024, 7, 2),
        )

    def test_recipients(self):
        """A contact marked for statements, else the invoice addresses, else
        the customer."""
        self.assertEqual(self.owing._get_statement_recipients(), self.owing)
        invoice_1, invoice_2, marked = self.Partner.create(
            [
                {
                    "name": "Invoices 1",
                    "type": "invoice",
                    "email": "inv1@owing.example.com",
                    "parent_id": self.owing.id,
                },
                {
                    "name": "Invoices 2",
                    "type": "invoice",
                    "email": "inv2@owing.example.com",
                    "parent_id": self.owing.id,
                },
                {
                    "name": "Controller",
                    "email": "controller@owing.example.com",
                    "parent_id": self.owing.id,
                },
            ]
        )
        self.assertEqual(self.owing._get_statement_recipients(), invoice_1 | invoice_2)
        marked.statement_contact = True
        self.assertEqual(self.owing._get_statement_recipients(), marked)
        # only in a statement run; sending by hand keeps its own rule
        self.assertEqual(self.owing._get_document_email_partners(), self.owing)
        self.assertEqual(
            self.owing.with_context(
                document_statement_run=True
            )._get_document_email_partners(),
            marked,
        )

    def test_run_sends_once_and_moves_the_date_when_delivered(self):
        mails = self.run_statements()
        # owing: due today; settled owes nothing; opted out; weekly: Monday
        self.assertEqual(self.partner_ids_of(mails), self.owing.ids)
        self.assertEqual(mails.document_statement_date, RUN)
        self.assertEqual(self.owing.statement_next_date, RUN, "not moved yet")
        self.assertEqual(self.settled.statement_next_date, date(2024, 8, 5))
        self.assertFalse(self.opted_out.statement_next_date)
        self.assertFalse(self.weekly.statement_next_date)
        # waiting in the queue: the next run does not send it again
        self.assertFalse(self.run_statements())
        self.deliver()
        self.assertEqual(mails.state, "sent")
        self.assertEqual(self.owing.statement_next_date, date(2024, 8, 5))
        text = self.statement_text("owing@customer.example.com")
        for expected in (
            "Statement of Account",
            "07/05/2024",
            self.invoice.name,
            "$ 1,000.00",
            "31-60",
        ):
            self.assertIn(expected, text)
        self.assertNotIn("Opening balance", text)
        self.assertEqual(len(self.received()), 1)
        # done for July
        self.assertFalse(self.run_statements(date(2024, 7, 6)))
        # 2024-08-05 is also a Monday
        self.assertEqual(
            set(self.partner_ids_of(self.run_statements(date(2024, 8, 5)))),
            {self.owing.id, self.weekly.id},
        )

    def test_statement_recorded_not_rendered_yet_not_queued_again(self):
        """A run whose batch has not been rendered yet (no email exists):
        the next run leaves its customers alone."""
        Line = self.env["document.email.batch.line"]
        self.Partner._send_due_statements(RUN)
        self.Partner._send_due_statements(RUN)
        lines = Line.search([("batch_id.res_model", "=", "res.partner")])
        self.assertEqual(lines.mapped("res_id"), self.owing.ids)
        self.process_batches()
        self.deliver()
        self.assertEqual(len(self.messages_to("owing@customer.example.com")), 1)

    def test_failed_send_retried_next_run_date_kept(self):
        self.company.document_smtp_port = free_port()  # nothing listens
        mails = self.run_statements()
        self.deliver()
        self.assertEqual(mails.state, "exception")
        self.assertEqual(self.owing.statement_next_date, RUN, "not moved on")
        self.company.document_smtp_port = self.smtp.port
        retried = self.run_statements(date(2024, 7, 6))
        self.assertEqual(self.partner_ids_of(retried), self.owing.ids)
        self.assertEqual(retried.document_statement_date, RUN, "the missed date")
        self.deliver()
        self.assertEqual(retried.state, "sent")
        self.assertEqual(self.owing.statement_next_date, date(2024, 8, 5))
        self.assertIn("07/05/2024", self.statement_text("owing@customer.example.com"))

    def test_opt_out_own_frequency_and_schedule_off(self):
        # first run on a Monday: the weekly customer only, the others'
        # first date is the company's next 5th
        mails = self.run_statements(date(2024, 7, 8))
        self.assertEqual(self.partner_ids_of(mails), self.weekly.ids)
        self.assertEqual(self.owing.statement_next_date, False)
        self.deliver()
        self.assertEqual(self.weekly.statement_next_date, date(2024, 7, 15))
        self.assertEqual(
            set(self.partner_ids_of(self.run_statements(date(2024, 8, 5)))),
            {self.owing.id, self.weekly.id},
        )
        self.env["mail.mail"].search([("state", "=", "outgoing")]).unlink()
        self.owing.statement_frequency = "never"
        self.company.statement_schedule = "off"
        self.assertFalse(self.run_statements(date(2024, 8, 5)))
        self.company.statement_schedule = "weekly"
        self.assertEqual(
            self.partner_ids_of(self.run_statements(date(2024, 8, 5))), self.weekly.ids
        )

    def test_zero_balance_sent_when_asked(self):
        self.company.statement_include_zero = True
        mails = self.run_statements()
        self.assertEqual(
            set(self.partner_ids_of(mails)), {self.owing.id, self.settled.id}
        )
        self.deliver()
        text = self.statement_text("settled@customer.example.com")
        self.assertIn("No open items.", text)
        self.assertIn("$ 0.00", text)

    def test_period_activity_and_a_section_per_currency(self):
        """Opening balance, the period's documents, closing balance; the
        euro customer's amounts in euros."""
        self.company.statement_include_activity = True
        eur = self.setup_other_currency("EUR", rates=[("2024-01-01", 2.0)])
        foreigner = self.create_customer(
            "Foreigner GmbH", email="foreigner@customer.example.com"
        )
        self.create_receivable(foreigner, 300, 10, currency=eur)
        self.create_receivable(foreigner, 50, 15)  # and one in dollars
        june = self.create_receivable(self.owing, 250, 20)
        self.pay(june, 100, date(2024, 7, 1))
        self.run_statements()
        self.deliver()
        text = self.statement_text("owing@customer.example.com")
        for expected in (
            "Opening balance",
            "$ 1,000.00",  # the invoice before the period
            june.name,
            "Invoice",
            "Payment",
            "100.00",
            "Closing balance",
            "$ 1,150.00",
        ):
            self.assertIn(expected, text)
        text = self.statement_text("foreigner@customer.example.com")
        self.assertIn("300.00 €", text)
        self.assertIn("$ 50.00", text)
        self.assertNotIn("$ 150.00", text, "the euros are not converted")
        self.assertIn("EUR", text)

    # issue 20: an uncertain delivery waits for a person ---------------------

    def test_uncertain_statement_never_sent_again(self):
        """The server stores the statement and drops the line: three daily
        runs deliver it once, the billing team is asked to check, once."""
        with SMTPTestServer(handler=DropAfterDataHandler()) as server:
            self.company.write(server.company_values())
            for day in range(3):
                self.run_statements(RUN + timedelta(days=day))
                self.deliver()
            delivered = [
                m
                for m in server.messages
                if "owing@customer.example.com" in m["rcpt_tos"]
            ]
        self.assertEqual(len(delivered), 1, "delivered once, never re-sent")
        mail = self.env["mail.mail"].search([("document_statement_date", "=", RUN)])
        self.assertEqual(mail.state, "exception")
        self.assertTrue(mail.document_uncertain)
        log = self.env["document.email.statement"].browse(mail.res_id)
        self.assertEqual(log.mail_state, "uncertain")
        self.assertEqual(len(log.activity_ids), 1, "flagged once, not every run")
        self.assertEqual(self.owing.statement_next_date, RUN, "not done either")
        # a person checked with the customer: done for July, nothing re-sent
        log.action_mark_delivered()
        self.assertEqual(log.mail_state, "handled")
        self.assertFalse(log.activity_ids)
        self.assertEqual(self.owing.statement_next_date, date(2024, 8, 5))
        self.assertFalse(self.run_statements(date(2024, 7, 9)))

    def test_uncertain_statement_retried_by_a_person(self):
        with SMTPTestServer(handler=DropAfterDataHandler()) as server:
            self.company.write(server.company_values())
            [mail] = self.run_statements()
            self.deliver()
            # the queue's run is a cron job that commits: what waits for its
            # commit runs (the send's in-flight mark is forgotten then)
            self.env.cr.postcommit.run()
        self.assertTrue(mail.document_uncertain)
        self.company.write(self.smtp.company_values())
        mail.action_retry()
        self.deliver()
        self.assertEqual(mail.state, "sent")
        self.assertFalse(mail.document_uncertain)
        self.assertEqual(self.owing.statement_next_date, date(2024, 8, 5))

    # issue 20: a customer without an address, named once per run ------------

    def test_customer_without_address_named_on_each_run(self):
        lost = self.create_customer("Lost Ltd")
        self.create_receivable(lost, 100, 10)
        wrong = self.create_customer("Wrong Ltd", email="not an address")
        self.create_receivable(wrong, 100, 10)
        self.weekly.statement_frequency = "never"  # one run a day, one result
        Batch = self.env["document.email.batch"]
        for day in range(4):
            before = Batch.search([])
            self.run_statements(RUN + timedelta(days=day))
            self.deliver()
            runs = Batch.search([("res_model", "=", "res.partner")]) - before
            self.assertEqual(len(runs), 1, "one result per run")
            self.assertEqual(runs.statement_unreachable_ids, lost | wrong)
            self.assertEqual(runs.state, "done")
        lines = self.env["document.email.batch.line"].search(
            [("batch_id.res_model", "=", "res.partner")]
        )
        self.assertEqual(lines.mapped("res_id"), self.owing.ids, "no skipped line")
        self.assertEqual(len(self.messages_to("owing@customer.example.com")), 1)
        # an address added: the missed statement goes out at the next run
        lost.email = "lost@customer.example.com"
        mails = self.run_statements(RUN + timedelta(days=4))
        self.assertEqual(self.partner_ids_of(mails), lost.ids)
        self.assertEqual(mails.document_statement_date, RUN)
