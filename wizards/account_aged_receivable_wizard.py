from odoo import api, fields, models
from odoo.exceptions import ValidationError

from ..models.res_partner import PAYABLE, RECEIVABLE

AGED_REPORTS = {
    "statement": "account_document_email.action_report_aged_statement",
    "letter": "account_document_email.action_report_aged_letter",
}


class AccountAgedReceivableWizard(models.TransientModel):
    """Aged receivables (or payables) at a date: listed on screen, printed as
    one aged balance of every partner, as statements or confirmation letters,
    or sent by email."""

    _name = "account.aged.receivable.wizard"
    _description = "Aged Receivables"

    date_at = fields.Date("At Date", required=True, default=fields.Date.context_today)
    interval_days = fields.Integer("Period Length (days)", required=True, default=30)
    account_type = fields.Selection(
        [(RECEIVABLE, "Receivables (customers)"), (PAYABLE, "Payables (vendors)")],
        string="Balance",
        required=True,
        default=RECEIVABLE,
    )
    by_currency = fields.Boolean(
        "In the Partner's Currency",
        help="Show the amounts of documents in another currency in that "
        "currency, one row per partner and currency, instead of converted to "
        "the company currency.",
    )
    partner_ids = fields.Many2many(
        "res.partner",
        string="Partners",
        help="Leave empty for every partner with an open balance. A contact "
        "stands for its company.",
    )
    send_by_email = fields.Boolean(
        help="Statements and letters open the Send by email wizard: one email "
        "per customer, with their own document."
    )
    reminder_level_id = fields.Many2one(
        "account.reminder.level",
        string="Last Reminder Level",
        help="Only the customers whose last payment reminder (not failed) was "
        "of this level.",
    )
    line_ids = fields.One2many("account.aged.receivable.line", "wizard_id")

    @api.constrains("interval_days")
    def _check_interval_days(self):
        if any(wizard.interval_days <= 0 for wizard in self):
            raise ValidationError(self.env._("The period length must be positive."))

    @api.onchange("partner_ids")
    def _onchange_partner_ids(self):
        # a contact's open items are its company's
        self.partner_ids = self.partner_ids.commercial_partner_id

    def _get_aged_context(self):
        """What the reports, mail templates and list headings read the date,
        periods, balance and currency option from."""
        self.ensure_one()
        return {
            "aged_date_at": fields.Date.to_string(self.date_at),
            "aged_interval_days": self.interval_days,
            "aged_account_type": self.account_type,
            "aged_by_currency": self.by_currency,
        }

    def _get_commercial_partners(self):
        return self.partner_ids.commercial_partner_id

    def _compute_lines(self):
        self.ensure_one()
        aged = self._filter_reminder_level(
            self._get_commercial_partners()._get_aged_balance_by_currency(
                self.date_at, self.interval_days, self.account_type, self.by_currency
            )
        )
        company_currency = self.env.company.currency_id
        self.line_ids.unlink()
        self.line_ids = [
            fields.Command.create(
                dict(amounts, partner_id=partner_id, currency_id=currency.id)
            )
            for partner_id, by_currency in aged.items()
            for currency, amounts in (by_currency.items() or [(company_currency, {})])
        ]

    def _get_title(self):
        self.ensure_one()
        if self.account_type == PAYABLE:
            return self.env._(
                "Aged Payables at %(date)s (periods of %(days)s days)",
                date=fields.Date.to_string(self.date_at),
                days=self.interval_days,
            )
        return self.env._(
            "Aged Receivables at %(date)s (periods of %(days)s days)",
            date=fields.Date.to_string(self.date_at),
            days=self.interval_days,
        )

    def action_list(self):
        self._compute_lines()
        return {
            "type": "ir.actions.act_window",
            "name": self._get_title(),
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

    def action_print_balance(self):
        """The aged balance of every listed partner, with totals per bucket."""
        self._compute_lines()
        report = self.env.ref("account_document_email.action_report_aged_balance")
        return report.report_action(self)

    def action_statement(self):
        return self._action_document("statement", self._get_partners())

    def action_letter(self):
        return self._action_document("letter", self._get_partners())

    def _get_partners(self):
        """The chosen partners, or every partner with an open balance (of
        the last reminder level chosen)."""
        self.ensure_one()
        partners = self._get_commercial_partners() or self.env["res.partner"].browse(
            list(
                self.partner_ids._get_aged_balance(
                    self.date_at, self.interval_days, self.account_type
                )
            )
        )
        return partners.browse(
            list(self._filter_reminder_level(dict.fromkeys(partners.ids)))
        )

    def _filter_reminder_level(self, by_partner):
        """``by_partner`` ({partner id: values}) without the partners whose
        last payment reminder was not of the level chosen, if any."""
        self.ensure_one()
        if not self.reminder_level_id:
            return by_partner
        partners = self.env["res.partner"].browse(list(by_partner))
        last_levels = partners._get_last_reminder_levels()
        return {
            partner_id: values
            for partner_id, values in by_partner.items()
            if last_levels.get(partner_id) == self.reminder_level_id
        }

    def _action_document(self, document, partners):
        """Print ``document`` for these partners, or open the Send by email
        wizard on them when the option is set."""
        self.ensure_one()
        context = dict(self._get_aged_context(), aged_document=document)
        if self.send_by_email:
            return partners._get_document_email_action(context=context)
        report = self.env.ref(AGED_REPORTS[document])
        return report.with_context(**context).report_action(partners)


class AccountAgedReceivableLine(models.TransientModel):
    """One partner's row (per currency) of the aged balance listed on screen."""

    _name = "account.aged.receivable.line"
    _description = "Aged Receivables Line"
    _order = "total desc, id"

    wizard_id = fields.Many2one(
        "account.aged.receivable.wizard", required=True, ondelete="cascade"
    )
    partner_id = fields.Many2one("res.partner", "Partner", required=True)
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

    @api.model
    def _get_view_cache_key(self, view_id=None, view_type="form", **options):
        key = super()._get_view_cache_key(view_id, view_type, **options)
        context = self.env.context
        return key + (
            context.get("aged_interval_days"),
            context.get("aged_account_type"),
        )

    @api.model
    def _get_view(self, view_id=None, view_type="form", **options):
        """Headings with the day ranges of the chosen interval ("1-30", ...)
        and "Vendor" for payables, read from the list action's context."""
        arch, view = super()._get_view(view_id, view_type, **options)
        context = self.env.context
        partners = self.env["res.partner"]
        headings = dict(
            partners._get_aged_bucket_labels(
                int(context.get("aged_interval_days") or 30)
            ),
            partner_id=(
                self.env._("Vendor")
                if context.get("aged_account_type") == PAYABLE
                else self.env._("Customer")
            ),
        )
        for node in arch.xpath("//field[@name]"):
            if node.get("name") in headings and not node.get("string"):
                node.set("string", headings[node.get("name")])
        return arch, view

    def _get_wizard(self):
        return self.wizard_id[:1] or self.env["account.aged.receivable.wizard"].browse(
            self.env.context.get("aged_wizard_id")
        )

    def _action_document(self, document):
        """For the selected rows, or all the listed partners when none is."""
        wizard = self._get_wizard()
        return wizard._action_document(document, (self or wizard.line_ids).partner_id)

    def action_statement(self):
        return self._action_document("statement")

    def action_letter(self):
        return self._action_document("letter")

    def action_print_balance(self):
        return self._get_wizard().action_print_balance()

    def action_open_items(self):
        """The journal items behind this row: the partner's items open at the
        date (in the row's currency when the amounts are by currency)."""
        self.ensure_one()
        wizard = self._get_wizard()
        items = self.partner_id._get_aged_balance_items(
            wizard.date_at, wizard.account_type, wizard.by_currency
        )[self.partner_id.id]
        if wizard.by_currency:
            items = [item for item in items if item["currency"] == self.currency_id]
        return {
            "type": "ir.actions.act_window",
            "name": self.env._(
                "Open items of %(partner)s at %(date)s",
                partner=self.partner_id.display_name,
                date=fields.Date.to_string(wizard.date_at),
            ),
            "res_model": "account.move.line",
            "view_mode": "list,form",
            "views": [
                (self.env.ref("account.view_move_line_tree").id, "list"),
                (False, "form"),
            ],
            "domain": [("id", "in", [item["id"] for item in items])],
            "context": {"search_default_group_by_move": False, "create": False},
        }
