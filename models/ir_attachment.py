from odoo import api, models

from .document_email_mixin import hold_filestore_gc


class IrAttachment(models.Model):
    _inherit = "ir.attachment"

    @api.model_create_multi
    def create(self, vals_list):
        # only while the send wizard makes a document's files (context key,
        # e.g. an invoice's official PDF and a localisation's e-invoice): the
        # files are written before the INSERT, so take its lock first
        if self.env.context.get("document_email_hold_gc"):
            hold_filestore_gc(self.env)
        return super().create(vals_list)
