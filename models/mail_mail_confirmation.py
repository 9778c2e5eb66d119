from odoo import models
from odoo.exceptions import UserError

from .mail_mail_claim import QUEUE_CLAIMING

CONFIRMATION_MODEL = "account.confirmation.request"


class MailMail(models.Model):
    """A balance confirmation request counts as sent once the server took
    its email, and as undelivered when its email failed for good."""

    _inherit = "mail.mail"

    def write(self, vals):
        # the queue writes as superuser or sudo: a user's write of a state or
        # a delivery time would fake a delivery, of anything else the content
        self._check_confirmation_email_content()
        return super().write(vals)

    def unlink(self):
        self._check_confirmation_email_content()
        return super().unlink()

    def _check_confirmation_email_content(self):
        """A request's own email leaves as queued: its content and its row
        change through the add-on's internal paths only (sudo, the queue)."""
        if self.env.su or self.env.user._is_superuser():
            return
        for mail in self.sudo().filtered(lambda m: m.model == CONFIRMATION_MODEL):
            request = self.env[CONFIRMATION_MODEL].sudo().browse(mail.res_id).exists()
            if request and request._is_confirmation_mail(mail):
                raise UserError(
                    self.env._(
                        "This email is a balance confirmation request: it is "
                        "evidence and can be neither changed nor deleted."
                    )
                )

    def _postprocess_sent_message(
        self, success_pids, failure_reason=False, failure_type=None
    ):
        # in a documents session, the outcome waits for the add-on's own
        # classification (_document_after_send): a 4xx goes back to the queue
        if not self.env.context.get("document_email_mail_id"):
            self._confirmation_email_outcome(failure_reason)
        return super()._postprocess_sent_message(
            success_pids, failure_reason=failure_reason, failure_type=failure_type
        )

    def _document_after_send(self, smtp_session, auto_delete):
        result = super()._document_after_send(smtp_session, auto_delete)
        if not (auto_delete and not self.exists()):
            # the queue commits after the next connect: its job appends instead
            self._confirmation_email_outcome(inline=not QUEUE_CLAIMING.get())
        return result

    def _confirmation_email_outcome(self, failure_reason=False, inline=True):
        """The outcome of the requests' own emails among these."""
        for mail in self.filtered(lambda m: m.model == CONFIRMATION_MODEL):
            request = self.env[CONFIRMATION_MODEL].sudo().browse(mail.res_id).exists()
            if request:
                request._email_outcome(mail, failure_reason, inline=inline)
