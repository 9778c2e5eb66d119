from contextlib import contextmanager
from datetime import date

from odoo.tests import tagged

from .aged_common import DATE_AT, AgedReceivableMixin
from .common import pdf_parts, pdf_text, real_smtp_delivery
from .document_common import DocumentEmailCase


@tagged("post_install", "-at_install")
class TestAgedReceivableEmail(AgedReceivableMixin, DocumentEmailCase):
    """Statements and confirmation letters from the Aged Receivables wizard,
    rendered for real and delivered to a real SMTP server."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.company = cls.env.company
        # else printing first asks an administrator to configure the layout
        cls.company.external_report_layout_id = cls.env.ref(
            "web.external_layout_standard"
        )
        cls.invoice_a = cls.create_receivable(cls.partner_a, 1234.5, 40)
        cls.invoice_b = cls.create_receivable(
            cls.partner_b, 678.25, -5, invoice_date=date(2024, 6, 20)
        )
        cls.create_receivable(cls.partner_b, 100, 95)

    def open_aged(self, **values):
        return self.env["account.aged.receivable.wizard"].create(
            {"date_at": DATE_AT, "interval_days": 30, **values}
        )

    def open_email_wizard(self, action):
        self.assertEqual(action["res_model"], "document.email.wizard")
        return (
            self.env["document.email.wizard"]
            .with_context(**action["context"])
            .create({})
        )

    def send_batch(self, wizard):
        batch = self.send_in_background(wizard)
        self.assertEqual((batch.queued_count, batch.skipped_count), (2, 0))
        with real_smtp_delivery():
            self.env["mail.mail"].process_email_queue()

    def received_pdf(self, address):
        [received] = self.messages_to(address)
        [(filename, content)] = pdf_parts(received["message"])
        return received["message"], filename, pdf_text(content)

    def test_list_one_row_per_customer(self):
        aged = self.open_aged()
        action = aged.action_list()
        lines = self.env[action["res_model"]].search(action["domain"])
        self.assertEqual(
            {
                line.partner_id: (
                    line.not_due,
                    line.period_2,
                    line.period_4,
                    line.total,
                )
                for line in lines
            },
            {
                self.partner_a: (0.0, 1234.5, 0.0, 1234.5),
                self.partner_b: (678.25, 0.0, 100.0, 778.25),
            },
        )
        self.assertEqual(action["context"]["aged_date_at"], "2024-06-30")
        # the header buttons act on the selected rows, or on every row
        lines = lines.with_context(**action["context"])
        report = lines.browse().action_statement()
        self.assertEqual(report["type"], "ir.actions.report")
        self.assertEqual(report["context"]["active_ids"], lines.partner_id.ids)
        self.assertEqual(report["context"]["aged_date_at"], "2024-06-30")
        first = lines.filtered(lambda line: line.partner_id == self.partner_a)
        self.assertEqual(
            first.action_letter()["context"]["active_ids"], self.partner_a.ids
        )

    def test_statements_by_email_one_per_customer(self):
        aged = self.open_aged(send_by_email=True)
        action = aged.action_list()
        lines = self.env[action["res_model"]].with_context(**action["context"])
        wizard = self.open_email_wizard(lines.action_statement())
        self.assertEqual(wizard.document_count, 2)
        self.assertEqual(
            wizard.report_id,
            self.env.ref("account_document_email.action_report_aged_statement"),
        )
        self.assertEqual(
            wizard.template_id,
            self.env.ref("account_document_email.mail_template_aged_statement"),
        )
        self.send_batch(wizard)
        message, filename, text = self.received_pdf("partner.a@customer.example.com")
        self.assertEqual(filename, "Statement - partner_a.pdf")
        self.assertIn("Statement of account at 06/30/2024", message["Subject"])
        body = message.get_body(("html",)).get_content()
        self.assertIn("1,234.50", body)
        for expected in (
            "Statement of Account",
            "partner_a",
            "06/30/2024",
            self.invoice_a.name,
            "05/21/2024",  # due date
            "$ 1,234.50",
            "31-60",
        ):
            self.assertIn(expected, text)
        self.assertNotIn(self.invoice_b.name, text)
        message, filename, text = self.received_pdf("partner.b@customer.example.com")
        self.assertEqual(filename, "Statement - partner_b.pdf")
        for expected in (self.invoice_b.name, "$ 678.25", "$ 100.00", "$ 778.25"):
            self.assertIn(expected, text)
        self.assertNotIn(self.invoice_a.name, text)
        self.assertNotIn("1,234.50", text)
        self.assertEqual(len(self.received()), 2)

    def aged_queries(self, document, partners):
        """Send ``document`` (statement or letter) to ``partners`` as a batch:
        the aged-balance queries its processing ran, and the queued emails."""
        aged = self.open_aged(send_by_email=True, partner_ids=partners.ids)
        wizard = self.open_email_wizard(getattr(aged, f"action_{document}")())
        self.assertEqual(wizard.document_count, len(partners))
        wizard.action_send()
        queries = []
        with contextmanager(self._patchExecute)(queries):
            self.process_batches()
        mails = self.statement_mails(partners)
        return sum("late_partial" in query for query in queries), mails

    def test_figures_once_per_batch_not_per_customer(self):
        """A batch of statements or letters reads the aged balances once for
        the subject and body of every customer (and once for the PDFs), not
        once per customer and template field: 2 customers or 6, the same
        queries; each email still shows its own customer's balance."""
        more = self.env["res.partner"]
        for n in range(4):
            more |= self.create_customer(
                f"Figures {n}", email=f"figures{n}@customer.example.com"
            )
            self.create_receivable(more[-1:], 1000 + n, 10 * n)
        few = self.partner_a | self.partner_b
        for document in ("statement", "letter"):
            small, small_mails = self.aged_queries(document, few)
            self.assertEqual(len(small_mails), 2)
            small_mails.unlink()  # else the next send asks about duplicates
            big, big_mails = self.aged_queries(document, few | more)
            self.assertEqual(len(big_mails), 6)
            self.assertTrue(small, "the processing reads the aged balances")
            self.assertEqual(small, big, document)
            self.assertLessEqual(big, 3, "templates once, the PDFs' report once")
            for mail in big_mails:
                [partner_id] = self.partner_ids_of(mail)
                partner = self.env["res.partner"].browse(partner_id)
                total = partner._get_aged_balance(DATE_AT)[partner.id]["total"]
                self.assertIn(f"{total:,.2f}", mail.body_html, partner.name)
            big_mails.unlink()

    def test_confirmation_letters_by_email(self):
        aged = self.open_aged(send_by_email=True, partner_ids=self.partner_b.ids)
        wizard = self.open_email_wizard(aged.action_letter())
        # a single customer: the letter is rendered in the wizard already
        self.assertEqual(
            wizard.template_id,
            self.env.ref("account_document_email.mail_template_aged_letter"),
        )
        self.assertIn("Balance confirmation at 06/30/2024", wizard.subject)
        self.assertIn("billing@company.example.com", wizard.body)
        self.assertEqual(
            wizard.attachment_ids.name, "Balance Confirmation - partner_b.pdf"
        )
        with real_smtp_delivery():
            wizard.action_send()
        _message, _filename, text = self.received_pdf("partner.b@customer.example.com")
        for expected in (
            "Confirmation of Balance",
            self.company.name,
            "06/30/2024",
            "$ 778.25",
            self.invoice_b.name,
            "billing@company.example.com",
        ):
            self.assertIn(expected, text)
        self.assertEqual(len(self.received()), 1)

    def test_letters_for_every_customer_by_email(self):
        wizard = self.open_email_wizard(
            self.open_aged(send_by_email=True).action_letter()
        )
        self.assertEqual(wizard.document_count, 2)
        self.send_batch(wizard)
        _message, _filename, text_a = self.received_pdf(
            "partner.a@customer.example.com"
        )
        _message, _filename, text_b = self.received_pdf(
            "partner.b@customer.example.com"
        )
        self.assertIn("$ 1,234.50", text_a)
        self.assertNotIn("$ 778.25", text_a)
        self.assertIn("$ 778.25", text_b)
        self.assertNotIn("$ 1,234.50", text_b)

    def test_print_statement_at_the_date(self):
        """Without the email option: the report action carries the date; a
        later date shows the amounts aged accordingly."""
        action = self.open_aged(date_at="2024-08-31").action_statement()
        self.assertEqual(
            action["report_name"], "account_document_email.report_aged_statement"
        )
        report = self.env.ref("account_document_email.action_report_aged_statement")
        content, _type = (
            self.env["ir.actions.report"]
            .with_context(**action["context"])
            ._render_qweb_pdf(report, self.partner_a.ids)
        )
        text = pdf_text(content)
        self.assertIn("08/31/2024", text)
        self.assertIn("102", text)  # days overdue at the later date
        self.assertIn("91-120", text)

    def test_print_aged_balance_of_every_customer(self):
        """The "Cartera por edades" printout: a row per customer, the day
        ranges as headings, totals per bucket and per customer."""
        aged = self.open_aged(interval_days=15)
        action = aged.action_print_balance()
        self.assertEqual(
            action["report_name"], "account_document_email.report_aged_balance"
        )
        report = self.env.ref("account_document_email.action_report_aged_balance")
        content, _type = self.env["ir.actions.report"]._render_qweb_pdf(
            report, aged.ids
        )
        text = pdf_text(content)
        for expected in (
            "Aged Receivables",
            "06/30/2024",
            "Not due",
            "1-15",
            "31-45",
            "46-60",
            "Over 60",
            "partner_a",
            "partner_b",
            "$ 1,234.50",  # partner_a, 31-45 and total
            "$ 778.25",  # partner_b's total
            # partner_b's row, then the totals row
            "$ 678.25 $ 0.00 $ 0.00 $ 0.00 $ 0.00 $ 100.00 $ 778.25",
            "$ 678.25 $ 0.00 $ 0.00 $ 1,234.50 $ 0.00 $ 100.00 $ 2,012.75",
        ):
            self.assertIn(expected, text)
        # the list's header button prints the same
        lines = aged.line_ids.with_context(aged_wizard_id=aged.id)
        self.assertEqual(
            lines.browse().action_print_balance()["report_name"],
            "account_document_email.report_aged_balance",
        )

    def test_print_aged_payables(self):
        vendor = self.create_customer("Vendor SA")
        self.create_receivable(vendor, 321.0, 10, move_type="in_invoice")
        aged = self.open_aged(account_type="liability_payable")
        action = aged.action_print_balance()
        self.assertEqual(aged.line_ids.partner_id, vendor)
        report = self.env.ref("account_document_email.action_report_aged_balance")
        text = pdf_text(
            self.env["ir.actions.report"]._render_qweb_pdf(report, aged.ids)[0]
        )
        for expected in ("Aged Payables", "Vendor", "Vendor SA", "$ 321.00"):
            self.assertIn(expected, text)
        self.assertNotIn("partner_a", text)
        self.assertEqual(action["type"], "ir.actions.report")
        # the vendor's statement, from the same screen
        statement = aged.action_statement()
        content, _type = (
            self.env["ir.actions.report"]
            .with_context(**statement["context"])
            ._render_qweb_pdf(
                self.env.ref("account_document_email.action_report_aged_statement"),
                vendor.ids,
            )
        )
        text = pdf_text(content)
        self.assertIn("Vendor", text)
        self.assertIn("$ 321.00", text)
        self.assertIn("1-30", text)


@tagged("post_install", "-at_install")
class TestAgedReceivableTour(AgedReceivableMixin, DocumentEmailCase):
    def test_tour_send_statements_from_the_list(self):
        customer_a = self.create_customer(
            "Tour Customer A", email="tour.a@customer.example.com"
        )
        customer_b = self.create_customer(
            "Tour Customer B", email="tour.b@customer.example.com"
        )
        self.create_receivable(customer_a, 1234.5, 40)
        self.create_receivable(customer_b, 678.25, 5)
        self.start_tour(
            "/odoo", "account_document_email_aged_receivable", login=self.env.user.login
        )
