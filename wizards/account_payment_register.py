from odoo import fields, models


class AccountPaymentRegister(models.TransientModel):
    _inherit = "account.payment.register"

    send_receipt_by_email = fields.Boolean(
        string="Send by email",
        help="Once the payments are created, open the email dialog on them: a "
        "receipt for customers, a payment advice for vendors.",
    )
    document_email_payment_ids = fields.Many2many(
        "account.payment",
        "account_payment_register_document_email_rel",
        "wizard_id",
        "payment_id",
        string="Payments to Email",
        readonly=True,
    )

    def _create_payments(self):
        payments = super()._create_payments()
        if self.send_receipt_by_email:
            self.document_email_payment_ids = payments
        return payments

    def action_create_payments(self):
        action = super().action_create_payments()
        if self.send_receipt_by_email and self.document_email_payment_ids:
            return self.document_email_payment_ids.action_send_document_email()
        return action
