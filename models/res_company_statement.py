from datetime import timedelta

from dateutil.relativedelta import relativedelta

from odoo import api, fields, models
from odoo.exceptions import ValidationError

WEEKDAYS = [
    ("0", "Monday"),
    ("1", "Tuesday"),
    ("2", "Wednesday"),
    ("3", "Thursday"),
    ("4", "Friday"),
    ("5", "Saturday"),
    ("6", "Sunday"),
]


class ResCompany(models.Model):
    """Scheduled customer statements: when they go out and what they show."""

    _inherit = "res.company"

    statement_schedule = fields.Selection(
        [("off", "Off"), ("monthly", "Monthly"), ("weekly", "Weekly")],
        string="Scheduled Statements",
        default="off",
        required=True,
    )
    statement_month_day = fields.Integer(
        "Statement Day of the Month",
        default=1,
        help="From 1 to 28, so that every month has it.",
    )
    statement_weekday = fields.Selection(
        WEEKDAYS, string="Statement Day of the Week", default="0", required=True
    )
    statement_include_activity = fields.Boolean(
        "Statements Show the Period's Activity",
        help="Opening balance, the invoices, credit notes and payments of the "
        "period, and closing balance, before the open items.",
    )
    statement_include_zero = fields.Boolean(
        "Statements for Zero Balances",
        help="Also send a statement to customers who owe nothing.",
    )

    @api.constrains("statement_month_day")
    def _check_statement_month_day(self):
        if any(not 1 <= company.statement_month_day <= 28 for company in self):
            raise ValidationError(
                self.env._("The statement day of the month must be from 1 to 28.")
            )

    def _get_statement_date_after(self, day, frequency):
        """The first statement date strictly after ``day`` for ``frequency``
        ("monthly" on the company's day of the month, "weekly" on its day of
        the week)."""
        self.ensure_one()
        if frequency == "weekly":
            weekday = int(self.statement_weekday)
            return day + timedelta(days=(weekday - day.weekday() - 1) % 7 + 1)
        candidate = day.replace(day=self.statement_month_day)
        return candidate if candidate > day else candidate + relativedelta(months=1)

    def _get_statement_period_start(self, statement_date, frequency):
        """The first day the statement of ``statement_date`` covers."""
        if frequency == "weekly":
            return statement_date - timedelta(days=6)
        return statement_date - relativedelta(months=1) + timedelta(days=1)
