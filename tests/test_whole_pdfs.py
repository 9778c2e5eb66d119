"""No half-drawn PDFs (issue 22, goal 6): Odoo cut its batch from 20 to 10
invoices per wkhtmltopdf call because 16 or more came out half-drawn
(odoo/odoo#236810). At each size our batches render together (a chunk of
CHUNK_SIZE documents; PDF_BATCH_SIZE per wkhtmltopdf call when chunks are
set larger), every invoice of many lines is read back from its own PDF
(pdfminer, tests/pdf_check.py): each line's label as a whole token, and the
Total row with the invoice's amount."""

from odoo import Command
from odoo.tests import tagged

from odoo.addons.account_document_email.models.document_email_batch import CHUNK_SIZE
from odoo.addons.account_document_email.models.ir_actions_report import (
    PDF_BATCH_SIZE,
)

from .common import pdf_text
from .document_common import DocumentEmailCase
from .pdf_check import missing_from_pdf, pdf_rows

LINES = 25


@tagged("post_install", "-at_install")
class TestWholePdfs(DocumentEmailCase):
    def _invoices(self, count, tag):
        # a customer each: one PDF per email, whatever groups emails
        partners = self.env["res.partner"].create(
            [
                {"name": f"Customer {tag}-{index}", "email": f"c{tag}{index}@ex.com"}
                for index in range(count)
            ]
        )
        moves = self.env["account.move"].create(
            [
                {
                    "move_type": "out_invoice",
                    "partner_id": partner.id,
                    "invoice_date": "2026-01-31",
                    "invoice_line_ids": [
                        Command.create(
                            {
                                "name": f"Item {tag}-{index}-{line}",
                                "quantity": 1,
                                "price_unit": 1000 * index + line + 1,
                                "tax_ids": [Command.clear()],
                            }
                        )
                        for line in range(LINES)
                    ],
                }
                for index, partner in enumerate(partners)
            ]
        )
        moves.action_post()
        return moves

    def _assert_whole(self, invoice, tag, index):
        mail = self.env["mail.mail"].search(
            [("model", "=", "account.move"), ("res_id", "=", invoice.id)]
        )
        pdfs = mail.attachment_ids.filtered(lambda a: a.mimetype == "application/pdf")
        self.assertEqual(len(pdfs), 1, invoice.name)
        self.assertIn(invoice.name, pdf_text(pdfs.raw))
        labels = [f"Item {tag}-{index}-{line}" for line in range(LINES)]
        total = invoice.currency_id.format(invoice.amount_total)
        missing = missing_from_pdf(pdfs.raw, labels, total)
        self.assertFalse(
            missing,
            f"{invoice.name}: missing from its PDF {missing}: {pdf_rows(pdfs.raw)}",
        )

    def _check_size(self, size, chunk_size):
        self.env["ir.config_parameter"].set_param(
            "account_document_email.batch_chunk_size", chunk_size
        )
        tag = f"s{size}"
        invoices = self._invoices(size, tag)
        self.send_in_background(self.open_wizard(invoices))
        for index, invoice in enumerate(invoices):
            self._assert_whole(invoice, tag, index)

    def test_chunk_of_the_default_size(self):
        self._check_size(CHUNK_SIZE, CHUNK_SIZE)

    def test_one_wkhtmltopdf_call_of_the_largest_size(self):
        self._check_size(PDF_BATCH_SIZE, PDF_BATCH_SIZE)
