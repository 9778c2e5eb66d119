from odoo import api, fields, models
from odoo.exceptions import ValidationError

AGED_REPORTS = {
    "statement": "account_document_email.action_report_aged_statement",
    "letter": "account_document_email.action_report_aged_letter",
}


class AccountAgedReceivableWizard(models.TransientModel):
    """Aged receivables at a date: listed on screen, printed as customer
    statements or confirmation letters, or sent by email."""

    _name = "account.aged.receivable.wizard"
    _description = "Aged Receivables"

    date_at = fields.Date("At Date", required=True, default=fields.Date.context_today)
    interval_days = fields.Integer("Period Length (days)", required=True, default=30)
    partner_ids = fields.Many2many(
        "res.partner",
        string="Customers",
        help="Leave empty for every customer with an open receivable.",
    )
    send_by_email = fields.Boolean(
        help="Statements and letters open the Send by email wizard: one email "
        "per customer, with their own document."
    )
    line_ids = fields.One2many("account.aged.receivable.line", "wizard_id")

    @api.constrains("interval_days")
    def _check_interval_days(self):
        if any(wizard.interval_days <= 0 for wizard in self):
            raise ValidationError(self.env._("The period length must be positive."))

    def _get_aged_context(self):
        """What the reports and mail templates read the date and periods from."""
        self.ensure_one()
        return {
            "aged_date_at": fields.Date.to_string(self.date_at),
            "aged_interval_days": self.interval_days,
        }

    def _compute_lines(self):
        self.ensure_one()
        aged = self.partner_ids._get_aged_receivable(self.date_at, self.interval_days)
        self.line_ids.unlink()
        self.line_ids = [
            fields.Command.create(dict(amounts, partner_id=partner_id))
            for partner_id, amounts in aged.items()
        ]

    def action_list(self):
        self._compute_lines()
        return {
            "type": "ir.actions.act_window",
            "name": self.env._(
                "Aged Receivables at %(date)s (periods of %(days)s days)",
                date=fields.Date.to_string(self.date_at),
                days=self.interval_days,
            ),
            "res_model": "account.aged.receivable.line",
            "view_mode": "list",
            "views": [(False, "list")],
            "domain": [("wizard_id", "=", self.id)],
            "context": dict(
                self._get_aged_context(),
                aged_wizard_id=self.id,
                aged_send_by_email=self.send_by_email,
            ),
        }

    def action_statement(self):
        return self._action_document("statement", self._get_partners())

    def action_letter(self):
        return self._action_document("letter", self._get_partners())

    def _get_partners(self):
        """The chosen customers, or every customer with an open receivable."""
        self.ensure_one()
        return self.partner_ids or self.env["res.partner"].browse(
            list(
                self.partner_ids._get_aged_receivable(self.date_at, self.interval_days)
            )
        )

    def _action_document(self, document, partners):
        """Print ``document`` for these customers, or open the Send by email
        wizard on them when the option is set."""
        self.ensure_one()
        context = dict(self._get_aged_context(), aged_document=document)
        if self.send_by_email:
            return self.env["document.email.wizard"]._action_open(
                partners, context=context
            )
        report = self.env.ref(AGED_REPORTS[document])
        return report.with_context(**context).report_action(partners)


class AccountAgedReceivableLine(models.TransientModel):
    """One customer's row of the aged receivables listed on screen."""

    _name = "account.aged.receivable.line"
    _description = "Aged Receivables Line"
    _order = "total desc, id"

    wizard_id = fields.Many2one(
        "account.aged.receivable.wizard", required=True, ondelete="cascade"
    )
    partner_id = fields.Many2one("res.partner", "Customer", required=True)
    currency_id = fields.Many2one(
        "res.currency", default=lambda self: self.env.company.currency_id
    )
    not_due = fields.Monetary("Not Due")
    period_1 = fields.Monetary("Period 1", help="Overdue by 1 to N days.")
    period_2 = fields.Monetary("Period 2", help="Overdue by N+1 to 2N days.")
    period_3 = fields.Monetary("Period 3", help="Overdue by 2N+1 to 3N days.")
    period_4 = fields.Monetary("Period 4", help="Overdue by 3N+1 to 4N days.")
    older = fields.Monetary("Older", help="Overdue by more than 4N days.")
    total = fields.Monetary()

    def _get_wizard(self):
        return self.wizard_id[:1] or self.env["account.aged.receivable.wizard"].browse(
            self.env.context.get("aged_wizard_id")
        )

    def _action_document(self, document):
        """For the selected rows, or all the listed customers when none is."""
        wizard = self._get_wizard()
        return wizard._action_document(document, (self or wizard.line_ids).partner_id)

    def action_statement(self):
        return self._action_document("statement")

    def action_letter(self):
        return self._action_document("letter")
