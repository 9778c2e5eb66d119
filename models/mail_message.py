from odoo import models
from odoo.exceptions import UserError

from .mail_mail_confirmation import SENDING

CONFIRMATION_MODEL = "account.confirmation.request"
# what a user may still change on a request's own email message (a star, a
# pin): every other field (content, headers, Message-Id, alias domain) is
# written by the add-on's own paths (sudo, the queue) only
CONFIRMATION_USER_FIELDS = {"starred_partner_ids", "pinned_at"}


class MailMessage(models.Model):
    """A balance confirmation request's own email is evidence: its chatter
    message changes or goes only through the add-on's internal paths."""

    _inherit = "mail.message"

    def write(self, vals):
        # sending writes the Message-Id it used (core's _send)
        allowed = CONFIRMATION_USER_FIELDS | (
            {"message_id"} if SENDING.get() else set()
        )
        if set(vals) - allowed:
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
