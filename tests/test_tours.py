import json

from odoo import Command
from odoo.tests import tagged

from .aged_common import AgedReceivableMixin
from .common import pdf_parts, pdf_text, real_smtp_delivery
from .document_common import DocumentEmailCase


@tagged("post_install", "-at_install")
class TestTours(AgedReceivableMixin, DocumentEmailCase):
    """The seed's paths, clicked through in headless Chromium."""

    def tour(self, url, name, login=None, **storage):
        """Run the tour; ``storage`` is put in the browser's localStorage
        first, for values only known at run time (e.g. a port)."""
        login = login or self.env.user.login
        if not storage:
            return self.start_tour(url, name, login=login)
        options = {"stepDelay": 0, "keepWatchBrowser": False, "debug": False}
        code = "".join(
            f"localStorage.setItem({json.dumps(key)}, {json.dumps(str(value))});"
            for key, value in storage.items()
        )
        code += f"odoo.startTour({json.dumps(name)}, {json.dumps(options)})"
        return self.start_tour(url, name, login=login, code=code)

    def mails_of(self, records):
        self.env.invalidate_all()  # the browser worked in its own environment
        self.process_batches()  # as the batch's scheduled job would
        return self.env["mail.mail"].search(
            [("model", "=", records._name), ("res_id", "in", records.ids)]
        )

    def received_report(self, address):
        """The one email to ``address`` and the text of its report. Rendered
        in the browser's request, where Odoo's test mode renders the report
        as HTML (wkhtmltopdf could not fetch the assets meanwhile): real PDFs
        are proven by the tests that send from Python."""
        [received] = self.messages_to(address)
        [(filename, content)] = pdf_parts(received["message"])
        self.assertTrue(filename.endswith(".pdf"), filename)
        if content.startswith(b"%PDF"):  # batches render in the job: real PDFs
            return received["message"], pdf_text(content)
        return received["message"], content.decode()

    def assert_delivered(self, document, address, subject):
        message, report = self.received_report(address)
        self.assertEqual(message["Subject"], subject)
        self.assertIn(document.name, report)

    def test_invoice_envelope_send_confirm(self):
        invoice = self.init_invoice(
            "out_invoice", partner=self.partner_a, amounts=[100.0], post=True
        )
        url = f"/odoo/action-account.action_move_out_invoice_type/{invoice.id}"
        # the browser's request delivers for real to the test SMTP server
        with real_smtp_delivery():
            self.start_tour(
                url, "account_document_email_invoice_tour", login=self.env.user.login
            )
        [received] = self.received()
        self.assertEqual(received["rcpt_tos"], [self.partner_a.email])
        self.assertIn(invoice.name, received["message"]["Subject"])

    def test_settings_outgoing_server(self):
        # the administrator's company, still on Odoo's default service
        company = self.env.ref("base.user_admin").company_id
        # test data has pricelists without the pricelist feature: the settings
        # would open with a warning about it
        self.env["product.pricelist"].search([]).action_archive()
        company.write(
            {
                "document_smtp_use_default": True,
                "document_smtp_encryption": "starttls",
                "document_smtp_port": 587,
                "document_smtp_authentication": True,
            }
        )
        with real_smtp_delivery():
            self.tour(
                "/odoo/settings",
                "account_document_email_settings",
                login="admin",
                **{"account_document_email.smtp_port": self.smtp.port},
            )
        self.env.invalidate_all()
        self.assertRecordValues(
            company,
            [
                {
                    "document_smtp_use_default": False,
                    "document_smtp_host": "127.0.0.1",
                    "document_smtp_port": self.smtp.port,
                    "document_smtp_encryption": "none",
                    "document_smtp_authentication": False,
                }
            ],
        )
        self.assertEqual(
            company.sudo().document_mail_server_id.smtp_port, self.smtp.port
        )
        [received] = self.received()
        self.assertEqual(received["rcpt_tos"], ["tester@example.com"])
        self.assertEqual(
            received["message"]["Subject"], f"Test email from {company.name}"
        )

    def test_invoice_list_batch_send(self):
        invoices = self.env["account.move"]
        for name in ("Tour Batch A", "Tour Batch B"):
            customer = self.create_customer(
                name, email=f"{name[-1].lower()}.batch@customer.example.com"
            )
            invoices |= self.init_invoice(
                "out_invoice", partner=customer, amounts=[100.0], post=True
            )
        self.tour(
            "/odoo/action-account.action_move_out_invoice_type",
            "account_document_email_invoice_list_tour",
        )
        mails = self.mails_of(invoices)
        self.assertEqual(len(mails), 2)
        self.assertEqual(set(mails.mapped("state")), {"outgoing"}, "queued")
        self.assertFalse(self.received())
        with real_smtp_delivery():
            self.env["mail.mail"].process_email_queue()
        self.assertEqual(set(mails.mapped("state")), {"sent"})
        for invoice in invoices:
            self.assert_delivered(
                invoice,
                invoice.partner_id.email,
                f"Invoice {invoice.name} from {invoice.company_id.name}",
            )
        self.assertEqual(len(self.received()), 2)

    def test_vendor_payment_advice(self):
        payment = self.env["account.payment"].create(
            {
                "payment_type": "outbound",
                "partner_type": "supplier",
                "partner_id": self.partner_b.id,
                "amount": 75.0,
                "journal_id": self.company_data["default_journal_bank"].id,
            }
        )
        payment.action_post()
        with real_smtp_delivery():
            self.tour(
                f"/odoo/action-account.action_account_payments_payable/{payment.id}",
                "account_document_email_payment_advice_tour",
            )
        self.assert_delivered(
            payment,
            self.partner_b.email,
            f"Payment advice {payment.name} from {payment.company_id.name}",
        )
        self.assertEqual(len(self.received()), 1)

    def test_journal_entry(self):
        data = self.company_data
        entry = self.env["account.move"].create(
            {
                "move_type": "entry",
                "journal_id": data["default_journal_misc"].id,
                "partner_id": self.partner_a.id,
                "line_ids": [
                    Command.create(
                        {"account_id": data["default_account_expense"].id, "debit": 30}
                    ),
                    Command.create(
                        {"account_id": data["default_account_revenue"].id, "credit": 30}
                    ),
                ],
            }
        )
        entry.action_post()
        with real_smtp_delivery():
            self.tour(
                f"/odoo/action-account.action_move_journal_line/{entry.id}",
                "account_document_email_journal_entry_tour",
            )
        self.assert_delivered(
            entry,
            self.partner_a.email,
            f"Journal entry {entry.name} from {entry.company_id.name}",
        )
        self.assertEqual(len(self.received()), 1)

    def test_sale_order(self):
        order = self.env["sale.order"].create(
            {
                "partner_id": self.partner_a.id,
                "order_line": [Command.create({"product_id": self.product_a.id})],
            }
        )
        with real_smtp_delivery():
            self.tour(
                f"/odoo/action-sale.action_quotations_with_onboarding/{order.id}",
                "account_document_email_sale_order_tour",
            )
        self.assert_delivered(
            order,
            self.partner_a.email,
            f"Quotation {order.name} from {order.company_id.name}",
        )
        self.assertEqual(len(self.received()), 1)

    def test_confirmation_letters_from_aged_list(self):
        customers = self.create_customer(
            "Tour Customer A", email="tour.a@customer.example.com"
        ) | self.create_customer("Tour Customer B", email="tour.b@customer.example.com")
        self.create_receivable(customers[0], 1234.5, 40)
        self.create_receivable(customers[1], 678.25, 5)
        self.tour("/odoo", "account_document_email_confirmation_letter_tour")
        self.mails_of(customers)  # the batch, processed
        # letters are kept on their statement records, not on the customers
        self.assertEqual(len(self.statement_mails(customers)), 2)
        self.assertFalse(self.received())
        with real_smtp_delivery():
            self.env["mail.mail"].process_email_queue()
        for customer, amount, other in (
            (customers[0], "1,234.50", "678.25"),
            (customers[1], "678.25", "1,234.50"),
        ):
            message, report = self.received_report(customer.email)
            self.assertIn("Balance confirmation at 06/30/2024", message["Subject"])
            self.assertIn("Confirmation of Balance", report)
            self.assertIn(customer.name, report)
            self.assertIn(amount, report)
            self.assertNotIn(other, report)
        self.assertEqual(len(self.received()), 2)
