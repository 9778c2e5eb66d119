from odoo import fields, models


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"

    statement_schedule = fields.Selection(
        related="company_id.statement_schedule", readonly=False
    )
    statement_month_day = fields.Integer(
        related="company_id.statement_month_day", readonly=False
    )
    statement_weekday = fields.Selection(
        related="company_id.statement_weekday", readonly=False
    )
    statement_include_activity = fields.Boolean(
        related="company_id.statement_include_activity", readonly=False
    )
    statement_include_zero = fields.Boolean(
        related="company_id.statement_include_zero", readonly=False
    )
