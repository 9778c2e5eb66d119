from odoo import models


class AccountPayment(models.Model):
    _name = "account.payment"
    _inherit = ["account.payment", "document.email.mixin"]

    def _get_document_email_template_xmlid(self):
        self.ensure_one()
        kind = "receipt" if self.payment_type == "inbound" else "advice"
        return f"account_document_email.mail_template_payment_{kind}"

    def _get_document_email_kind(self):
        self.ensure_one()
        if self.payment_type == "inbound":
            return self.env._("receipt"), self.env._("receipts")
        return self.env._("payment advice"), self.env._("payment advices")

    def _get_document_email_report_xmlids(self):
        self.ensure_one()
        receipt = "account.action_report_payment_receipt"
        advice = "account_document_email.action_report_payment_advice"
        if self.payment_type == "inbound":
            return [receipt, advice]
        return [advice, receipt]

    def action_post_and_send_document_email(self):
        """Confirm, then open the "Send by email" wizard on the payments."""
        self.action_post()
        return self.action_send_document_email()

    def _get_payment_advice_lines(self):
        """[(bill, amount this payment paid on it in the bill's currency)]; the
        amount is None when the payment has no journal entry to match."""
        self.ensure_one()
        lines = []
        for bill in self.reconciled_bill_ids | self.reconciled_invoice_ids:
            amount = None
            if self.move_id:
                partials = bill._get_reconciled_invoices_partials()[0]
                amount = sum(
                    abs(amount)
                    for _partial, amount, counterpart in partials
                    if counterpart.move_id == self.move_id
                )
            lines.append((bill, amount))
        return lines
