from odoo import fields, models


class FetchmailServer(models.Model):
    _inherit = "fetchmail.server"

    document_company_id = fields.Many2one(
        "res.company",
        string="Documents of Company",
        readonly=True,
        index="btree_not_null",
        help="The company whose incoming mailbox settings drive this server: "
        "the mailbox receiving the bounces and replies of its documents.",
    )
