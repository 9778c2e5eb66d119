import json
import logging
import threading
from datetime import timedelta

from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.service.model import PG_CONCURRENCY_EXCEPTIONS_TO_RETRY
from odoo.tools import SQL

from .mail_mail_claim import CLAIM_FREE

_logger = logging.getLogger(__name__)

# how long the job waits for a campaign's head before leaving it to its next run
LOCK_TIMEOUT = "2s"
# emails whose outcome a killed worker never recorded, looked for per run
SWEEP_LIMIT = 200


class AccountConfirmationOutcome(models.Model):
    """What the mail server did with a request's email, recorded in the
    transaction of that outcome (a plain insert, no head locked), then
    appended to the campaign's evidence by a job of its own: the mail queue
    never waits for a busy head, and no outcome depends on mail.mail rows."""

    _name = "account.confirmation.outcome"
    _description = "Balance Confirmation Email Outcome"
    _order = "campaign_id, id"
    _log_access = False

    campaign_id = fields.Many2one(
        "account.confirmation.campaign",
        required=True,
        ondelete="restrict",
        index=True,
        readonly=True,
    )
    request_id = fields.Many2one(
        "account.confirmation.request", required=True, ondelete="restrict",
        readonly=True,
    )  # fmt: skip
    mail_ref = fields.Integer("Email ID", readonly=True, index=True)
    event_type = fields.Selection(
        [
            ("delivered", "Delivered"),
            ("undelivered", "Undelivered"),
            ("uncertain", "Delivery Uncertain"),
        ],
        required=True,
        readonly=True,
    )
    payload = fields.Text(readonly=True)
    # no foreign key: an entry removed in the database leaves its outcome
    # appended, and the evidence report shows the outcome missing
    event_ref = fields.Integer("Evidence Entry ID", readonly=True, index=True)

    @api.model_create_multi
    def create(self, vals_list):
        if not self.env.context.get("confirmation_outcome_record"):
            raise UserError(self.env["account.confirmation.event"]._get_refusal())
        return super().create(vals_list)

    def write(self, vals):
        if self and not self.env.context.get("confirmation_outcome_record"):
            raise UserError(self.env["account.confirmation.event"]._get_refusal())
        return super().write(vals)

    def unlink(self):
        if self:
            raise UserError(self.env["account.confirmation.event"]._get_refusal())
        return super().unlink()

    @api.model
    def _record(self, request, mail_id, event_type, payload):
        """The outcome, to be appended: in the email's own transaction."""
        return (
            self.sudo()
            .with_context(confirmation_outcome_record=True)
            .create(
                {
                    "campaign_id": request.campaign_id.id,
                    "request_id": request.id,
                    "mail_ref": mail_id,
                    "event_type": event_type,
                    "payload": json.dumps(payload, sort_keys=True, default=str),
                }
            )
        )

    def _append_one(self, nowait=True):
        """Append this outcome's entry (late once its campaign is closed)."""
        self.ensure_one()
        # the outcome's row first: one appended meanwhile by another job (or
        # by a closing) is not appended twice
        lock = "FOR UPDATE NOWAIT" if nowait else "FOR UPDATE"
        self.flush_recordset(["event_ref"])
        self.env.cr.execute(
            SQL(
                "SELECT event_ref FROM account_confirmation_outcome WHERE id = %s %s",
                self.id,
                SQL(lock),
            )
        )
        [(appended,)] = self.env.cr.fetchall()
        if appended:
            self.invalidate_recordset(["event_ref"])
            return self.env["account.confirmation.event"].sudo().browse(appended)
        payload = json.loads(self.payload)
        if self.campaign_id.state == "closed":
            payload["late"] = True
        event = self.env["account.confirmation.event"]._append(
            self.campaign_id, self.event_type, self.request_id, payload, nowait=nowait
        )
        self.with_context(confirmation_outcome_record=True).event_ref = event.id
        return event

    def _try_append(self, nowait=True):
        """Append these outcomes in order while their head is free; False
        as soon as it is busy (the rest waits for the job's next run)."""
        quiet = self.with_context(confirmation_busy_ok=True)
        for outcome in quiet.sorted("id"):
            try:
                with self.env.cr.savepoint():
                    outcome._append_one(nowait=nowait)
            except PG_CONCURRENCY_EXCEPTIONS_TO_RETRY:
                return False
        return True

    @api.model
    def _get_pending(self, campaigns=None):
        domain = [("event_ref", "=", 0)]
        if campaigns is not None:
            domain.append(("campaign_id", "in", campaigns.ids))
        return self.sudo().search(domain, order="campaign_id, id")

    @api.model
    def _cron_append_pending(self):
        """Append the pending outcomes, campaign by campaign in id order,
        each committed; a campaign whose head stays busy waits for the next
        run (triggered again); first, the outcomes a killed worker lost."""
        testing = getattr(threading.current_thread(), "testing", False)
        # more lost outcomes than a run takes: the job runs again soon
        busy = not self._record_missing(SWEEP_LIMIT)
        for outcomes in self._get_pending().grouped("campaign_id").values():
            # a short wait at most: a head held long is tried again later
            self.env.cr.execute(SQL("SET LOCAL lock_timeout = %s", LOCK_TIMEOUT))
            busy |= not outcomes._try_append(nowait=False)
            if not testing:
                self.env.cr.commit()  # pylint: disable=invalid-commit
        if busy:
            self._trigger_append(fields.Datetime.now() + timedelta(minutes=1))
        return not busy

    @api.model
    def _trigger_append(self, at=None):
        """The job runs soon; a busy head is tried again a minute later."""
        cron = self.env.ref("account_document_email.ir_cron_confirmation_outcomes")
        cron.sudo()._trigger(at=at)

    @api.model
    def _record_missing(self, limit=None, campaigns=None):
        """The outcome of the requests' own emails that reached a final state
        with none recorded (a worker killed between its in-flight mark and the
        outcome, or an outcome of an older version left to the follow-up);
        False when ``limit`` left some for the next run."""
        rows = self._get_missing_rows(limit, campaigns)
        Mail = self.env["mail.mail"].sudo()
        Request = self.env["account.confirmation.request"].sudo()
        for mail_id, request_id in rows:
            # one savepoint each: a bad row never keeps the others unrecorded
            try:
                with self.env.cr.savepoint():
                    Request.browse(request_id)._email_outcome(Mail.browse(mail_id))
            except Exception:
                _logger.exception("Outcome of email %s not recorded", mail_id)
        return not limit or len(rows) < limit

    @api.model
    def _get_missing_rows(self, limit=None, campaigns=None):
        """[(email, request)] of those emails: settled, claimed by no live
        worker (SKIP LOCKED: none being written now), without an outcome row
        nor an outcome entry naming them (as older versions appended)."""
        field = self.env["account.confirmation.request"]._fields[
            "confirmation_message_ids"
        ]
        self.env.flush_all()
        # the sessions as they are now, not as this transaction first saw them
        self.env.cr.execute(SQL("SELECT pg_stat_clear_snapshot()"))
        self.env.cr.execute(
            SQL(
                f"""SELECT mail.id, request.id
  FROM mail_mail mail
  JOIN mail_message message ON message.id = mail.mail_message_id
  JOIN account_confirmation_request request ON request.id = message.res_id
  JOIN %(rel)s rel ON rel.%(col1)s = request.id AND rel.%(col2)s = message.id
 WHERE message.model = 'account.confirmation.request'
   %(campaigns)s
   AND mail.state IN ('sent', 'exception', 'cancel')
   AND (mail.document_claim_pid IS NULL OR {CLAIM_FREE})
   AND NOT EXISTS (SELECT 1 FROM account_confirmation_outcome o
                    WHERE o.mail_ref = mail.id)
   AND NOT EXISTS (SELECT 1 FROM account_confirmation_event event
                    WHERE event.request_id = request.id
                      AND event.event_type IN %(types)s
                      AND (strpos(event.payload, %(key)s || mail.id || ',') > 0
                           OR strpos(event.payload, %(key)s || mail.id || '}}') > 0))
 ORDER BY mail.id %(limit)s
   FOR NO KEY UPDATE OF mail SKIP LOCKED""",
                rel=SQL.identifier(field.relation),
                col1=SQL.identifier(field.column1),
                col2=SQL.identifier(field.column2),
                types=("delivered", "undelivered", "uncertain"),
                # as json.dumps(sort_keys=True) writes it; no cast of a payload
                key='"mail_id": ',
                limit=SQL("LIMIT %s", limit) if limit else SQL(),
                campaigns=SQL(
                    "AND request.campaign_id IN %s", tuple(campaigns.ids) or (0,)
                )
                if campaigns is not None
                else SQL(),
            )
        )
        return self.env.cr.fetchall()
