import json
import random

from odoo import Command, api, fields, models
from odoo.exceptions import AccessError, UserError
from odoo.tools import SQL

from .account_confirmation_request import file_status

ACCOUNT_TYPES = {
    "customer": ("asset_receivable",),
    "vendor": ("liability_payable",),
    "both": ("asset_receivable", "liability_payable"),
}
AUDITOR_GROUP = "account_document_email.group_confirmation_auditor"
# what the auditor approves: nobody changes it afterwards
APPROVED_FIELDS = {
    "name", "company_id", "date_at", "kind", "partner_scope", "selection_rule",
    "threshold_amount", "sample_size", "random_seed", "reply_email", "deadline",
    "second_request_days", "link_grace_days", "min_answer_days", "request_ids",
    "state",
    "auditor_id", "approval_date", "require_code",
}  # fmt: skip
# the head of the evidence chain: written by the chain's appends only (SQL)
HEAD_FIELDS = {"evidence_head_sequence", "evidence_head_hash"}
# the entries that say what became of a sent email
OUTCOME_EVENTS = ("delivered", "undelivered", "uncertain", "bounced")


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
        [
            ("draft", "Draft"),
            ("approved", "Approved by the Auditor"),
            ("sent", "Sent"),
            ("closed", "Closed"),
        ],
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
        "Answers Go To",
        default=lambda self: self._default_reply_email(),
        help="Every answer is emailed to this address: the auditor's (the "
        "approving auditor's own when left empty).",
    )
    require_code = fields.Boolean(
        "Code by Email",
        default=True,
        help="Opening the personal link emails a one-time code to the "
        "approved address, and the answer needs it: whoever answers reads "
        "that mailbox.",
    )
    auditor_id = fields.Many2one(
        "res.users", "Approved By", readonly=True, copy=False, tracking=True
    )
    approval_date = fields.Datetime(readonly=True, copy=False)
    event_ids = fields.One2many(
        "account.confirmation.event", "campaign_id", string="Evidence"
    )
    evidence_head_sequence = fields.Integer(readonly=True, copy=False)
    evidence_head_hash = fields.Char(readonly=True, copy=False)
    deadline = fields.Date("Reply Deadline", required=True)
    second_request_days = fields.Integer(
        "Second Request After (days)",
        default=14,
        help="Days after sending when a second request goes to the partners "
        "who have not answered (positive campaigns only).",
    )
    min_answer_days = fields.Integer(
        "Minimum Days to Answer",
        default=7,
        help="A negative request delivered or posted fewer days than this "
        "before the deadline is never counted as no exception reported: it "
        "ends with no reply.",
    )
    _sql_constraints = [
        (
            "min_answer_days_positive",
            "CHECK(min_answer_days >= 1)",
            "The minimum days to answer is at least one day.",
        )
    ]
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

    @api.model
    def _default_reply_email(self):
        user = self.env.user
        return user.email if user.has_group(AUDITOR_GROUP) else False

    # ------------------------------------------------------------------
    # Who may change what (ISA 505 ¶7: the auditor controls the requests)
    # ------------------------------------------------------------------

    @api.model
    def _is_auditor(self):
        return self.env.su or self.env.user.has_group(AUDITOR_GROUP)

    @api.model
    def _check_auditor(self):
        if not self._is_auditor():
            raise AccessError(self.env._("Only the confirmation auditor may do this."))

    @api.model_create_multi
    def create(self, vals_list):
        """Campaigns are created in draft, unapproved, without evidence; the
        auditor approves them afterwards (context defaults and copies
        included)."""
        campaigns = super().create(vals_list)
        # read back: context defaults (default_<field>) set fields too
        if any(c[name] for c in campaigns for name in HEAD_FIELDS):
            raise UserError(self._get_head_refusal())
        if not self.env.su and any(
            c.state != "draft" or c.auditor_id or c.approval_date for c in campaigns
        ):
            raise UserError(
                self.env._(
                    "A campaign is created in draft: only the auditor approves it."
                )
            )
        return campaigns

    def _get_head_refusal(self):
        return self.env._(
            "The head of a campaign's evidence is recorded by the evidence itself."
        )

    def write(self, vals):
        if HEAD_FIELDS.intersection(vals):
            raise UserError(self._get_head_refusal())
        if not self.env.su and APPROVED_FIELDS.intersection(vals):
            if any(campaign.state != "draft" for campaign in self):
                raise UserError(
                    self.env._(
                        "The auditor approved this campaign: its requests, "
                        "addresses, dates and reply address can no longer be "
                        "changed."
                    )
                )
            if {"state", "auditor_id", "approval_date"}.intersection(vals):
                self._check_auditor()
        return super().write(vals)

    def unlink(self):
        if not self.env.su and any(c.state != "draft" for c in self):
            raise UserError(
                self.env._(
                    "An approved or sent campaign is evidence: it cannot be deleted."
                )
            )
        return super().unlink()

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
            campaign.request_ids.sudo().unlink()
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

    def action_approve(self):
        """The auditor approves the list of requests and each address: from
        now on nobody changes them."""
        self._check_auditor()
        for campaign in self:
            if campaign.state != "draft" or not campaign.request_ids:
                raise UserError(
                    self.env._("Approve a draft campaign with its requests.")
                )
            campaign.sudo().write(
                {
                    "state": "approved",
                    "auditor_id": self.env.uid,
                    "approval_date": fields.Datetime.now(),
                    "reply_email": campaign.reply_email or self.env.user.email,
                }
            )
            campaign.request_ids._approve_address()
            campaign._log_event("approved", **campaign._get_approval_evidence())

    def _get_approval_evidence(self):
        self.ensure_one()
        return {
            "auditor": self.env.user.name,
            "reply_email": self.reply_email,
            "deadline": self.deadline,
            "requests": [
                [
                    r.partner_id.display_name,
                    r.approved_email or "",
                    r.our_balance,
                    r.approved_address or "",
                ]
                for r in self.request_ids
            ],
            "request_ids": self.request_ids.ids,
        }

    def _get_approved_request_ids(self):
        """The ids of the requests the auditor approved, as the evidence's
        ``approved`` entry records them."""
        self.ensure_one()
        approved = (
            self.env["account.confirmation.event"]
            .sudo()
            .search(
                [("campaign_id", "=", self.id), ("event_type", "=", "approved")],
                order="sequence desc",
                limit=1,
            )
        )
        payload = json.loads(approved.payload or "{}")
        return set(payload.get("request_ids", []))

    def _log_event(self, event_type, **payload):
        for campaign in self:
            self.env["account.confirmation.event"]._append(
                campaign, event_type, payload=payload
            )

    def action_send(self):
        """One email per approved request with an address, with its letter,
        through the send wizard's batch path: each counts as sent once the
        server took its email. The others wait to be posted."""
        self.ensure_one()
        self._check_auditor()
        if self.state != "approved":
            raise UserError(
                self.env._("The auditor approves the campaign before it is sent.")
            )
        approved_ids = self._get_approved_request_ids()
        sendable = self.request_ids.filtered(
            lambda r: r.state == "draft" and r.approved_email and r.id in approved_ids
        )
        sendable.sudo().state = "queued"
        self.sudo().state = "sent"
        if sendable:
            self.env["document.email.send"]._queue_documents(sendable)
        return self.action_view_requests()

    def action_close(self):
        """Only the auditor closes: the links die, the evidence is sealed."""
        self._check_auditor()
        for campaign in self.filtered(lambda c: c.state == "sent"):
            campaign._check_no_email_in_flight()
            # what a killed worker lost, in the evidence before its seal
            self.env["account.confirmation.outcome"]._record_missing(campaigns=campaign)
            # a bounce since the deadline pass undoes its "no exception"
            self.env["account.confirmation.request"]._detect_bounces(
                campaign.request_ids
            )
            # no partner gets a request of a closed campaign
            campaign.request_ids._cancel_queued_emails(
                self.env._("Cancelled: the campaign was closed.")
            )
            campaign._check_outcomes_appended()
            campaign.sudo().state = "closed"
            campaign._log_event("closed", **campaign._get_outcome_counts())

    def _check_no_email_in_flight(self):
        """An email being sent now gets its outcome before the closing."""
        self.ensure_one()
        if self.request_ids._get_mails_in_flight():
            raise UserError(
                self.env._(
                    "Some emails of this campaign are being sent right now. "
                    "Close the campaign again in a minute."
                )
            )

    def _check_outcomes_appended(self):
        """The emails' recorded outcomes are in the evidence before the
        closing seals it: appended now, or the closing is refused."""
        self.ensure_one()
        pending = self.env["account.confirmation.outcome"]._get_pending(self)
        if pending and not pending._try_append():
            raise UserError(
                self.env._(
                    "The outcome of some emails of this campaign is not in its "
                    "evidence yet: another entry is being recorded. Close the "
                    "campaign again in a minute."
                )
            )

    def _is_sending(self):
        """Whether emails of this campaign may still get their outcome."""
        self.ensure_one()
        if self.state != "sent":
            return False
        if self.env["account.confirmation.outcome"]._get_pending(self):
            return True
        return bool(
            self.env["mail.mail"]
            .sudo()
            .search_count(
                [
                    ("model", "=", "account.confirmation.request"),
                    ("res_id", "in", self.request_ids.ids),
                    ("state", "=", "outgoing"),
                ],
                limit=1,
            )
        )

    def _get_missing_outcomes(self):
        """[the sent or second request entries no outcome entry of their
        request follows], read from the evidence; none while still sending."""
        self.ensure_one()
        if self._is_sending():
            return []
        events = (
            self.env["account.confirmation.event"]
            .sudo()
            .search([("campaign_id", "=", self.id)], order="sequence")
        )
        settled = self._get_settled_mails(events)
        waiting = {}
        for event in events:
            sent = waiting.setdefault(event.request_id.id, [])
            mail_id = json.loads(event.payload or "{}").get("mail_id")
            if event.event_type in ("sent", "second_request"):
                if (event.request_id.id, mail_id) not in settled:
                    sent.append(event)
            elif event.event_type in OUTCOME_EVENTS and not mail_id and sent:
                sent.pop(0)  # an outcome that names no email: by order
        return sorted(
            (e for sent in waiting.values() for e in sent), key=lambda e: e.sequence
        )

    def _get_settled_mails(self, events):
        """{(request, email)} of the outcome entries naming their email."""
        outcomes = events.filtered(lambda e: e.event_type in OUTCOME_EVENTS)
        pairs = {
            (e.request_id.id, json.loads(e.payload or "{}").get("mail_id"))
            for e in outcomes
        }
        return {(request_id, mail_id) for request_id, mail_id in pairs if mail_id}

    def _get_outcome_counts(self):
        self.ensure_one()
        counts = {}
        for request in self.request_ids:
            counts[request.state] = counts.get(request.state, 0) + 1
        return {"states": counts}

    def action_print_evidence(self):
        return self.env.ref(
            "account_document_email.action_report_confirmation_evidence"
        ).report_action(self)

    def _check_evidence(self):
        """(True, None) when the chain holds, else (False, the first entry
        that breaks it)."""
        self.ensure_one()
        Event = self.env["account.confirmation.event"].sudo()
        events = Event.search([("campaign_id", "=", self.id)], order="sequence")
        broken = events._find_first_break()
        if broken:
            return (False, broken)
        return (not self._get_evidence_gap(events), None)

    def _check_answer_files(self):
        """[(request, "intact", "changed" or "missing")] for every file an
        ``answered`` entry recorded: read from the evidence, so a file
        deleted behind the application's back is reported too."""
        self.ensure_one()
        Event = self.env["account.confirmation.event"].sudo()
        answered = Event.search(
            [("campaign_id", "=", self.id), ("event_type", "=", "answered")],
            order="sequence",
        )
        result = []
        for event in answered:
            recorded = json.loads(event.payload or "{}").get("file_sha256")
            if recorded:
                request = event.request_id.sudo()
                result.append((request, request._get_answer_file_status(recorded)))
        return result

    def _get_sent_email_digests(self):
        """[(entry, recipient, digest, status of the copy kept on the
        request)] of every request's email as queued, read from the
        evidence: what the partner was told."""
        self.ensure_one()
        sent = (
            self.env["account.confirmation.event"]
            .sudo()
            .search(
                [
                    ("campaign_id", "=", self.id),
                    ("event_type", "in", ("sent", "second_request")),
                ],
                order="sequence",
            )
        )
        result = []
        for event in sent:
            payload = json.loads(event.payload or "{}")
            if digest := payload.get("email_sha256"):
                file = self.env["ir.attachment"].sudo().browse(payload["email_file_id"])
                status = file_status(file, digest)
                result.append((event, payload.get("email_to") or "", digest, status))
        return result

    def _get_delivered_email_digests(self):
        """[(entry, digest, status of the file kept on the request)] of every
        request's email as the mail server accepted it, read from the
        evidence."""
        self.ensure_one()
        delivered = (
            self.env["account.confirmation.event"]
            .sudo()
            .search(
                [("campaign_id", "=", self.id), ("event_type", "=", "delivered")],
                order="sequence",
            )
        )
        result = []
        for event in delivered:
            payload = json.loads(event.payload or "{}")
            digest = payload.get("delivered_sha256")
            if not digest:
                # sent through the default outgoing server: no copy kept
                result.append((event, "", "not_kept"))
                continue
            file = self.env["ir.attachment"].sudo().browse(payload["delivered_file_id"])
            result.append((event, digest, file_status(file, digest)))
        return result

    def _get_evidence_gap(self, events):
        """Why the (unbroken) chain ``events`` does not cover the campaign,
        or "": no entry past draft, a first entry that is not the approval,
        or a last entry that is not the head the campaign recorded (entries
        removed at the end)."""
        self.ensure_one()
        campaign = self.sudo()
        if campaign.state != "draft" and (
            not events or events[0].event_type != "approved"
        ):
            return "no_evidence"
        last = events[-1:]
        if (last.sequence or 0) != campaign.evidence_head_sequence or (
            (last.hash or False) != (campaign.evidence_head_hash or False)
        ):
            return "head"
        return ""

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

    # ------------------------------------------------------------------
    # The auditor's reports (ISA 505 ¶12, A18-A19)
    # ------------------------------------------------------------------

    def _get_state_summary(self):
        """[(state label, count, amount in the company's currency)] for
        every state, and the share of the balance confirmed (0-100)."""
        self.ensure_one()
        labels = dict(
            self.env["account.confirmation.request"]
            ._fields["state"]
            ._description_selection(self.env)
        )
        amounts = {state: [0, 0.0] for state in labels}
        for request in self.request_ids:
            amounts[request.state][0] += 1
            amounts[request.state][1] += abs(request._get_company_balance())
        total = sum(amount for __, amount in amounts.values())
        confirmed = amounts["confirmed"][1]
        rows = [(labels[state], *amounts[state]) for state in labels]
        return rows, (100.0 * confirmed / total if total else 0.0)

    def _get_alternative_requests(self):
        """The requests that call for alternative procedures: no reply and
        undelivered (no answer at all)."""
        self.ensure_one()
        return self.request_ids.filtered(
            lambda r: r.state in ("no_reply", "undelivered", "queued", "uncertain")
        )

    def action_print_alternative_procedures(self):
        return self.env.ref(
            "account_document_email.action_report_confirmation_alternative"
        ).report_action(self)

    @api.model
    def _cron_follow_up(self):
        """Second requests after the delay, then the deadline's outcome;
        first, the emails' recorded outcomes the evidence is still missing."""
        self.env["account.confirmation.outcome"]._cron_append_pending()
        self.env["account.confirmation.request"]._send_second_requests()
        self.env["account.confirmation.request"]._close_unanswered()
