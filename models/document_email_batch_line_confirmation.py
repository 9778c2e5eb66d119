from odoo import models

AUDITOR_GROUP = "account_document_email.group_confirmation_auditor"

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


class DocumentEmailBatch(models.Model):
    """A batch of confirmation requests is the auditor's: only the auditor
    cancels or retries it; what its cancel leaves unsent is undelivered."""

    _inherit = "document.email.batch"

    def _check_confirmation_auditor(self):
        lines = self.sudo().line_ids.filtered(
            lambda line: line.res_model == CONFIRMATION_MODEL
        )
        if lines and not self.env.su:
            self.env["account.confirmation.campaign"]._check_auditor()
        return lines

    def action_cancel(self):
        lines = self._check_confirmation_auditor()
        # the lines still waiting now: those the cancel stops
        pending = lines.filtered(lambda line: line.stage == "pending")
        result = super().action_cancel()
        cancelled = pending.filtered(lambda line: line.stage == "cancelled")
        cancelled._confirmation_not_sent(self.env._("Cancelled before sending."))
        return result

    def action_retry_failed(self):
        self._check_confirmation_auditor()
        return super().action_retry_failed()
