import logging

from odoo import api, models

_logger = logging.getLogger(__name__)

from .ir_mail_server import DocumentSMTPMixin

CONFIRMATION_MODEL = "account.confirmation.request"


class IrMailServer(models.Model):
    """A balance confirmation request's email is kept as the mail server
    accepted it: the bytes handed to SMTP, on the request."""

    _inherit = "ir.mail_server"

    @api.model
    def send_email(self, message, *args, smtp_session=None, **kwargs):
        if isinstance(smtp_session, DocumentSMTPMixin):
            # a replay that sends nothing must not keep the previous bytes
            smtp_session.handed_over = None
        message_id = super().send_email(
            message, *args, smtp_session=smtp_session, **kwargs
        )
        raw = getattr(smtp_session, "handed_over", None)
        mail = self._get_confirmation_mail()
        if raw and mail:
            # the server took it: a copy that cannot be kept never makes the
            # email failed (the report then shows no copy kept)
            try:
                with self.env.cr.savepoint():
                    self._keep_confirmation_email(mail, raw)
            except Exception:
                _logger.exception("Email %s accepted, its copy not kept", message_id)
        return message_id

    @api.model
    def _get_confirmation_mail(self):
        """The queue's email (``document_email_mail_id``, never searched by
        Message-Id: a resend shares it) when it is a request's, with no query
        for the other emails (their record is in the cache)."""
        mail_id = self.env.context.get("document_email_mail_id")
        mail = self.env["mail.mail"].sudo().browse(mail_id)
        return mail if mail_id and mail.model == CONFIRMATION_MODEL else mail.browse()

    @api.model
    def _keep_confirmation_email(self, mail, raw):
        """When ``mail`` is a request's own: its bytes kept."""
        request = self.env[CONFIRMATION_MODEL].sudo().browse(mail.res_id).exists()
        if request and request._is_confirmation_mail(mail):
            request._keep_delivered_email(mail, raw)
