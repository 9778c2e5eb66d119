import base64
import hashlib
import json
import secrets
from datetime import timedelta

from markupsafe import Markup

from odoo import Command, api, fields, models
from odoo.exceptions import AccessError, UserError
from odoo.service.model import PG_CONCURRENCY_EXCEPTIONS_TO_RETRY
from odoo.tools import SQL, consteq, format_amount, format_datetime
from odoo.tools.image import image_data_uri
from odoo.tools.misc import hmac

from .mail_mail_claim import CLAIM_FREE

# the one-time code: valid this long, this many wrong tries
CODE_MINUTES = 15
CODE_TRIES = 5
# wrong codes over the request's life: then it is locked for the auditor
CODE_LIFETIME_TRIES = 10
WAITING_STATES = ("sent", "posted", "opened", "second_sent")
# what the deadline pass makes of a request nobody answered
DEADLINE_STATES = ("no_reply", "no_exception")
# the first email not known to have reached the server yet
PENDING_STATES = ("queued", "uncertain")
AUDITOR_GROUP = "account_document_email.group_confirmation_auditor"
# a request with no token (a new one is derived) and a fresh code count
NO_TOKEN_NOR_CODE = {
    "token_nonce": False, "access_token_hash": False, "code_hash": False,
    "code_expiry": False, "code_tries": 0, "code_failures": 0,
    "code_locked": False,
}  # fmt: skip
# what the answer and the delivery record: written by the page and the
# mail queue (as superuser), never by a user
ANSWER_FIELDS = {
    "state", "their_balance", "comment", "answer_attachment_id", "answer_date",
    "answer_ip", "responder_name", "responder_role", "sent_date",
    "second_request_date", "approved_email", "approved_address", "delivery_note",
    "by_post",
    "code_locked", "confirmation_message_ids", "document_email_mail_id",
}  # fmt: skip
# what the auditor approves
APPROVED_FIELDS = {
    "campaign_id", "partner_id", "currency_id", "our_balance", "approved_email",
}  # fmt: skip
TOKEN_SCOPE = "account_document_email.confirmation"
# what the chatter shows in place of the personal link's token
HIDDEN_TOKEN = "HIDDEN"
# the field whose groups guard the emails as the mail server accepted them
DELIVERED_FIELD = "delivered_email_file_ids"


def settlements(line):
    """[(partial reconciliation, the other line)] of a journal item."""
    return [(p, p.credit_move_id) for p in line.matched_credit_ids] + [
        (p, p.debit_move_id) for p in line.matched_debit_ids
    ]


def file_status(file, recorded):
    """ "intact" while ``file`` has the digest ``recorded``, else "changed",
    or "missing" (its row or its bytes gone)."""
    file = file.exists()
    raw = file.raw if file else None
    if not raw:
        return "missing"
    return "intact" if hashlib.sha256(raw).hexdigest() == recorded else "changed"


def token_hash(token):
    return hashlib.sha256(token.encode()).hexdigest()


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
            ("queued", "Being Sent"),
            ("sent", "Sent"),
            ("posted", "Sent by Post"),
            ("opened", "Opened"),
            ("second_sent", "Second Request Sent"),
            ("confirmed", "Confirmed"),
            ("disputed", "Disputed"),
            ("no_reply", "No Reply"),
            ("no_exception", "No Exception Reported"),
            ("undelivered", "Undelivered"),
            ("uncertain", "Delivery Uncertain"),
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
    approved_email = fields.Char(
        "Approved Address",
        copy=False,
        readonly=True,
        help="The address the auditor approved: the request and its code go "
        "there only.",
    )
    approved_address = fields.Text(
        "Approved Postal Address",
        copy=False,
        readonly=True,
        help="The postal address the auditor approved: the printed letter "
        "goes there, whatever the partner's address becomes.",
    )
    delivery_note = fields.Char(
        "Delivery", copy=False, readonly=True, help="Why the request never arrived."
    )
    by_post = fields.Boolean(
        "Letter by Post",
        copy=False,
        readonly=True,
        help="The auditor posted the printed letter: the letter is the "
        "channel, no code by email is asked.",
    )
    code_locked = fields.Boolean(
        "Code Locked",
        copy=False,
        readonly=True,
        help="Too many wrong codes: nobody answers online any more.",
    )
    # the messages of the request's own emails (first and second request):
    # only they say whether the request was delivered or bounced
    confirmation_message_ids = fields.Many2many(
        "mail.message", copy=False, groups="base.group_system"
    )
    # the request's emails as the mail server accepted them: their files name
    # this field; the ir.rules on ir.attachment say who reads them
    delivered_email_file_ids = fields.Many2many(
        "ir.attachment",
        string="Emails as Delivered",
        compute="_compute_delivered_email_file_ids",
        groups=AUDITOR_GROUP,
    )
    responder_name = fields.Char("Answered By", copy=False, readonly=True)
    responder_role = fields.Char("Their Position", copy=False, readonly=True)
    event_ids = fields.One2many(
        "account.confirmation.event", "request_id", string="Evidence"
    )
    sent_date = fields.Date(copy=False, readonly=True)
    second_request_date = fields.Date("Second Request On", copy=False, readonly=True)
    # the link's token is never stored: only its digest, and the nonce from
    # which the database's secret derives it when an email or letter is made
    access_token_hash = fields.Char(copy=False, groups="base.group_system")
    token_nonce = fields.Char(copy=False, groups="base.group_system")
    code_hash = fields.Char(copy=False, groups="base.group_system")
    code_expiry = fields.Datetime(copy=False, groups="base.group_system")
    code_tries = fields.Integer(copy=False, groups="base.group_system")
    code_failures = fields.Integer(copy=False, groups="base.group_system")

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
        if not self.env.su:
            requests._check_user_create()
        requests._ensure_token_nonce()
        return requests

    def _check_user_create(self):
        """Users add requests to a draft campaign only, with nothing of an
        answer or a delivery (context defaults included)."""
        for request in self:
            if request.campaign_id.state != "draft":
                raise UserError(
                    self.env._(
                        "The auditor approved this campaign: no request can be added."
                    )
                )
            recorded = [
                name
                for name in ANSWER_FIELDS - {"state"}
                if name in request._fields and request.sudo()[name]
            ] + request._get_restricted_values()
            if request.state != "draft" or recorded:
                raise AccessError(
                    self.env._(
                        "The answers and deliveries of balance confirmations are "
                        "recorded by the confirmations themselves."
                    )
                )

    def _get_restricted_values(self):
        """The fields restricted by ``groups`` the user lacks (token, code)
        that creating the request set (values or context defaults)."""
        self.ensure_one()
        user = self.env.user
        return [
            name
            for name, field in self._fields.items()
            if field.groups and not user.has_groups(field.groups) and self.sudo()[name]
        ]

    def write(self, vals):
        if not self.env.su:
            self._check_user_write(vals)
        return super().write(vals)

    def _check_user_write(self, vals):
        """Users never write an answer or a delivery; nobody but the auditor
        changes what the auditor approved."""
        if ANSWER_FIELDS.intersection(vals):
            raise AccessError(
                self.env._(
                    "The answers and deliveries of balance confirmations are "
                    "recorded by the confirmations themselves."
                )
            )
        if APPROVED_FIELDS.intersection(vals) and any(
            r.campaign_id.state != "draft" for r in self
        ):
            raise UserError(
                self.env._("The auditor approved these requests: they cannot change.")
            )

    def unlink(self):
        if not self.env.su and any(r.campaign_id.state != "draft" for r in self):
            raise UserError(
                self.env._("A request of an approved campaign cannot be deleted.")
            )
        return super().unlink()

    @api.depends("state", "our_balance", "their_balance")
    def _compute_difference(self):
        for request in self:
            answered = request.state in ("confirmed", "disputed")
            request.difference = (
                request.our_balance - request.their_balance if answered else 0.0
            )

    def _compute_delivered_email_file_ids(self):
        for request in self:
            request.delivered_email_file_ids = request._get_delivered_email_files()

    def _compute_access_url(self):
        for request in self:
            request.access_url = f"/my/confirmation/{request.id}"

    # ------------------------------------------------------------------
    # Send by email (document.email.mixin)
    # ------------------------------------------------------------------

    def _get_document_email_partners(self):
        """The partner, while its address is the one the auditor approved."""
        self.ensure_one()
        partners = self.partner_id._get_document_email_partners()
        if not self.approved_email or self._get_partner_addresses() != (
            self.approved_email
        ):
            return partners.browse()
        return partners

    def _get_partner_addresses(self):
        self.ensure_one()
        partners = self.partner_id._get_document_email_partners()
        return ", ".join(partners.filtered("email").mapped("email")) or False

    def _get_postal_address(self):
        """The partner's name and postal address, as the letter prints them."""
        self.ensure_one()
        partner = self.partner_id
        lines = [partner.name or "", partner._display_address(without_company=True)]
        return "\n".join(line.strip() for line in lines if line.strip())

    def _approve_address(self):
        """The approved address, and a new token and no code: nothing a user
        planted before the approval opens the page."""
        for request in self:
            request.sudo().write(
                {
                    "approved_email": request._get_partner_addresses(),
                    "approved_address": request._get_postal_address(),
                    **NO_TOKEN_NOR_CODE,
                }
            )
        self._ensure_token_nonce()

    def _document_email_after_send(self):
        """Queued: sent once the server takes the email (that email only)."""
        for request in self:
            message = request.sudo().document_email_mail_id.mail_message_id
            if message:
                request.sudo().confirmation_message_ids = [Command.link(message.id)]
            event = "second_request" if request.second_request_date else "sent"
            request._log_event(
                event,
                email_to=request.approved_email,
                **request._get_sent_email_evidence(request.document_email_mail_id),
            )

    def _get_sent_email_evidence(self, mail):
        """The email ``mail`` as queued (recipient, subject, body, the token
        hidden as in the chatter) kept as a file on the request, and its
        sha256: a template's later change shows, and anyone recomputes it."""
        self.ensure_one()
        mail = mail.sudo()
        if not mail:
            return {}
        body = self._get_document_email_message_body(mail.body_html or "")
        text = f"To: {mail.email_to or ''}\nSubject: {mail.subject or ''}\n\n{body}"
        file = (
            self.env["ir.attachment"]
            .sudo()
            .create(
                {
                    "name": f"Email as sent - {self.partner_id.name} - {mail.id}.txt",
                    "raw": text.encode(),
                    "mimetype": "text/plain",
                    "res_model": self._name,
                    "res_id": self.id,
                }
            )
        )
        return {
            "mail_id": mail.id,
            "email_file_id": file.id,
            "email_sha256": hashlib.sha256(file.raw).hexdigest(),
        }

    def _keep_delivered_email(self, mail, raw):
        """``mail`` as the server accepted it: the bytes handed to SMTP's DATA
        (CRLF line ends, without the transport's dot-stuffing)."""
        self.ensure_one()
        raw = raw.encode() if isinstance(raw, str) else bytes(raw)
        self.env["ir.attachment"].sudo().create(
            {
                "name": f"Email as delivered - {self.partner_id.name} - {mail.id}.eml",
                "raw": raw if raw.endswith(b"\r\n") else raw + b"\r\n",
                "mimetype": "message/rfc822",
                "res_model": self._name,
                "res_id": self.id,
                "res_field": DELIVERED_FIELD,
            }
        )

    def _get_delivered_email_files(self, mail=None):
        """The files of the request's emails as delivered (of ``mail``'s only
        when given), newest first."""
        self.ensure_one()
        domain = [
            ("res_model", "=", self._name),
            ("res_id", "=", self.id),
            ("res_field", "=", DELIVERED_FIELD),
        ]
        if mail:
            domain.append(("name", "=like", f"% - {mail.id}.eml"))
        return self.env["ir.attachment"].sudo().search(domain, order="id desc")

    def _get_delivered_email_evidence(self, mail):
        """The file of ``mail`` as the server accepted it, and its sha256."""
        self.ensure_one()
        file = self._get_delivered_email_files(mail)[:1]
        if not file:
            return {}
        return {
            "delivered_file_id": file.id,
            "delivered_sha256": hashlib.sha256(file.raw).hexdigest(),
        }

    @api.model
    def _is_email_evidence_file(self, files):
        """Whether one of ``files`` (of requests) is a request's email as
        delivered or a file of its own email's message."""
        files = files.sudo()
        if any(f.res_field == DELIVERED_FIELD for f in files):
            return True
        if self._is_sent_email_file(files):
            return True
        return bool(
            self.sudo().search_count(
                [("confirmation_message_ids.attachment_ids", "in", files.ids)],
                limit=1,
            )
        )

    @api.model
    def _is_sent_email_file(self, files):
        """Whether one of ``files`` is a request's email as queued (the .txt
        named by a sent entry)."""
        for file in files.filtered(lambda f: f.mimetype == "text/plain"):
            entries = (
                self.env["account.confirmation.event"]
                .sudo()
                .search([("payload", "ilike", f'"email_file_id": {file.id}')])
            )
            payloads = (json.loads(e.payload or "{}") for e in entries)
            if any(p.get("email_file_id") == file.id for p in payloads):
                return True
        return False

    def _is_confirmation_mail(self, mail):
        """Whether ``mail`` is one of the request's own emails, as the engine
        queued it: any other (a message in its chatter, a copy to someone, a
        resend of its message) says nothing of it."""
        self.ensure_one()
        message = mail.sudo().mail_message_id
        if not message or message not in self.sudo().confirmation_message_ids:
            return False
        return mail.id in self._get_own_mail_ids()

    def _get_own_mail_ids(self):
        """The ids of the emails the engine queued for the request."""
        request = self.sudo()
        sent = request.event_ids.filtered(
            lambda e: e.event_type in ("sent", "second_request")
        )
        ids = {json.loads(e.payload or "{}").get("mail_id") for e in sent}
        return ids | {request.document_email_mail_id.id}

    def _check_can_update_message_content(self, messages):
        """Core's chatter edit/delete sudoes the message first: the request's
        own emails are evidence, whoever the author."""
        if messages & self.sudo().confirmation_message_ids:
            raise UserError(
                self.env._(
                    "This message is the email of a balance confirmation request: "
                    "it is evidence and can be neither changed nor deleted."
                )
            )
        return super()._check_can_update_message_content(messages)

    def _email_outcome(self, mail, failure_reason=False, inline=True):
        """What the server did with ``mail``, once the add-on classified it:
        delivered, undelivered, uncertain (never sent again), or nothing yet
        (refused for now and back in the queue)."""
        self.ensure_one()
        if not self._is_confirmation_mail(mail):
            return
        outcome = self._get_outcome_event(mail, failure_reason)
        if not outcome or self._has_outcome(mail, outcome[0]):
            return
        self._apply_outcome_state(mail, *outcome)
        self._log_outcome_event(mail, outcome, inline=inline)

    def _apply_outcome_state(self, mail, event_type, payload):
        """The first email sets the request's state; a later delivery of its
        current email (queued again by the auditor) makes it sent; a failed
        second request leaves the first one delivered."""
        request = self.sudo()
        current = request.document_email_mail_id == mail
        delivered = event_type == "delivered" and (
            self.state in PENDING_STATES
            or (self.state == "undelivered" and current and not mail.document_bounced)
        )
        # when the server took it: a later write (a Cc bounce) moves write_date
        delivered_at = mail.document_sent_at or mail.write_date
        if delivered and self._is_response_window_over(delivered_at):
            self._mark_delivered_late()
        elif delivered:
            day = fields.Date.context_today(self, delivered_at)
            request.write({"state": "sent", "sent_date": day, "delivery_note": False})
        elif self.state == "queued":
            state = "uncertain" if event_type == "uncertain" else "undelivered"
            request.write({"state": state, "delivery_note": payload["reason"]})

    def _has_outcome(self, mail, event_type):
        """Whether ``mail`` already has this outcome: a send() of an email
        cancelled or settled before records nothing twice."""
        Outcome = self.env["account.confirmation.outcome"].sudo()
        return bool(
            Outcome.search_count(
                [("mail_ref", "=", mail.id), ("event_type", "=", event_type)],
                limit=1,
            )
        )

    def _is_response_window_over(self, delivered_at):
        """Closed, or its deadline passed when the email was delivered (a
        lost outcome swept later keeps its email's date): no time to answer."""
        self.ensure_one()
        day = fields.Date.context_today(self, delivered_at or fields.Datetime.now())
        return self.campaign_id.state == "closed" or self.deadline < day

    def _had_time_to_answer(self):
        """Delivered or posted at least the campaign's minimum days before
        the deadline: only then may silence mean "no exception"."""
        self.ensure_one()
        days = timedelta(days=self.campaign_id.min_answer_days)
        return bool(self.sent_date) and self.sent_date + days <= self.deadline

    def _mark_delivered_late(self):
        """Delivered with no time left to answer: never sent, never "no
        exception"; a request still queued is undelivered (its evidence
        keeps the delivery)."""
        self.ensure_one()
        state = "undelivered" if self.state == "queued" else self.state
        note = self.env._("Delivered after the deadline: no time left to answer.")
        self.sudo().write({"state": state, "delivery_note": note})

    def _get_outcome_event(self, mail, failure_reason=False):
        """(event type, payload) of what the server did with ``mail``, or None
        while it is not done."""
        details = {
            "mail_id": mail.id,
            "message_id": mail.message_id or "",
            "observed_at": fields.Datetime.to_string(fields.Datetime.now()),
        }
        if mail.state == "sent":
            return "delivered", details | self._get_delivered_email_evidence(mail)
        if mail.state == "exception" and mail.document_uncertain:
            return "uncertain", dict(details, reason=mail.failure_reason or "")
        if mail.state in ("exception", "cancel"):
            reason = failure_reason or mail.failure_reason or mail.state
            return "undelivered", dict(details, reason=reason)
        return None

    def _log_outcome_event(self, mail, outcome, inline=True):
        """Recorded with the email's outcome (an insert, no head locked),
        appended now (``inline``) when the campaign's head is free, else by
        the outcomes' job: the mail queue never waits for the head, and a
        busy head never rolls back what the mail server did with the email."""
        Outcome = self.env["account.confirmation.outcome"]
        recorded = Outcome._record(self, mail.id, *outcome)
        if not inline:
            Outcome._trigger_append()
            return
        # no flush, no cache cleared: the append fails, if it does, at its
        # first statement, and the outcome's pending writes stay
        try:
            with self.env.cr.savepoint(flush=False):
                recorded.with_context(confirmation_busy_ok=True)._append_one()
        except PG_CONCURRENCY_EXCEPTIONS_TO_RETRY:
            Outcome._trigger_append()

    def _mark_undelivered(self, event, reason, **details):
        """Never reached the partner: undelivered, never no exception."""
        # a bounce after the deadline pass undoes its "no exception" too
        undone = PENDING_STATES + WAITING_STATES + DEADLINE_STATES
        waiting = self.filtered(lambda r: r.state in undone)
        waiting.sudo().write({"state": "undelivered", "delivery_note": reason})
        self._log_event(event, reason=reason, **details)

    def _batch_not_sent(self, reason):
        """Skipped or not rendered by its batch: a first request is
        undelivered; a second one leaves the first delivered."""
        queued = self.filtered(lambda r: r.state == "queued")
        queued._mark_undelivered("undelivered", reason)
        (self - queued)._log_event("undelivered", reason=reason)

    def action_mark_posted(self):
        """The auditor posted these letters (never sent, or undelivered by
        email): they wait for an answer, the letter being the channel."""
        self.env["account.confirmation.campaign"]._check_auditor()
        for request in self:
            if request.state not in ("draft", "undelivered", "uncertain") or (
                request.campaign_id.state != "sent"
            ):
                raise UserError(
                    self.env._(
                        "Only unsent or undelivered requests of a sent campaign "
                        "are posted."
                    )
                )
            # an email that may have arrived carries the old link too
            renewed = request.state in ("undelivered", "uncertain")
            if renewed:
                # an emailed copy may carry the old link: only the letter's works
                request._renew_token()
            request.sudo().write(
                {
                    "state": "posted",
                    "by_post": True,
                    "sent_date": fields.Date.context_today(self),
                }
            )
            request._log_event("posted", link_renewed=renewed)
        # the letter to post, with the link it now carries
        return self.env.ref(
            "account_document_email.action_report_confirmation_request"
        ).report_action(self)

    def _renew_token(self):
        """A new token and a fresh code count: every link made before stops
        working, and whoever holds the letter may answer; the emails still
        queued, which carry the dead link, are cancelled."""
        self.sudo().write(NO_TOKEN_NOR_CODE)
        self._ensure_token_nonce()
        self._cancel_queued_emails(
            self.env._("Cancelled: the request was posted with a new link.")
        )

    def _cancel_queued_emails(self, reason):
        """The requests' own emails not sent yet: cancelled, their outcome
        recorded."""
        for request in self:
            mails = (
                self.env["mail.mail"]
                .sudo()
                .search(
                    [
                        ("model", "=", self._name),
                        ("res_id", "=", request.id),
                        ("state", "=", "outgoing"),
                    ]
                )
                .filtered(request._is_confirmation_mail)
            )
            # one a live worker is sending is left to it: its outcome decides
            mails -= self._get_mails_in_flight()
            mails.write({"state": "cancel", "failure_reason": reason})
            for mail in mails:
                request._email_outcome(mail, reason)

    def _get_mails_in_flight(self):
        """The requests' emails another live worker has claimed: being sent
        now, their outcome not recorded yet."""
        if not self:
            return self.env["mail.mail"]
        self.env.flush_all()
        # the sessions as they are now, not as this transaction first saw them
        self.env.cr.execute(SQL("SELECT pg_stat_clear_snapshot()"))
        self.env.cr.execute(
            SQL(
                f"""SELECT mail.id FROM mail_mail mail
                      JOIN mail_message message ON message.id = mail.mail_message_id
                     WHERE message.model = %s AND message.res_id IN %s
                       AND mail.document_claim_pid != pg_backend_pid()
                       AND NOT {CLAIM_FREE}""",
                self._name,
                tuple(self.ids),
            )
        )
        return self.env["mail.mail"].sudo().browse(r[0] for r in self.env.cr.fetchall())

    def _get_in_flight(self):
        """Those of these requests whose email a live worker is sending."""
        in_flight = self._get_mails_in_flight().mail_message_id.mapped("res_id")
        return self.filtered(lambda r: r.id in in_flight)

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
        """Who may send these requests: the auditor (ISA 505 ¶7)."""
        return AUDITOR_GROUP

    # ------------------------------------------------------------------
    # What the letter and the public page show
    # ------------------------------------------------------------------

    def _ensure_token_nonce(self):
        """Give each request its nonce, and record the digest of the token
        derived from it (a request migrated with an old token keeps its
        digest: the link it was sent still works)."""
        for request in self.sudo().filtered(lambda r: not r.token_nonce):
            request.token_nonce = secrets.token_hex(16)
            if not request.access_token_hash:
                request.access_token_hash = token_hash(
                    request._get_confirmation_token()
                )

    def _may_read_token(self):
        """The auditor, who sends and prints, and the scheduled jobs."""
        return (
            self.env.su
            or self.env.user._is_superuser()
            or self.env.user.has_group(AUDITOR_GROUP)
        )

    def _get_confirmation_token(self):
        """The personal link's token, derived again each time an email or a
        letter is made: the database keeps no token a user could read, and
        only the auditor makes emails and letters."""
        self.ensure_one()
        if not self._may_read_token():
            raise AccessError(
                self.env._("Only the confirmation auditor prints or sends requests.")
            )
        self._ensure_token_nonce()
        return hmac(self.env(su=True), TOKEN_SCOPE, (self.id, self.sudo().token_nonce))

    def _check_confirmation_token(self, token):
        """Whether ``token`` (ASCII text) opens this request."""
        self.ensure_one()
        request = self.sudo()
        if request.access_token_hash and consteq(
            request.access_token_hash, token_hash(token)
        ):
            return True
        return bool(request.token_nonce) and consteq(
            request._get_confirmation_token(), token
        )

    def _portal_ensure_token(self):
        """portal.mixin's links (chatter notifications, get_portal_url, often
        under sudo, context keys a user can pass) carry no token: the
        personal link is made by _get_confirmation_url alone, for whoever
        may read it."""
        return False

    def _document_email_before_render(self):
        self._ensure_token_nonce()

    def _get_document_email_message_body(self, body):
        """The chatter's copy of the email: the link without its token."""
        self.ensure_one()
        token = self._get_confirmation_token()
        return Markup(str(body).replace(token, HIDDEN_TOKEN)) if body else body

    def _get_document_email_files(self, report):
        """The emailed letter, kept in the chatter, points to the email's
        link instead of carrying it."""
        send = self.env["document.email.send"].with_context(confirmation_no_link=True)
        pdfs = send._render_pdfs(report, self)
        return {
            res_id: [{"name": name, "raw": raw, "mimetype": "application/pdf"}]
            for res_id, (name, raw) in pdfs.items()
        }

    def _get_confirmation_url(self):
        """The partner's personal link, with its token."""
        self.ensure_one()
        # refused (AccessError) to whoever is not the auditor
        token = self._get_confirmation_token()
        return f"{self.get_base_url()}{self.access_url}?access_token={token}"

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

    def _get_company_balance(self):
        self.ensure_one()
        return self.currency_id._convert(
            self.our_balance,
            self.company_id.currency_id,
            self.company_id,
            self.date_at,
        )

    def _get_alternative_procedures(self):
        """Per open item at the date: what settled it after the date and what
        is still unexplained, in the company's currency (ISA 505 A18)."""
        self.ensure_one()
        rows = self._fetch_open_items()[self.id] or []
        lines = self.env["account.move.line"].sudo().browse([r["id"] for r in rows])
        result = []
        for row, line in zip(rows, lines, strict=True):
            receipts = [
                {
                    "name": other.move_id.name,
                    "date": partial.max_date,
                    "amount": partial.amount,
                }
                for partial, other in settlements(line)
                if partial.max_date > self.date_at
            ]
            settled = sum(receipt["amount"] for receipt in receipts)
            result.append(
                {
                    "name": row["move_name"],
                    "due_date": row["due_date"],
                    "open_amount": abs(row["open_amount"]),
                    "receipts": receipts,
                    "unexplained": abs(row["open_amount"]) - settled,
                }
            )
        return result

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
        if self.code_locked:
            return False
        # late answers still count: the auditor decides what to do with them
        # uncertain: the email may have reached the partner
        return self.state in WAITING_STATES + ("uncertain", "no_reply", "no_exception")

    # ------------------------------------------------------------------
    # The partner's answer
    # ------------------------------------------------------------------

    def _log_event(self, event_type, **payload):
        """Append ``event_type`` of each request to its campaign's evidence."""
        Event = self.env["account.confirmation.event"]
        for request in self:
            # after the closing: a late entry, flagged
            late = {"late": True} if request.campaign_id.state == "closed" else {}
            Event._append(request.campaign_id, event_type, request, payload | late)

    def _mark_opened(self, **visitor):
        # opening the link proves an uncertain email arrived
        opened = self.filtered(lambda r: r.state in ("sent", "posted", "uncertain"))
        # an uncertain email's delivery is known from today only
        arrived = opened.filtered(lambda r: r.state == "uncertain")
        arrived.sudo().sent_date = fields.Date.context_today(self)
        opened.sudo().state = "opened"
        opened._log_event("opened", **visitor)

    # ------------------------------------------------------------------
    # The one-time code (who answers reads the approved mailbox)
    # ------------------------------------------------------------------

    def _hash_code(self, code):
        self.ensure_one()
        return hashlib.sha256(
            f"{self.id}:{self.sudo().token_nonce}:{code}".encode()
        ).hexdigest()

    def _needs_code(self):
        """Whether the answer needs the code emailed to the approved address:
        the campaign asks for it, unless the letter went by post (the printed
        letter, sent by the auditor to the partner's address, is the channel;
        a posted request may have no approved email at all)."""
        self.ensure_one()
        return bool(self.campaign_id.require_code and not self.by_post)

    def _send_answer_code(self, **visitor):
        """Queue a new code for the approved address (the page sends it once
        its transaction committed), unless one still runs or too many wrong codes
        locked the request: the email, or no email."""
        self.ensure_one()
        request = self.sudo()
        now = fields.Datetime.now()
        if request.code_locked or (request.code_hash and request.code_expiry > now):
            return self.env["mail.mail"]
        code = f"{secrets.randbelow(10**6):06d}"
        request.write(
            {
                "code_hash": self._hash_code(code),
                "code_expiry": now + timedelta(minutes=CODE_MINUTES),
                "code_tries": 0,
            }
        )
        mail = self.env["mail.mail"].sudo().create(self._prepare_code_mail(code))
        self._log_event("code_sent", email_to=self.approved_email, **visitor)
        return mail

    def _prepare_code_mail(self, code):
        """Not on the request: the chatter never shows a code."""
        self.ensure_one()
        lang_env = self.with_context(lang=self.partner_id.lang).env
        body = Markup("<p>%s</p><p><strong>%s</strong></p><p>%s</p>") % (
            lang_env._(
                "Your code to answer the balance confirmation of %(company)s:",
                company=self.company_id.name,
            ),
            code,
            lang_env._(
                "It is valid for %(minutes)s minutes. If you did not ask for "
                "it, ignore this email.",
                minutes=CODE_MINUTES,
            ),
        )
        return {
            "subject": lang_env._(
                "Your code for the balance confirmation of %(company)s",
                company=self.company_id.name,
            ),
            "body_html": body,
            "email_from": self.company_id.email_formatted,
            "email_to": self.approved_email,
            "mail_server_id": self.company_id._get_document_mail_server().id,
            "auto_delete": True,
        }

    def _check_answer_code(self, code):
        """Whether ``code`` is the running one: used once, a few tries."""
        self.ensure_one()
        request = self.sudo()
        if not (
            request.code_hash
            and not request.code_locked
            and request.code_expiry > fields.Datetime.now()
            and request.code_tries < CODE_TRIES
            and isinstance(code, str)
            and code.isascii()
        ):
            return False
        if not consteq(request.code_hash, self._hash_code(code.strip())):
            self._code_failed()
            return False
        request.code_hash = False
        self._log_event("code_checked")
        return True

    def _code_failed(self):
        """A wrong code: logged; after CODE_LIFETIME_TRIES over the request's
        life, locked and the auditor told (alternative procedures then)."""
        request = self.sudo()
        request.write(
            {
                "code_tries": request.code_tries + 1,
                "code_failures": request.code_failures + 1,
            }
        )
        self._log_event("code_failed", failures=request.code_failures)
        if request.code_failures >= CODE_LIFETIME_TRIES:
            request.write({"code_locked": True, "code_hash": False})
            self._log_event("code_locked", failures=request.code_failures)
            self._notify_code_locked()

    def _notify_code_locked(self):
        """An email to the campaign's reply address (the auditor's)."""
        self.ensure_one()
        campaign = self.campaign_id
        if not campaign.reply_email:
            return
        text = self.env._(
            "Balance confirmation %(campaign)s: the request to %(partner)s is "
            "locked after %(tries)s wrong codes. Nobody can answer it online "
            "any more.",
            campaign=campaign.name,
            partner=self.partner_id.display_name,
            tries=CODE_LIFETIME_TRIES,
        )
        self.env["mail.mail"].sudo().create(
            {
                "subject": text,
                "body_html": Markup("<p>%s</p>") % text,
                "email_from": self.company_id.email_formatted,
                "email_to": campaign.reply_email,
                "mail_server_id": self.company_id._get_document_mail_server().id,
            }
        )

    def _get_answer_evidence(self, user_agent=""):
        """What the answer's evidence entry covers."""
        self.ensure_one()
        file = self.answer_attachment_id.sudo()
        return {
            "state": self.state,
            "currency": self.currency_id.name,
            "our_balance": self.our_balance,
            "their_balance": self.their_balance,
            "comment": self.comment or "",
            "file_name": file.name or "",
            "file_sha256": hashlib.sha256(file.raw).hexdigest() if file else "",
            "answer_date": fields.Datetime.to_string(self.answer_date),
            "ip": self.answer_ip or "",
            "user_agent": user_agent,
            "responder_name": self.responder_name or "",
            "responder_role": self.responder_role or "",
        }

    def _get_answer_file_status(self, recorded):
        """Whether the answer's file still has the digest ``recorded``:
        "intact", "changed", or "missing" (its row or its bytes gone)."""
        self.ensure_one()
        return file_status(self.sudo().answer_attachment_id, recorded)

    def _record_answer(
        self,
        agree,
        their_amount=0.0,
        comment="",
        file=None,
        ip="",
        responder=("", ""),
        user_agent="",
    ):
        """Record the partner's answer (once), log it on the partner and copy
        it to the campaign's reply address. ``their_amount`` is in the
        direction shown on the page (what they owe us, or what we owe them);
        ``file`` is (name, bytes) or None; ``responder`` is the (name, position)
        the person declared."""
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
            "responder_name": responder[0] or False,
            "responder_role": responder[1] or False,
        }
        if file and file[1]:
            values["answer_attachment_id"] = self._create_answer_file(file).id
        self.sudo().write(values)
        self._log_event("answered", **self._get_answer_evidence(user_agent))
        self._post_answer()
        self._notify_answer()

    def _create_answer_file(self, file):
        self.ensure_one()
        return self.env["ir.attachment"].create(
            {
                "name": file[0] or "answer",
                "raw": file[1],
                "res_model": self._name,
                "res_id": self.id,
            }
        )

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
        due.sudo().write({"state": "second_sent", "second_request_date": today})
        for requests in due.grouped("company_id").values():
            self.env["document.email.send"].with_company(
                requests.company_id
            )._queue_documents(requests)
        return due

    @api.model
    def _detect_bounces(self, requests=None):
        """Each bounce of a request's own email (of ``requests`` when given),
        once, in the evidence with its email (late after the closing); a
        request still waiting becomes undelivered."""
        domain = [
            ("mail_message_id.model", "=", self._name),
            ("notification_status", "=", "bounce"),
        ]
        if requests is not None:
            domain.append(("mail_message_id.res_id", "in", requests.ids))
        notifications = self.env["mail.notification"].sudo().search(domain)
        requests = self.sudo().browse(notifications.mail_message_id.mapped("res_id"))
        bounced = self.browse()
        for request in requests.exists():
            # the request's own emails only: a chatter message to someone
            # else bouncing says nothing of the request
            messages = notifications.mail_message_id & request.confirmation_message_ids
            for message in messages - request._get_recorded_bounces(messages):
                request._record_bounce(message)
                bounced |= request
        return bounced

    def _get_recorded_bounces(self, messages):
        """Those of ``messages`` whose bounce the evidence already holds (an
        entry made before bounces named their email covers the older ones)."""
        self.ensure_one()
        entries = self.sudo().event_ids.filtered(lambda e: e.event_type == "bounced")
        payloads = [(e, json.loads(e.payload or "{}")) for e in entries]
        named = {p.get("mail_message_id") for __, p in payloads}
        before = max(
            (e.event_date for e, p in payloads if "mail_message_id" not in p),
            default=None,
        )
        return messages.filtered(
            lambda m: m.id in named or (before and m.create_date <= before)
        )

    def _record_bounce(self, message):
        """A waiting or unanswered request becomes undelivered, unless its
        campaign is closed or the auditor posted the letter (an old bounce is what the
        letter answered)."""
        self.ensure_one()
        mails = (
            self.env["mail.mail"].sudo().search([("mail_message_id", "=", message.id)])
        )
        # the add-on's own email of that message, not a copy made by hand
        mail = mails.filtered(self._is_confirmation_mail)[:1]
        details = {"mail_id": mail.id, "mail_message_id": message.id}
        if (
            self.by_post
            or self.campaign_id.state == "closed"
            or self.state not in PENDING_STATES + WAITING_STATES + DEADLINE_STATES
        ):
            self._log_event("bounced", reason="bounced", **details)
        else:
            self._mark_undelivered("bounced", "bounced", **details)

    @api.model
    def _close_unanswered(self):
        """At the deadline: the requests' emails still queued are cancelled;
        no reply (positive) or no exception (negative); an email the server
        never took is undelivered, one it may have taken is no reply."""
        self._detect_bounces()
        late = self.sudo().search(
            [
                ("state", "in", PENDING_STATES + WAITING_STATES),
                ("campaign_id.state", "=", "sent"),
                ("campaign_id.deadline", "<", fields.Date.context_today(self)),
            ]
        )
        # the outcomes a killed worker lost first; an email being sent now
        # is left to its worker and to the next pass
        self.env["account.confirmation.outcome"]._record_missing(
            campaigns=late.campaign_id
        )
        late -= late._get_in_flight()
        # a partner never gets a request after its deadline
        late._cancel_queued_emails(self.env._("Cancelled: the deadline passed."))
        # cancelled just now: undelivered, their outcome recorded
        cancelled = late.filtered(lambda r: r.state == "undelivered")
        queued = late.filtered(lambda r: r.state == "queued")
        queued._mark_undelivered("undelivered", "never taken by the mail server")
        late -= cancelled | queued
        # locked (wrong codes), maybe never delivered, or delivered too late
        # to answer: never "no exception"
        negative = late.filtered(
            lambda r: (
                r.kind == "negative"
                and not r.code_locked
                and r.state != "uncertain"
                and r._had_time_to_answer()
            )
        )
        negative.state = "no_exception"
        # maybe delivered: left for the auditor's alternative procedures
        (late - negative).filtered(lambda r: r.state != "uncertain").state = "no_reply"
        return late
