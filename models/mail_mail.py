import logging
from datetime import timedelta

from odoo import fields, models, tools
from odoo.tools import SQL, split_every
from odoo.tools.mail import email_normalize, email_normalize_all, email_split_and_format

from .ir_mail_server import CONNECT_FAILED, DocumentSMTPMixin
from .mail_mail_claim import CLAIM_FREE, ONE_SLICE, QUEUE_CLAIMING

_logger = logging.getLogger(__name__)

# temporary refusals (4xx) are tried again after 2, 4, 8 and 16 minutes
MAX_ATTEMPTS = 5
# emails per SMTP session of a documents server (and per claim): small
# enough that several workers share a long queue; 0 in the parameter: the
# whole queue run in one session (at most the server's own cap)
SLICE_PARAM = "account_document_email.delivery_slice_size"
SLICE_SIZE = 20

# what an email's columns make of its batch line and its documents, as
# document.email.batch.line._compute_state and
# mail.mail._get_document_delivery_state compute it
LINE_STATE_SQL = """CASE WHEN mail.document_bounced THEN 'bounced'
     WHEN mail.state IN ('sent', 'received') THEN 'sent'
     WHEN mail.state IN ('exception', 'cancel') THEN 'failed'
     ELSE 'queued' END"""
DOCUMENT_STATE_SQL = """CASE WHEN mail.document_bounced THEN 'bounced'
     WHEN mail.state = 'exception' AND mail.document_uncertain THEN 'uncertain'
     WHEN mail.state = 'exception' THEN 'failed'
     WHEN mail.state IN ('sent', 'received') THEN 'sent'
     WHEN mail.state = 'cancel' THEN 'cancelled'
     ELSE 'queued' END"""


class MailMail(models.Model):
    _inherit = "mail.mail"

    email_bcc = fields.Char(
        "Bcc",
        help="Blind carbon copy recipients: they get the email, no header names them",
    )
    document_attempts = fields.Integer("Delivery attempts", default=0, readonly=True)
    # when a company's documents server took it: its per-minute limit counts these
    document_sent_at = fields.Datetime(
        "Taken by the server at", readonly=True, copy=False, index="btree_not_null"
    )
    document_uncertain = fields.Boolean(
        "Delivery uncertain",
        readonly=True,
        copy=False,
        help="The connection broke while the server was taking the email: it "
        "may have been delivered, so it is never sent again automatically.",
    )

    def _prepare_outgoing_list(
        self, mail_server=False, recipients_follower_status=None
    ):
        """Add the Bcc recipients to the SMTP envelope of the first email; Odoo
        drops the Bcc header before sending."""
        results = super()._prepare_outgoing_list(
            mail_server=mail_server,
            recipients_follower_status=recipients_follower_status,
        )
        if self.email_bcc and results:
            first = results[0]
            first["headers"] = dict(
                first["headers"], Bcc=", ".join(email_split_and_format(self.email_bcc))
            )
            first["email_to_normalized"] = first["email_to_normalized"] + (
                email_normalize_all(self.email_bcc)
            )
        return results

    def _split_by_mail_configuration(self):
        """A company's documents server: core opens one SMTP session per
        batch, so its batches are slices of at most the server's emails per
        connection, and of SLICE_PARAM emails at most (several workers then
        share a long queue). In the queue, each slice is claimed right before
        its session connects: a session, even refused, touches only the
        emails it claimed; its emails' states are settled when it ends."""
        servers = self.env["ir.mail_server"].sudo()
        for (
            server_id,
            alias_domain_id,
            smtp_from,
            batch_ids,
        ) in super()._split_by_mail_configuration():
            server = servers.browse(server_id)
            if not server.document_company_id:
                yield server_id, alias_domain_id, smtp_from, batch_ids
                continue
            claiming = QUEUE_CLAIMING.get()
            one_slice = ONE_SLICE.get()
            for slice_ids in split_every(self._document_slice_size(server), batch_ids):
                session = self.browse(slice_ids)
                if claiming:
                    session = session._document_claim()
                if not session:
                    continue
                if one_slice is not None:
                    one_slice["claimed"] += len(session)
                CONNECT_FAILED.set(None)
                yield server_id, alias_domain_id, smtp_from, session.ids
                refused = CONNECT_FAILED.get() == server_id
                if claiming:
                    session._document_settle_session(commit=refused)
                if claiming and refused:
                    break  # unreachable: its other slices wait for the next run
                if one_slice is not None:
                    return  # a queue_job job: one session

    def _document_settle_session(self, commit=False):
        """A session ended (sent, failed, refused at connection): its emails'
        states are settled and its claims released; an error here never
        stops the other emails of the run (core's own among them)."""
        try:
            with self.env.cr.savepoint():
                self._document_email_states_changed()
                self._document_release()
        except Exception:
            _logger.exception("Settling the document emails %s failed", self.ids)
            return
        if commit:
            self.env["ir.mail_server"]._document_commit_keeping_cache()

    def _document_slice_size(self, server):
        """Emails per SMTP session of a documents server: the system
        parameter's (default SLICE_SIZE), at most the server's own cap."""
        param = self.env["ir.config_parameter"].sudo().get_param(SLICE_PARAM)
        try:
            size = int(float(param)) if param else SLICE_SIZE
        except (TypeError, ValueError, OverflowError):
            _logger.warning("Ignoring %s = %r: not a number", SLICE_PARAM, param)
            size = SLICE_SIZE
        sizes = [n for n in (size, server.document_max_per_connection) if n > 0]
        return min(sizes) if sizes else len(self) or 1

    def _document_within_minute_limit(self, server):
        """The emails the server's per-minute limit lets through now, as
        counted for all workers in a sliding window (document.mail.server.
        window); the others wait in the queue until a slot is free."""
        limit = server.document_max_per_minute
        if not limit or not self:
            return self
        windows = self.env["document.mail.server.window"]
        allowed = self[: windows._remaining(server)]
        if allowed != self:
            (self - allowed)._document_wait_for_limit(
                limit, windows._next_free_at(server)
            )
        return allowed

    def _document_wait_for_limit(self, limit, retry_at):
        """Kept in the queue, not failed: the provider's limit is reached."""
        if not self:
            return
        self.write(
            {
                "state": "outgoing",
                "scheduled_date": retry_at,
                "failure_reason": self.env._(
                    "Waiting for the provider's limit (%(limit)s per minute); next "
                    "attempt at %(when)s UTC.",
                    limit=limit,
                    when=retry_at.strftime("%H:%M"),
                ),
            }
        )
        self.env["mail.notification"].sudo().search(
            [
                ("mail_mail_id", "in", self.ids),
                ("notification_status", "!=", "ready"),
            ]
        ).notification_status = "ready"
        self.env.ref("mail.ir_cron_mail_scheduler_action")._trigger(at=retry_at)
        self._document_trigger_delivery(at=retry_at)

    def _send(
        self,
        auto_commit=False,
        raise_exception=False,
        smtp_session=None,
        alias_domain_id=False,
        mail_server=False,
        post_send_callback=None,
    ):
        arguments = {
            "auto_commit": auto_commit,
            "raise_exception": raise_exception,
            "smtp_session": smtp_session,
            "alias_domain_id": alias_domain_id,
            "mail_server": mail_server,
            "post_send_callback": post_send_callback,
        }
        if not isinstance(smtp_session, DocumentSMTPMixin):
            return super()._send(**arguments)
        # the queue's slices are claimed (and settled) by
        # _split_by_mail_configuration
        claimed = auto_commit is True and QUEUE_CLAIMING.get()
        if claimed:
            mails = self
        elif auto_commit is True:
            mails = self._document_claim()
        else:
            mails = self._document_unclaimed()
        server = self.env["ir.mail_server"]._document_session_settings(smtp_session)
        mails = mails._document_within_minute_limit(server["server"])
        mails._document_send_session(smtp_session, arguments)
        if not claimed:
            mails._document_email_states_changed()
            self._document_release()
        return True

    def _document_send_session(self, smtp_session, arguments):
        """The batch lines and documents follow these emails' states once, at
        the end of the session (_document_email_states_changed); a queue
        session stopped by an error leaves none of its emails claimed."""
        try:
            self.with_context(document_email_states_deferred=True)._document_send_each(
                smtp_session, arguments
            )
        except Exception:
            if arguments["auto_commit"] is True:
                self._document_release_after_error()
            raise

    def _document_send_each(self, smtp_session, arguments):
        """A company's documents server: one email at a time, so that what
        happens while sending is known to belong to this email only. The
        queue commits once per email: the in-flight mark of each email
        (ir.mail_server._document_mark_in_flight) commits the outcome of the
        one before with it; the last outcome is committed by the queue's
        caller (the cron). Killed at any point, an email is either still
        outgoing (never reached the server), or marked in flight (shown as
        uncertain, never sent again), or done. The session's emails' states
        are settled by _split_by_mail_configuration when it ends."""
        callback = arguments["post_send_callback"]
        each = dict(arguments, auto_commit=False, post_send_callback=None)
        for index, mail_id in enumerate(self.ids):
            if smtp_session.sock is None:  # closed by the server (a 421)
                # the emails left never reached it: free for any worker now
                self[index:]._document_release(commit=arguments["auto_commit"])
                break
            if not self._document_slot_reserved(smtp_session, arguments):
                self[index:]._document_wait_for_limit(
                    smtp_session.document_settings["limit"],
                    self.env["document.mail.server.window"]._next_free_at(
                        smtp_session.document_settings["server"]
                    ),
                )
                break
            # browsed alone, as core's _send does: a record prefetching the
            # whole session would read it all again after each commit
            mail = self.browse(mail_id)
            # core's auto_delete removes a sent email (not the add-on's own)
            auto_delete = mail.auto_delete
            smtp_session._init_document_state()
            sending = mail.with_context(
                document_email_mail_id=mail.id,
                document_email_auto_commit=arguments["auto_commit"],
            )
            super(MailMail, sending)._send(**each)
            mail._document_after_send(smtp_session, auto_delete)
        if callback:
            callback(self.ids)
        return True

    @tools.ormcache()
    def _document_deferred_fields(self):
        """The stored fields that follow an email's state: its batch lines'
        state and its documents' delivery state."""
        models_ = [self.env["document.email.batch.line"]]
        for name in self.env.registry:
            model = self.env[name]
            field = model._fields.get("document_email_state")
            if field and field.store and not model._abstract and model._auto:
                models_.append(model)
        return tuple(
            model._fields["state" if i == 0 else "document_email_state"]
            for i, model in enumerate(models_)
        )

    def _modified(self, fields, create):
        """Sending in a documents session: the stored states that follow the
        email are left to _document_email_states_changed (one statement for
        the session), instead of being searched and written at each write."""
        if not self.env.context.get("document_email_states_deferred"):
            return super()._modified(fields, create)
        deferred = set(self._document_deferred_fields())
        cache = self.env.cache

        def select(field):
            if field in deferred:
                return False
            return (field.compute and field.store) or cache.contains_field(field)

        tree = self.pool.get_trigger_tree(fields, select=select)
        if not tree:
            return ()
        return (
            self.sudo().with_context(active_test=False)._modified_triggers(tree, create)
        )

    def _document_email_states_changed(self):
        """These emails' states changed (a documents session sent them): their
        batch lines and their documents follow, in one statement for all, and
        the emails are no longer claimed; those another live worker claimed
        since (released by a 421) are its own. Called once per session; a session
        killed midway leaves its emails claimed by a dead connection, and the
        next queue run calls it for them (_document_claimed_elsewhere)."""
        if not self:
            return
        self.flush_recordset(["state", "document_uncertain", "document_bounced"])
        fields_ = self._document_deferred_fields()
        for field in fields_:
            # nothing pending would be written over the statement's values
            self.env[field.model_name].flush_model([field.name])
        updates = [
            SQL(
                f"""u_line AS (UPDATE document_email_batch_line line
                      SET state = {LINE_STATE_SQL} FROM mail
                    WHERE line.mail_id = mail.id AND line.stage = 'queued'
                      AND line.state IS DISTINCT FROM {LINE_STATE_SQL})"""
            )
        ]
        for index, field in enumerate(fields_[1:]):
            updates.append(
                SQL(
                    f"""u_{index} AS (UPDATE %s doc SET document_email_state =
                          {DOCUMENT_STATE_SQL} FROM mail
                        WHERE doc.document_email_mail_id = mail.id AND
                          doc.document_email_state IS DISTINCT FROM
                          {DOCUMENT_STATE_SQL})""",
                    SQL.identifier(self.env[field.model_name]._table),
                )
            )
        self.env.cr.execute(
            SQL(
                f"""WITH mail AS (SELECT id, state, document_uncertain,
                                         document_bounced
                                    FROM mail_mail mail WHERE id IN %s
                                     AND (document_claim_pid IS NULL
                                          OR document_claim_pid = pg_backend_pid()
                                          OR {CLAIM_FREE})), %s
                   UPDATE mail_mail SET document_claim_pid = NULL
                    WHERE id IN (SELECT id FROM mail) AND state != 'outgoing'
                      AND document_claim_pid IS NOT NULL""",
                tuple(self.ids),
                SQL(", ").join(updates),
            )
        )
        for field in fields_:
            self.env[field.model_name].invalidate_model([field.name])
        self.invalidate_recordset(["document_claim_pid"])

    def _document_slot_reserved(self, smtp_session, arguments):
        """The server's per-minute limit, counted for all workers together:
        a slot reserved right before the next email goes (the queue commits
        it at once in a transaction of its own)."""
        settings = self.env["ir.mail_server"]._document_session_settings(smtp_session)
        if not settings["limit"]:
            return True
        return self.env["document.mail.server.window"]._reserve(
            settings["server"], own_transaction=arguments["auto_commit"] is True
        )

    def _document_after_send(self, smtp_session, auto_delete):
        """What the session saw of this email: recipients refused while the
        message was accepted, or a temporary refusal to try again later."""
        if auto_delete and not self.exists():
            return
        self.document_uncertain = (
            self.state == "exception"
            and self.message_id in smtp_session.uncertain_by_message
        )
        if self.state == "sent":
            self.document_sent_at = fields.Datetime.now()
        refused = smtp_session.refused_by_message.get(self.message_id)
        accepted = smtp_session.accepted_by_message.get(self.message_id)
        if self.state == "sent" and refused:
            self._document_partial_refusal(refused)
        elif self.state == "exception" and accepted:
            # a retry would send it again to those who already got it
            self._document_partly_delivered(accepted)
        elif self.state == "exception" and smtp_session.temporary_by_message.get(
            self.message_id
        ):
            self._document_schedule_retry()
        if self.failure_reason:
            settings = self.env["ir.mail_server"]._document_session_settings(
                smtp_session
            )
            company = self.env["res.company"].browse(settings["company_id"])
            self._document_hide_server(company)

    def _document_hide_server(self, company):
        """The reasons stored on the email and its notifications are read by
        its users: the server's words in them lose the company's SMTP host and
        account (Settings' connection test shows them to administrators)."""
        for record in (self, *self.notification_ids.sudo()):
            hidden = company._document_smtp_hide_server(record.failure_reason)
            if hidden != record.failure_reason:
                record.failure_reason = hidden

    def _document_partial_refusal(self, refused):
        """Delivered to some recipients only: say so, and mark the refused
        partners' notifications as failed."""
        details = "; ".join(
            f"{address} ({code} {message.decode(errors='replace')})"
            for address, (code, message) in refused.items()
        )
        reason = self.env._("Delivered, except to: %(details)s", details=details)
        self.failure_reason = reason
        refused_emails = {email_normalize(address) for address in refused}
        self.notification_ids.filtered(
            lambda n: email_normalize(n.res_partner_id.email) in refused_emails
        ).sudo().write(
            {
                "notification_status": "exception",
                "failure_type": "mail_email_invalid",
                "failure_reason": reason,
            }
        )

    def _document_partly_delivered(self, accepted):
        """The server took the message for some recipients, then failed for
        the others: never sent again automatically (uncertain), and the
        recipients not reached are named failed with the reason."""
        reason = self.env._(
            "Delivered to %(delivered)s only; not to the other recipients: "
            "%(reason)s It is not sent again automatically: send it to them by hand.",
            delivered=", ".join(accepted),
            reason=self.failure_reason,
        )
        self.write({"failure_reason": reason, "document_uncertain": True})
        self.notification_ids.filtered(
            lambda n: n.notification_status == "exception"
        ).sudo().write({"failure_reason": reason})

    def _document_schedule_retry(self):
        """A temporary refusal (4xx): try again later, with a growing delay."""
        attempts = self.document_attempts + 1
        if attempts >= MAX_ATTEMPTS:
            self.document_attempts = attempts
            return
        retry_at = fields.Datetime.now() + timedelta(minutes=2**attempts)
        self.write(
            {
                "state": "outgoing",
                "document_attempts": attempts,
                "scheduled_date": retry_at,
                "failure_reason": self.env._(
                    "Temporarily refused (attempt %(attempt)s of %(max)s): %(reason)s "
                    "Next attempt at %(when)s UTC.",
                    attempt=attempts,
                    max=MAX_ATTEMPTS,
                    reason=self.failure_reason,
                    when=fields.Datetime.to_string(retry_at),
                ),
            }
        )
        self.notification_ids.sudo().write({"notification_status": "ready"})
        self.env.ref("mail.ir_cron_mail_scheduler_action")._trigger(at=retry_at)
        self._document_trigger_delivery(at=retry_at)
