from odoo import fields, models


class AccountMove(models.Model):
    """Invoices left out of payment reminders."""

    _inherit = "account.move"

    reminder_excluded = fields.Boolean(
        "No Reminder",
        copy=False,
        tracking=True,
        help="Payment reminders leave this invoice out.",
    )
    # a dispute is a fact of its own (shown, searched, then resolved), not
    # the policy "No reminder" says: both leave the invoice out
    reminder_dispute = fields.Boolean(
        "In Dispute",
        copy=False,
        tracking=True,
        help="The customer disputes this invoice: payment reminders leave it "
        "out until the dispute is resolved.",
    )

    def _get_reminder_pdf_files(self):
        """{invoice id: [its official PDF]}, made by core's Send if it has
        none yet (its e-invoice files stay out of a reminder)."""
        send = self.env["account.move.send"]
        files = {}
        for report, invoices in self.grouped(send._get_default_pdf_report_id).items():
            files.update(invoices._get_document_email_files(report))
        return {
            invoice_id: [f for f in invoice_files if f["mimetype"] == "application/pdf"]
            for invoice_id, invoice_files in files.items()
        }
