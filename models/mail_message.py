from odoo import models
from odoo.exceptions import UserError

CONFIRMATION_MODEL = "account.confirmation.request"
# what the partner reads: sending still writes the rest (message_id, ...)
CONFIRMATION_CONTENT_FIELDS = {
    "body", "subject", "attachment_ids", "partner_ids", "email_from",
    "reply_to", "author_id", "model", "res_id", "mail_server_id",
}  # fmt: skip


class MailMessage(models.Model):
    """A balance confirmation request's own email is evidence: its chatter
    message changes or goes only through the add-on's internal paths."""

    _inherit = "mail.message"

    def write(self, vals):
        if CONFIRMATION_CONTENT_FIELDS.intersection(vals):
            self._check_confirmation_email_message()
        return super().write(vals)

    def unlink(self):
        self._check_confirmation_email_message()
        return super().unlink()

    def _check_confirmation_email_message(self):
        """Core checks write access on the request only: refused here for
        the request's own emails, whoever the user (sudo and the queue
        excepted)."""
        if self.env.su or self.env.user._is_superuser():
            return
        candidates = self.sudo().filtered(lambda m: m.model == CONFIRMATION_MODEL)
        if not candidates:
            return
        own = (
            self.env[CONFIRMATION_MODEL]
            .sudo()
            .search_count([("confirmation_message_ids", "in", candidates.ids)], limit=1)
        )
        if own:
            raise UserError(
                self.env._(
                    "This message is the email of a balance confirmation request: "
                    "it is evidence and can be neither changed nor deleted."
                )
            )
