from odoo import api, models


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
        GC then waits (it gives up after 10 s, runs again the next day)
        instead of deleting them. Any other create is core's."""
        if self.env.context.get("document_email_hold_gc"):
            self.env.cr.execute("LOCK TABLE ir_attachment IN ROW EXCLUSIVE MODE")
        return super().create(vals_list)
