from odoo import models

CONFIRMATION_MODEL = "account.confirmation.request"


class MailMail(models.Model):
    """A balance confirmation request counts as sent once the server took
    its email, and as undelivered when its email failed."""

    _inherit = "mail.mail"

    def _postprocess_sent_message(
        self, success_pids, failure_reason=False, failure_type=None
    ):
        for mail in self.filtered(lambda m: m.model == CONFIRMATION_MODEL):
            request = self.env[CONFIRMATION_MODEL].sudo().browse(mail.res_id).exists()
            request._email_outcome(mail, failure_reason)
        return super()._postprocess_sent_message(
            success_pids, failure_reason=failure_reason, failure_type=failure_type
        )
