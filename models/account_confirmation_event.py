import hashlib
import json

from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.tools import SQL

EVENT_TYPES = [
    ("sent", "Sent"),
    ("delivered", "Delivered"),
    ("bounced", "Bounced"),
    ("undelivered", "Undelivered"),
    ("uncertain", "Delivery Uncertain"),
    ("posted", "Posted"),
    ("opened", "Opened"),
    ("code_sent", "Code Sent"),
    ("code_checked", "Code Checked"),
    ("code_failed", "Wrong Code"),
    ("code_locked", "Code Locked"),
    ("answered", "Answered"),
    ("second_request", "Second Request"),
    ("approved", "Approved"),
    ("closed", "Closed"),
]
# the hash of a campaign's first entry chains to this
GENESIS_HASH = "0" * 64


class AccountConfirmationEvent(models.Model):
    """The evidence of a campaign: an append-only log where each entry's hash
    covers its content and the previous entry's hash, as core's inalterable
    hash of posted entries. Nothing edits or deletes an entry through the
    ORM; a change made in the database breaks the chain where it was made."""

    _name = "account.confirmation.event"
    _description = "Balance Confirmation Evidence"
    _order = "campaign_id, sequence"
    _log_access = False

    campaign_id = fields.Many2one(
        "account.confirmation.campaign",
        required=True,
        ondelete="restrict",
        index=True,
        readonly=True,
    )
    company_id = fields.Many2one(related="campaign_id.company_id", store=True)
    request_id = fields.Many2one(
        "account.confirmation.request", ondelete="restrict", index=True, readonly=True
    )
    partner_id = fields.Many2one(related="request_id.partner_id")
    sequence = fields.Integer(required=True, readonly=True)
    event_type = fields.Selection(EVENT_TYPES, required=True, readonly=True)
    event_date = fields.Datetime(required=True, readonly=True)
    user_id = fields.Many2one("res.users", "Recorded By", readonly=True)
    # as recorded, hashed: a later change of the user or the request's
    # partner (a merge) shows in the chain
    user_login = fields.Char(readonly=True)
    partner_ref = fields.Integer("Partner ID", readonly=True)
    payload = fields.Text(readonly=True, help="The event's details, as JSON.")
    previous_hash = fields.Char(readonly=True)
    hash = fields.Char(readonly=True)

    _sql_constraints = [
        (
            "campaign_sequence_unique",
            "unique(campaign_id, sequence)",
            "An entry follows exactly one other in its campaign's log.",
        )
    ]

    @api.model_create_multi
    def create(self, vals_list):
        if not self.env.context.get("confirmation_event_append"):
            raise UserError(self._get_refusal())
        return super().create(vals_list)

    def write(self, vals):
        if self:
            raise UserError(self._get_refusal())
        return super().write(vals)

    def unlink(self):
        if self:
            raise UserError(self._get_refusal())
        return super().unlink()

    def _get_refusal(self):
        return self.env._(
            "The evidence of balance confirmations is append-only: its entries "
            "are recorded by the confirmations themselves and can be neither "
            "changed nor deleted."
        )

    # ------------------------------------------------------------------
    # Appending and verifying
    # ------------------------------------------------------------------

    @api.model
    def _append(self, campaign, event_type, request=None, payload=None, nowait=False):
        """Append one entry to ``campaign``'s chain; with ``nowait``, raise
        LockNotAvailable at once while another transaction holds the head."""
        self._check_late(campaign, event_type, payload)
        # the head lives on the campaign, locked here and moved below: a
        # concurrent append waits, then (repeatable read) gets a serialization
        # error, which Odoo retries, and the chain never forks; "no key": the
        # rows that only refer to the campaign (outcomes) are never held up
        self.env.cr.execute(
            SQL(
                """SELECT evidence_head_sequence, evidence_head_hash
                     FROM account_confirmation_campaign WHERE id = %s
                      FOR NO KEY UPDATE %s""",
                campaign.id,
                SQL("NOWAIT") if nowait else SQL(),
            ),
            # the caller handles a busy head: no "bad query" in the log
            log_exceptions=not (nowait or self.env.context.get("confirmation_busy_ok")),
        )
        head_sequence, head_hash = self.env.cr.fetchone()
        values = {
            "campaign_id": campaign.id,
            "request_id": request.id if request else False,
            "sequence": (head_sequence or 0) + 1,
            "event_type": event_type,
            "event_date": fields.Datetime.now(),
            "user_id": self.env.uid,
            "user_login": self.env.user.sudo().login,
            "partner_ref": request.partner_id.id if request else 0,
            "payload": json.dumps(payload or {}, sort_keys=True, default=str),
            "previous_hash": head_hash or GENESIS_HASH,
        }
        values["hash"] = self._compute_entry_hash(values)
        self.env.cr.execute(
            SQL(
                """UPDATE account_confirmation_campaign
                      SET evidence_head_sequence = %s, evidence_head_hash = %s
                    WHERE id = %s""",
                values["sequence"],
                values["hash"],
                campaign.id,
            )
        )
        campaign.invalidate_recordset(["evidence_head_sequence", "evidence_head_hash"])
        return self.sudo().with_context(confirmation_event_append=True).create(values)

    @api.model
    def _check_late(self, campaign, event_type, payload):
        """A closed campaign's evidence takes late entries only, flagged."""
        if (
            campaign.sudo().state == "closed"
            and event_type != "closed"
            and not (payload or {}).get("late")
        ):
            raise UserError(
                self.env._(
                    "This campaign is closed: only a late entry, flagged as "
                    "such, is added to its evidence."
                )
            )

    @api.model
    def _compute_entry_hash(self, values):
        """sha256 of the previous hash and every recorded field."""
        content = {
            key: values[key]
            for key in (
                "campaign_id",
                "request_id",
                "sequence",
                "event_type",
                "event_date",
                "user_id",
                "payload",
            )
        }
        content["event_date"] = fields.Datetime.to_string(content["event_date"])
        # recorded since the login and partner are hashed: older entries
        # verify as they were made
        for key in ("user_login", "partner_ref"):
            if values.get(key):
                content[key] = values[key]
        text = values["previous_hash"] + json.dumps(content, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def _is_late(self):
        """Appended after its campaign's closing."""
        self.ensure_one()
        return bool(json.loads(self.payload or "{}").get("late"))

    def _get_entry_values(self):
        self.ensure_one()
        return {
            "campaign_id": self.campaign_id.id,
            "request_id": self.request_id.id,
            "sequence": self.sequence,
            "event_type": self.event_type,
            "event_date": self.event_date,
            "user_id": self.user_id.id,
            "user_login": self.user_login,
            "partner_ref": self.partner_ref,
            "payload": self.payload,
            "previous_hash": self.previous_hash or "",
        }

    def _find_first_break(self):
        """The first entry of these (one campaign's, in order) whose hash or
        link to the previous one does not hold, or None."""
        previous = GENESIS_HASH
        for expected_sequence, entry in enumerate(self.sorted("sequence"), 1):
            if (
                entry.sequence != expected_sequence
                or entry.previous_hash != previous
                or entry.hash != self._compute_entry_hash(entry._get_entry_values())
            ):
                return entry
            previous = entry.hash
        return None
