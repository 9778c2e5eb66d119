import base64
from datetime import timedelta

from markupsafe import Markup

from odoo import Command, api, fields, models
from odoo.exceptions import UserError
from odoo.tools import format_amount, format_datetime
from odoo.tools.image import image_data_uri

WAITING_STATES = ("sent", "opened", "second_sent")


class AccountConfirmationRequest(models.Model):
    """One partner asked to confirm its balance: what we sent, what they
    answered through their personal link."""

    _name = "account.confirmation.request"
    _description = "Balance Confirmation Request"
    _inherit = ["mail.thread", "portal.mixin", "document.email.mixin"]
    _order = "campaign_id desc, partner_id"
    _rec_name = "partner_id"
    _check_company_auto = True

    campaign_id = fields.Many2one(
        "account.confirmation.campaign",
        required=True,
        ondelete="cascade",
        index=True,
        check_company=True,
    )
    company_id = fields.Many2one(
        related="campaign_id.company_id", store=True, index=True
    )
    partner_id = fields.Many2one(
        "res.partner", required=True, index=True, check_company=True
    )
    date_at = fields.Date(related="campaign_id.date_at")
    kind = fields.Selection(related="campaign_id.kind")
    deadline = fields.Date(related="campaign_id.deadline")
    state = fields.Selection(
        [
            ("draft", "Draft"),
            ("sent", "Sent"),
            ("opened", "Opened"),
            ("second_sent", "Second Request Sent"),
            ("confirmed", "Confirmed"),
            ("disputed", "Disputed"),
            ("no_reply", "No Reply"),
            ("no_exception", "No Exception Reported"),
        ],
        default="draft",
        required=True,
        tracking=True,
        copy=False,
    )
    currency_id = fields.Many2one("res.currency", required=True)
    our_balance = fields.Monetary(
        "Our Balance", help="Positive: the partner owes us. Negative: we owe them."
    )
    their_balance = fields.Monetary("Their Balance", copy=False)
    difference = fields.Monetary(compute="_compute_difference", store=True)
    comment = fields.Text(copy=False)
    answer_attachment_id = fields.Many2one(
        "ir.attachment", "Their File", copy=False, readonly=True
    )
    answer_date = fields.Datetime("Answered On", copy=False, readonly=True)
    answer_ip = fields.Char("Answered From (IP)", copy=False, readonly=True)
    sent_date = fields.Date(copy=False, readonly=True)
    second_request_date = fields.Date("Second Request On", copy=False, readonly=True)

    _sql_constraints = [
        (
            "partner_campaign_unique",
            "unique(campaign_id, partner_id)",
            "A partner is asked only once per campaign.",
        )
    ]

    @api.model_create_multi
    def create(self, vals_list):
        requests = super().create(vals_list)
        for request in requests:
            request._portal_ensure_token()
        return requests

    @api.depends("state", "our_balance", "their_balance")
    def _compute_difference(self):
        for request in self:
            answered = request.state in ("confirmed", "disputed")
            request.difference = (
                request.our_balance - request.their_balance if answered else 0.0
            )

    def _compute_access_url(self):
        for request in self:
            request.access_url = f"/my/confirmation/{request.id}"

    # ------------------------------------------------------------------
    # Send by email (document.email.mixin)
    # ------------------------------------------------------------------

    def _get_document_email_partners(self):
        self.ensure_one()
        return self.partner_id._get_document_email_partners()

    def _get_document_email_template_xmlid(self):
        self.ensure_one()
        if self.second_request_date:
            return "account_document_email.mail_template_confirmation_second_request"
        return "account_document_email.mail_template_confirmation_request"

    def _get_document_email_report_xmlids(self):
        self.ensure_one()
        return ["account_document_email.action_report_confirmation_request"]

    def _get_document_email_kind(self):
        self.ensure_one()
        if self.second_request_date:
            return self.env._("second request"), self.env._("second requests")
        return self.env._("confirmation request"), self.env._("confirmation requests")

    def _get_document_email_company(self):
        self.ensure_one()
        return self.company_id

    def _get_document_email_group(self):
        """Who may send these requests."""
        return "account.group_account_invoice"

    # ------------------------------------------------------------------
    # What the letter and the public page show
    # ------------------------------------------------------------------

    def _get_confirmation_url(self):
        """The partner's personal link, with its token."""
        self.ensure_one()
        return self.get_base_url() + self.get_portal_url()

    def _get_confirmation_qr(self):
        """The personal link as a QR code image (data URI) for the letter."""
        self.ensure_one()
        png = self.env["ir.actions.report"].barcode(
            "QR", self._get_confirmation_url(), width=150, height=150
        )
        return image_data_uri(base64.b64encode(png))

    def _get_direction(self):
        """1 when the partner owes us, -1 when we owe them."""
        self.ensure_one()
        return -1 if self.our_balance < 0 else 1

    def _fetch_open_items(self):
        """{request id: its partner's open items at its campaign's date}."""
        result = {}
        for campaign, requests in self.grouped("campaign_id").items():
            items = campaign._get_open_items(requests.partner_id.ids)
            result.update({r.id: items.get(r.partner_id.id) for r in requests})
        return result

    def _get_open_items(self):
        """The open items behind our balance, in the request's currency."""
        self.ensure_one()
        # every letter of a batch's PDF at once, not one query per letter
        items = self._get_document_email_render_values(
            ("confirmation_open_items",), lambda requests: requests._fetch_open_items()
        )[self.id]
        foreign = self.currency_id != self.company_id.currency_id
        return [
            {
                "name": item["move_name"],
                "date": item["date"],
                "due_date": item["due_date"],
                "amount": item["amount_currency" if foreign else "balance"],
                "open_amount": item[
                    "open_amount_currency" if foreign else "open_amount"
                ],
            }
            for item in items or []
        ]

    @api.model
    def _get_thread_with_access(self, thread_id, mode="read", **kwargs):
        """The personal link answers on the confirmation page only: core's
        token routes (chatter posts, uploads) stay closed to visitors."""
        if not self.env.user._is_internal():
            return self.browse()
        return super()._get_thread_with_access(thread_id, mode=mode, **kwargs)

    def _is_link_valid(self):
        """Links die with the campaign's closing or some days after the
        deadline."""
        self.ensure_one()
        campaign = self.campaign_id
        last_day = campaign.deadline + timedelta(days=campaign.link_grace_days)
        return (
            campaign.state != "closed"
            and self.state != "draft"
            and fields.Date.context_today(self) <= last_day
        )

    def _is_answerable(self):
        self.ensure_one()
        # late answers still count: the auditor decides what to do with them
        return self.state in WAITING_STATES + ("no_reply", "no_exception")

    # ------------------------------------------------------------------
    # The partner's answer
    # ------------------------------------------------------------------

    def _mark_opened(self):
        self.filtered(lambda r: r.state == "sent").state = "opened"

    def _record_answer(self, agree, their_amount=0.0, comment="", file=None, ip=""):
        """Record the partner's answer (once), log it on the partner and copy
        it to the campaign's reply address. ``their_amount`` is in the
        direction shown on the page (what they owe us, or what we owe them);
        ``file`` is (name, bytes) or None."""
        self.ensure_one()
        if not self._is_answerable():
            raise UserError(self.env._("This request has already been answered."))
        their_balance = (
            self.our_balance
            if agree
            else self.currency_id.round(their_amount * self._get_direction())
        )
        values = {
            "state": "confirmed" if agree else "disputed",
            "their_balance": their_balance,
            "comment": comment or False,
            "answer_date": fields.Datetime.now(),
            "answer_ip": ip,
        }
        if file and file[1]:
            values["answer_attachment_id"] = (
                self.env["ir.attachment"]
                .create(
                    {
                        "name": file[0] or "answer",
                        "raw": file[1],
                        "res_model": self._name,
                        "res_id": self.id,
                    }
                )
                .id
            )
        self.write(values)
        self._post_answer()
        self._notify_answer()

    def _get_answer_summary(self):
        """One paragraph (HTML) saying who answered what, when and from where."""
        self.ensure_one()
        lang_env = self.with_context(lang=self.company_id.partner_id.lang).env
        # the company's time zone: the answerer is a visitor without one
        tz = self.company_id.partner_id.tz or "UTC"
        when = "%s (%s)" % (format_datetime(lang_env, self.answer_date, tz=tz), tz)
        values = {
            "date": fields.Date.to_string(self.date_at),
            "campaign": self.campaign_id.name,
            "ours": format_amount(lang_env, self.our_balance, self.currency_id),
            "theirs": format_amount(lang_env, self.their_balance, self.currency_id),
            "difference": format_amount(lang_env, self.difference, self.currency_id),
            "when": when,
            "ip": self.answer_ip or "?",
        }
        if self.state == "confirmed":
            text = self.env._(
                "Balance confirmation %(campaign)s: the balance at %(date)s, "
                "%(ours)s, was confirmed on %(when)s from %(ip)s.",
                **values,
            )
        else:
            text = self.env._(
                "Balance confirmation %(campaign)s: the balance at %(date)s was "
                "disputed on %(when)s from %(ip)s. Ours: %(ours)s; theirs: "
                "%(theirs)s; difference: %(difference)s.",
                **values,
            )
        body = Markup("<p>%s</p>") % text
        if self.comment:
            body += Markup("<p>%s</p>") % self.comment
        return body

    def _post_answer(self):
        """The answer on the request, which only the company's billing users
        read; the partner, which every employee reads, gets a link to it."""
        self.ensure_one()
        author = self.partner_id.id
        message = self.message_post(body=self._get_answer_summary(), author_id=author)
        if self.answer_attachment_id:
            # linked here: message_post drops the existing files a visitor names
            message.sudo().attachment_ids = self.answer_attachment_id
        self.partner_id.message_post(body=self._get_answer_note(), author_id=author)

    def _get_answer_note(self):
        """What the partner's chatter says of the answer: no figures, no file."""
        self.ensure_one()
        lang_env = self.with_context(lang=self.company_id.partner_id.lang).env
        text = lang_env._(
            "Balance confirmation %(campaign)s answered: see %(link)s.",
            campaign=self.campaign_id.name,
            link=self._get_html_link(title=lang_env._("the request")),
        )
        return Markup("<p>%s</p>") % text

    def _notify_answer(self):
        """An email to the campaign's reply address (the auditor's, maybe)."""
        self.ensure_one()
        if not self.campaign_id.reply_email:
            return
        template = self.env.ref(
            "account_document_email.mail_template_confirmation_answer"
        )
        template.send_mail(
            self.id,
            email_values={
                "mail_server_id": self.company_id._get_document_mail_server().id,
                "attachment_ids": [
                    Command.link(a) for a in self.answer_attachment_id.ids
                ],
            },
        )

    # ------------------------------------------------------------------
    # Follow-up (scheduled job)
    # ------------------------------------------------------------------

    @api.model
    def _send_second_requests(self):
        """Once, after the campaign's delay, to the positive requests still
        unanswered before the deadline."""
        today = fields.Date.context_today(self)
        candidates = self.search(
            [
                ("state", "in", ("sent", "opened")),
                ("second_request_date", "=", False),
                ("campaign_id.kind", "=", "positive"),
                ("campaign_id.state", "=", "sent"),
                ("campaign_id.deadline", ">=", today),
            ]
        )
        due = candidates.filtered(
            lambda r: (
                r.sent_date
                and r.sent_date + timedelta(days=r.campaign_id.second_request_days)
                <= today
            )
        )
        due.write({"state": "second_sent", "second_request_date": today})
        for requests in due.grouped("company_id").values():
            self.env["document.email.send"].with_company(
                requests.company_id
            )._queue_documents(requests)
        return due

    @api.model
    def _close_unanswered(self):
        """At the deadline: no reply (positive) or no exception (negative)."""
        late = self.search(
            [
                ("state", "in", WAITING_STATES),
                ("campaign_id.deadline", "<", fields.Date.context_today(self)),
            ]
        )
        negative = late.filtered(lambda r: r.kind == "negative")
        negative.state = "no_exception"
        (late - negative).state = "no_reply"
        return late
