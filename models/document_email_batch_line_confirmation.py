from odoo import models

CONFIRMATION_MODEL = "account.confirmation.request"


class DocumentEmailBatchLine(models.Model):
    """A confirmation request its batch skips or cannot render never left:
    undelivered at once, not "being sent" until the deadline."""

    _inherit = "document.email.batch.line"

    def _skip(self, reason):
        result = super()._skip(reason)
        self._confirmation_not_sent(reason)
        return result

    def _fail(self, reason):
        result = super()._fail(reason)
        self._confirmation_not_sent(reason)
        return result

    def _confirmation_not_sent(self, reason):
        lines = self.filtered(lambda line: line.res_model == CONFIRMATION_MODEL)
        requests = self.env[CONFIRMATION_MODEL].sudo().browse(lines.mapped("res_id"))
        requests.exists()._batch_not_sent(reason)
