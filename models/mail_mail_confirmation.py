from contextvars import ContextVar

from odoo import models
from odoo.exceptions import UserError

from .mail_mail_claim import QUEUE_CLAIMING

CONFIRMATION_MODEL = "account.confirmation.request"
# what sending writes on a request's own email (core's _send, the add-on's
# queue), as whoever runs the queue; any other write, or these outside a
# send, changes it as superuser only
CONFIRMATION_QUEUE_FIELDS = {
    "state", "failure_reason", "failure_type", "message_id", "scheduled_date",
    "document_attempts", "document_sent_at", "document_uncertain",
    "document_bounced", "document_bounced_emails", "document_claim_pid",
    "document_claimed_until",
}  # fmt: skip
# set while send() runs, never from a caller's context (RPC cannot set it)
SENDING = ContextVar("confirmation_mail_sending", default=False)


class MailMail(models.Model):
    """A balance confirmation request counts as sent once the server took
    its email, and as undelivered when its email failed for good."""

    _inherit = "mail.mail"

    def write(self, vals):
        # a user's write of a state or a delivery time outside a send would
        # fake a delivery, of anything else change the content
        if not (SENDING.get() and set(vals) <= CONFIRMATION_QUEUE_FIELDS):
            self._check_confirmation_email_content()
        return super().write(vals)

    def send(self, *args, **kwargs):
        token = SENDING.set(True)
        try:
            return super().send(*args, **kwargs)
        finally:
            SENDING.reset(token)

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
