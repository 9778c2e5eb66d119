from odoo import fields, models


class DocumentEmailBatch(models.Model):
    """A scheduled statement run's result also names the customers it left
    out for want of a usable address: once per run, not a line each day."""

    _inherit = "document.email.batch"

    statement_unreachable_ids = fields.Many2many(
        "res.partner",
        "document_email_batch_unreachable_rel",
        "batch_id",
        "partner_id",
        string="Customers without an address",
        readonly=True,
        help="Customers whose statement was due in this run but who have no "
        "valid email address (nor a statement or invoice contact with one): "
        "nothing was sent to them; they stay due until an address is added.",
    )
