from odoo import models
from odoo.exceptions import UserError


class MailResendPartner(models.TransientModel):
    """A balance confirmation request's own email is sent again by the
    add-on's second request only: core's resend would send its message to an
    edited address through another path, outside the evidence."""

    _inherit = "mail.resend.partner"

    def action_resend(self):
        message = self.resend_wizard_id.mail_message_id.sudo()
        if message.model == "account.confirmation.request":
            request = self.env[message.model].sudo().browse(message.res_id)
            if message in request.confirmation_message_ids:
                raise UserError(
                    self.env._(
                        "This message is the email of a balance confirmation "
                        "request: send a second request instead of resending it."
                    )
                )
        return super().action_resend()
