from odoo import models


class AccountMove(models.Model):
    _name = "account.move"
    _inherit = ["account.move", "document.email.mixin"]

    def _get_document_email_partners(self):
        """An entry's partner only when it has exactly one: otherwise the
        user types the recipient."""
        self.ensure_one()
        if self.move_type == "entry":
            partners = self.partner_id | self.line_ids.partner_id
            return partners if len(partners) == 1 else partners.browse()
        return self.partner_id

    def _get_document_email_refusal(self):
        self.ensure_one()
        if self.is_purchase_document(include_receipts=True):
            return self.env._(
                "%(document)s is a vendor bill or refund: it is not sent from here.",
                document=self.display_name,
            )
        return False

    def _get_document_email_template_xmlid(self):
        self.ensure_one()
        if self.move_type == "entry":
            kind = "journal_entry"
        elif self.debit_origin_id:
            kind = "debit_note"
        elif self.move_type in ("out_refund", "in_refund"):
            kind = "credit_note"
        else:
            kind = "invoice"
        return f"account_document_email.mail_template_{kind}"

    def _get_document_email_report_xmlids(self):
        self.ensure_one()
        journal_entry = "account_document_email.action_report_journal_entry"
        if self.move_type == "entry":
            return [journal_entry, f"{journal_entry}_full"]
        return [
            "account.account_invoices",
            "account.account_invoices_without_payment",
            journal_entry,
        ]
