from odoo import fields, models


class PrintPrenumberedChecks(models.TransientModel):
    _inherit = "print.prenumbered.checks"

    send_advice_by_email = fields.Boolean(
        string="Email the payment advice",
        help="Queue one email per cheque to its vendor, with the payment advice "
        "showing the cheque number and the bills it pays.",
    )

    def print_checks(self):
        action = super().print_checks()
        if self.send_advice_by_email:
            payments = self.env["account.payment"].browse(
                self.env.context["payment_ids"]
            )
            self.env["document.email.send"]._queue_documents(payments)
        return action
