import random

from odoo import Command, api, fields, models
from odoo.exceptions import UserError
from odoo.tools import SQL

ACCOUNT_TYPES = {
    "customer": ("asset_receivable",),
    "vendor": ("liability_payable",),
    "both": ("asset_receivable", "liability_payable"),
}


class AccountConfirmationCampaign(models.Model):
    """A balance confirmation campaign (ISA 505): which partners are asked to
    confirm their balance at a date, how, and until when."""

    _name = "account.confirmation.campaign"
    _description = "Balance Confirmation Campaign"
    _inherit = ["mail.thread"]
    _order = "date_at desc, id desc"
    _check_company_auto = True

    name = fields.Char(required=True, tracking=True)
    company_id = fields.Many2one(
        "res.company", required=True, default=lambda self: self.env.company
    )
    currency_id = fields.Many2one(related="company_id.currency_id")
    state = fields.Selection(
        [("draft", "Draft"), ("sent", "Sent"), ("closed", "Closed")],
        default="draft",
        required=True,
        tracking=True,
    )
    date_at = fields.Date(
        "Balances at",
        required=True,
        default=fields.Date.context_today,
        help="The date of the balances the partners are asked to confirm.",
    )
    kind = fields.Selection(
        [("positive", "Positive"), ("negative", "Negative")],
        required=True,
        default="positive",
        help="Positive: every partner is asked to answer, agreeing or not. "
        "Negative: partners answer only when they disagree; no answer by the "
        "deadline counts as no exception reported.",
    )
    partner_scope = fields.Selection(
        [("customer", "Customers"), ("vendor", "Vendors"), ("both", "Both")],
        "Partners",
        required=True,
        default="customer",
    )
    selection_rule = fields.Selection(
        [
            ("all", "All with a balance"),
            ("threshold", "Balance of at least an amount"),
            ("largest", "The largest balances"),
            ("random", "Random sample"),
        ],
        required=True,
        default="all",
    )
    threshold_amount = fields.Monetary("Minimum Balance", currency_field="currency_id")
    sample_size = fields.Integer("Number of Partners", default=10)
    random_seed = fields.Integer(
        "Random Seed",
        default=lambda self: random.SystemRandom().randint(1, 999999),
        copy=False,
        help="The same seed on the same balances selects the same sample: "
        "give it to the auditor so the sample can be reproduced.",
    )
    reply_email = fields.Char(
        "Copy Answers To",
        default=lambda self: self.env.company.email,
        help="Every answer is emailed to this address: the company's, or the "
        "auditor's when the auditor controls the replies.",
    )
    deadline = fields.Date("Reply Deadline", required=True)
    second_request_days = fields.Integer(
        "Second Request After (days)",
        default=14,
        help="Days after sending when a second request goes to the partners "
        "who have not answered (positive campaigns only).",
    )
    link_grace_days = fields.Integer(
        "Link Valid After Deadline (days)",
        default=30,
        help="The personal links stop working this many days after the "
        "deadline, or when the campaign is closed.",
    )
    request_ids = fields.One2many(
        "account.confirmation.request", "campaign_id", string="Requests"
    )
    request_count = fields.Integer(compute="_compute_request_stats")
    answered_count = fields.Integer(compute="_compute_request_stats")
    disputed_count = fields.Integer(compute="_compute_request_stats")

    @api.depends("request_ids.state")
    def _compute_request_stats(self):
        for campaign in self:
            states = campaign.request_ids.mapped("state")
            campaign.request_count = len(states)
            campaign.answered_count = sum(
                s in ("confirmed", "disputed") for s in states
            )
            campaign.disputed_count = states.count("disputed")

    # ------------------------------------------------------------------
    # Balances and selection
    # ------------------------------------------------------------------

    def _get_open_items_query(self, partner_ids=None):
        """SQL of the posted receivable/payable lines open at the campaign's
        date (the aged balance's open lines, as booked: positive when the
        partner owes us), oldest due first."""
        self.ensure_one()
        # the requests' partners as booked on the lines (a contact may have
        # lines of its own), not their commercial entities
        partner_filter = (
            SQL("AND open_line.partner_id IN %s", tuple(partner_ids))
            if partner_ids
            else SQL()
        )
        open_lines = (
            self.env["res.partner"]
            .with_company(self.company_id)
            ._get_open_balance_query(self.date_at, ACCOUNT_TYPES[self.partner_scope])
        )
        return SQL(
            """
            SELECT * FROM (%(open_lines)s) open_line
             WHERE (open_line.open_amount != 0
                    OR open_line.open_amount_currency != 0)
                   %(partner_filter)s
             ORDER BY open_line.due_date, open_line.move_name, open_line.id
            """,
            open_lines=open_lines,
            partner_filter=partner_filter,
        )

    def _get_open_items(self, partner_ids=None):
        """{partner id: [open line dicts]} at the campaign's date."""
        self.env["account.move.line"].flush_model()
        self.env["account.partial.reconcile"].flush_model()
        self.env.cr.execute(self._get_open_items_query(partner_ids))
        result = {}
        for row in self.env.cr.dictfetchall():
            result.setdefault(row["partner_id"], []).append(row)
        return result

    def _get_balances(self, partner_ids=None):
        """{partner id: (currency, balance in it, balance in company currency)}:
        the partner's own currency when all its open items are in one other
        currency than the company's, else the company's. Positive: the
        partner owes us."""
        company_currency = self.company_id.currency_id
        result = {}
        for partner_id, items in self._get_open_items(partner_ids).items():
            company_balance = company_currency.round(
                sum(item["open_amount"] for item in items)
            )
            currencies = {item["currency_id"] for item in items}
            currency = company_currency
            balance = company_balance
            if len(currencies) == 1 and company_currency.id not in currencies:
                currency = self.env["res.currency"].browse(currencies.pop())
                balance = currency.round(
                    sum(item["open_amount_currency"] for item in items)
                )
            result[partner_id] = (currency, balance, company_balance)
        return result

    def _select_partners(self, balances):
        """The partner ids the selection rule picks among ``balances``."""
        self.ensure_one()
        with_balance = sorted(pid for pid, b in balances.items() if b[2])
        if self.selection_rule == "threshold":
            return [
                pid
                for pid in with_balance
                if abs(balances[pid][2]) >= self.threshold_amount
            ]
        if self.selection_rule == "largest":
            ranked = sorted(with_balance, key=lambda pid: (-abs(balances[pid][2]), pid))
            return sorted(ranked[: self.sample_size])
        if self.selection_rule == "random":
            size = min(self.sample_size, len(with_balance))
            return sorted(random.Random(self.random_seed).sample(with_balance, size))
        return with_balance

    def action_select_partners(self):
        """(Re)build the draft requests from the balances and the rule."""
        for campaign in self:
            if campaign.state != "draft":
                raise UserError(self.env._("Only a draft campaign can be changed."))
            if campaign.selection_rule in ("largest", "random") and (
                campaign.sample_size <= 0
            ):
                raise UserError(self.env._("Enter how many partners to select."))
            balances = campaign._get_balances()
            campaign.request_ids.unlink()
            campaign.request_ids = [
                Command.create(
                    {
                        "partner_id": partner_id,
                        "currency_id": balances[partner_id][0].id,
                        "our_balance": balances[partner_id][1],
                    }
                )
                for partner_id in campaign._select_partners(balances)
            ]

    # ------------------------------------------------------------------
    # Sending and follow-up
    # ------------------------------------------------------------------

    def action_send(self):
        """One email per draft request, with its letter, through the send
        wizard's batch path."""
        self.ensure_one()
        drafts = self.request_ids.filtered(lambda r: r.state == "draft")
        if not drafts:
            raise UserError(self.env._("There is no request to send."))
        sendable = drafts.filtered(
            lambda r: r._get_document_email_partners().filtered("email")
        )
        sendable.write({"state": "sent", "sent_date": fields.Date.context_today(self)})
        self.state = "sent"
        if sendable:
            self.env["document.email.send"]._queue_documents(sendable)
        return self.action_view_requests()

    def action_close(self):
        self.state = "closed"

    def action_view_requests(self):
        self.ensure_one()
        return {
            "type": "ir.actions.act_window",
            "name": self.name,
            "res_model": "account.confirmation.request",
            "view_mode": "list,form",
            "domain": [("campaign_id", "=", self.id)],
            "context": {"default_campaign_id": self.id},
        }

    def action_view_exceptions(self):
        action = self.action_view_requests()
        action["domain"] += [("state", "=", "disputed")]
        return action

    def action_print_exceptions(self):
        return self.env.ref(
            "account_document_email.action_report_confirmation_exceptions"
        ).report_action(self)

    def _get_exception_requests(self):
        """The answers that differ from our books, for the auditor."""
        self.ensure_one()
        return self.request_ids.filtered(lambda r: r.state == "disputed")

    @api.model
    def _cron_follow_up(self):
        """Second requests after the delay, then the deadline's outcome."""
        self.env["account.confirmation.request"]._send_second_requests()
        self.env["account.confirmation.request"]._close_unanswered()
