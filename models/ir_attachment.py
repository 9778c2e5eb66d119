import logging
import time
from datetime import timedelta

from odoo import api, fields, models
from odoo.exceptions import UserError

_logger = logging.getLogger(__name__)

# a filestore GC refused by a batch's chunk tries again: after a short pause,
# a few times, then the auto-vacuum runs again soon (not the next day)
GC_RETRIES = 2
GC_RETRY_PAUSE = 5  # seconds
GC_RETRY_LATER = timedelta(minutes=10)


class IrAttachment(models.Model):
    _inherit = "ir.attachment"

    @api.model_create_multi
    def create(self, vals_list):
        """While the send wizard makes a document's files (context key
        ``document_email_hold_gc``: a batch chunk, an invoice's official
        files), first take the lock the INSERT takes: Odoo's filestore GC
        (auto-vacuum, SHARE lock on ir_attachment) deletes the checklisted
        files no committed attachment names, and create writes every file
        before its one INSERT (all of a chunk's official PDFs at once). The
        GC then waits (it gives up after 10 s and tries again, see
        _gc_file_store) instead of deleting them. Any other create is core's."""
        if self.env.context.get("document_email_hold_gc"):
            self.env.cr.execute("LOCK TABLE ir_attachment IN ROW EXCLUSIVE MODE")
        return super().create(vals_list)

    def write(self, vals):
        self._check_confirmation_answer_files()
        self._check_confirmation_email_files()
        return super().write(vals)

    def unlink(self):
        self._check_confirmation_answer_files()
        self._check_confirmation_email_files()
        return super().unlink()

    def _check_confirmation_email_files(self):
        """A balance confirmation's email (its letter, the email as the server
        accepted it) is evidence: nobody changes or deletes it through the ORM."""
        if not self.ids or self.env.su:
            return
        Request = self.env["account.confirmation.request"]
        files = self.sudo().filtered(lambda f: f.res_model == Request._name)
        if files and Request._is_email_evidence_file(files):
            raise UserError(
                self.env._(
                    "This file belongs to the email of a balance confirmation "
                    "request: it is evidence and can be neither changed nor "
                    "deleted."
                )
            )

    def _check_confirmation_answer_files(self):
        """A balance confirmation's answer file is evidence (its digest is in
        the chain): nobody changes or deletes it through the ORM."""
        if not self.ids or self.env.su:
            return
        answers = (
            self.env["account.confirmation.request"]
            .sudo()
            .search_count([("answer_attachment_id", "in", self.ids)], limit=1)
        )
        if answers:
            raise UserError(
                self.env._(
                    "This file is a partner's answer to a balance confirmation: "
                    "it is evidence and can be neither changed nor deleted."
                )
            )

    @api.autovacuum
    def _gc_file_store(self):
        """Core's GC gives up (False) when a chunk holds ir_attachment for
        more than 10 s, until the next day. While a batch runs, try again
        after a pause, a few times, then have the auto-vacuum run again in a
        few minutes: a long batch never starves the GC. Without a running
        batch, core's GC alone."""
        done = super()._gc_file_store()
        retries = 0
        while done is False and self._document_email_batch_running():
            if retries == GC_RETRIES:
                self._document_email_retry_gc_later()
                break
            retries += 1
            _logger.info(
                "filestore gc: ir_attachment held by a document batch, "
                "trying again in %s s",
                GC_RETRY_PAUSE,
            )
            time.sleep(GC_RETRY_PAUSE)
            done = super()._gc_file_store()
        return done

    @api.model
    def _document_email_batch_running(self):
        return bool(
            self.env["document.email.batch"]
            .sudo()
            .search_count([("state", "=", "processing")], limit=1)
        )

    @api.model
    def _document_email_retry_gc_later(self):
        cron = self.env.ref("base.autovacuum_job", raise_if_not_found=False)
        if cron:
            cron.sudo()._trigger(fields.Datetime.now() + GC_RETRY_LATER)
            _logger.info(
                "filestore gc: held by a document batch, the auto-vacuum runs "
                "again in %s",
                GC_RETRY_LATER,
            )
