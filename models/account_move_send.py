from odoo import api, models

from .document_email_mixin import hold_filestore_gc


class AccountMoveSend(models.AbstractModel):
    _inherit = "account.move.send"

    @api.model
    def _link_invoice_documents(self, invoices_data):
        # only when the send wizard makes the official files (context key)
        if self.env.context.get("document_email_hold_gc"):
            hold_filestore_gc(self.env)
        return super()._link_invoice_documents(invoices_data)
