"""Several workers deliver the company's document emails at once (issue 22):
each SMTP session first claims its emails together, in one statement that
skips the rows another worker holds (SKIP LOCKED) or has claimed. A claim
names the worker's database connection: it lapses as soon as that
connection is gone (a worker killed), or after CLAIM_MINUTES at most."""

import contextvars
import logging

import psycopg2.errors

from odoo import api, fields, models
from odoo.tools import SQL

# with OCA queue_job: the batches' channel, and as many delivery jobs
from .document_email_batch import QUEUE_JOB_CHANNEL, QUEUE_JOB_PARALLEL

_logger = logging.getLogger(__name__)

CLAIM_MINUTES = 30
# set by the add-on's own code only, never from a caller's context: the
# queue's send() claims its slices; a delivery job ({"claimed": n}) takes one
QUEUE_CLAIMING = contextvars.ContextVar("document_queue_claiming", default=False)
ONE_SLICE = contextvars.ContextVar("document_one_slice", default=None)
# the emails created now are sent at once by this request ("Send now"): no
# delivery worker (cron trigger, queue_job job) is woken for them
SENDING_NOW = contextvars.ContextVar("document_sending_now", default=False)
# the delivery workers beside core's mail queue (one cron each)
DELIVERY_CRONS = ("account_document_email.ir_cron_document_email_deliver",)

# an email free to claim: no claim, or its worker's connection is gone, or
# the claim is too old (a connection id used again)
CLAIM_FREE = """(mail.document_claim_pid IS NULL
     OR mail.document_claim_pid NOT IN (SELECT pid FROM pg_stat_activity)
     OR mail.document_claimed_until < statement_timestamp() AT TIME ZONE 'UTC')"""


class MailMail(models.Model):
    _inherit = "mail.mail"

    # set from the claim until the session settles its emails' states
    document_claim_pid = fields.Integer(
        "Claimed by connection", readonly=True, copy=False, index="btree_not_null"
    )
    document_claimed_until = fields.Datetime("Claimed until", readonly=True, copy=False)

    def _document_claim(self):
        """The emails of this session no other worker holds, claimed for this
        one (committed with the first email's in-flight mark; until then the
        rows stay locked); the others are left to their worker."""
        if not self:
            return self
        query = SQL(
            f"""UPDATE mail_mail SET document_claim_pid = pg_backend_pid(),
                       document_claimed_until = statement_timestamp()
                           AT TIME ZONE 'UTC' + make_interval(mins => %s)
                 WHERE id IN (SELECT mail.id FROM mail_mail mail
                               WHERE mail.id IN %s AND mail.state = 'outgoing'
                                 AND (mail.document_claim_pid = pg_backend_pid()
                                      OR {CLAIM_FREE})
                                 FOR NO KEY UPDATE SKIP LOCKED)
             RETURNING id""",
            CLAIM_MINUTES,
            tuple(self.ids),
        )
        try:
            with self.env.cr.savepoint():
                self.env.cr.execute(query)
                claimed = {row[0] for row in self.env.cr.fetchall()}
        except psycopg2.errors.SerializationFailure:
            # another worker changed them since this transaction began: what
            # is done so far is kept, and the rows are read afresh
            self.env.cr.commit()  # pylint: disable=invalid-commit
            self.env.cr.execute(query)
            claimed = {row[0] for row in self.env.cr.fetchall()}
        self.invalidate_recordset(["document_claim_pid", "document_claimed_until"])
        return self.browse([mail_id for mail_id in self.ids if mail_id in claimed])

    @api.model
    def process_email_queue(self, ids=None, batch_size=1000):
        """The emails another worker has claimed are left to it: this run
        takes the next ones, so that the workers share the queue."""
        queue = self
        claimed, unsettled = self._document_claimed_elsewhere()
        if unsettled:
            self.browse(unsettled)._document_email_states_changed()
        if claimed:
            filters = [*self.env.context.get("filters", []), ("id", "not in", claimed)]
            queue = self.with_context(filters=filters)
        return super(MailMail, queue).process_email_queue(
            ids=ids, batch_size=batch_size
        )

    @api.model
    def _document_claimed_elsewhere(self):
        """The emails still to send that another live worker has claimed; and
        those a worker sent but did not settle (killed, or this connection's
        session stopped by an error, before the end of its session): their
        batch lines and documents follow them now."""
        self.env.cr.execute(
            SQL(
                f"""SELECT mail.id, mail.state = 'outgoing' FROM mail_mail mail
                     WHERE mail.document_claim_pid IS NOT NULL
                       AND CASE WHEN mail.state = 'outgoing'
                                THEN mail.document_claim_pid != pg_backend_pid()
                                     AND NOT {CLAIM_FREE}
                                ELSE mail.document_claim_pid = pg_backend_pid()
                                     OR {CLAIM_FREE} END"""
            )
        )
        rows = self.env.cr.fetchall()
        return (
            [mail_id for mail_id, outgoing in rows if outgoing],
            [mail_id for mail_id, outgoing in rows if not outgoing],
        )

    def send(self, auto_commit=False, raise_exception=False, post_send_callback=None):
        mails = self
        if auto_commit is not True and self.ids:
            # sent now, in this transaction: its document emails are locked
            # before any goes, so that no worker takes one of them midway
            # (which would roll back what this transaction already sent)
            mails = self.with_context(document_locked_ids=self._document_lock())
        # the queue (auto_commit): each session claims its slice before it
        # connects; set here, never from a caller's context
        token = QUEUE_CLAIMING.set(auto_commit is True)
        try:
            return super(MailMail, mails).send(
                auto_commit=auto_commit,
                raise_exception=raise_exception,
                post_send_callback=post_send_callback,
            )
        finally:
            QUEUE_CLAIMING.reset(token)

    def _document_lock(self):
        """The ids of these emails on a documents server that no worker has
        claimed, locked until this transaction ends (workers skip them)."""
        self.env["mail.message"].flush_model(["mail_server_id"])
        self.env["ir.mail_server"].flush_model(["document_company_id"])
        self.flush_recordset(["document_claim_pid", "document_claimed_until"])
        self.env.cr.execute(
            SQL(
                f"""SELECT mail.id FROM mail_mail mail
                      JOIN mail_message message ON message.id = mail.mail_message_id
                      JOIN ir_mail_server server ON server.id = message.mail_server_id
                     WHERE mail.id IN %s AND server.document_company_id IS NOT NULL
                       AND (mail.document_claim_pid = pg_backend_pid() OR {CLAIM_FREE})
                       FOR NO KEY UPDATE OF mail SKIP LOCKED""",
                tuple(self.ids),
            )
        )
        return tuple(row[0] for row in self.env.cr.fetchall())

    def _document_unclaimed(self):
        """Sending now, outside the queue: the emails locked by send(), or
        else those no worker has claimed (those are on their way)."""
        if not self:
            return self
        locked = self.env.context.get("document_locked_ids")
        if locked is not None:
            return self.filtered(lambda mail: mail.id in locked)
        self.flush_recordset(["document_claim_pid", "document_claimed_until"])
        self.env.cr.execute(
            SQL(
                f"""SELECT mail.id FROM mail_mail mail
                     WHERE mail.id IN %s AND (mail.document_claim_pid
                           = pg_backend_pid() OR {CLAIM_FREE})""",
                tuple(self.ids),
            )
        )
        free = {row[0] for row in self.env.cr.fetchall()}
        return self.browse([mail_id for mail_id in self.ids if mail_id in free])

    def _document_release(self, commit=False):
        """The claimed emails still to send (a retry later, a limit reached,
        a session closed by the server) are free again for any worker; the
        queue (``commit``) commits that at once."""
        if not self:
            return
        self.flush_recordset(["state"])
        self.env.cr.execute(
            SQL(
                """UPDATE mail_mail SET document_claim_pid = NULL
                    WHERE id IN %s AND state = 'outgoing'
                      AND document_claim_pid = pg_backend_pid()""",
                tuple(self.ids),
            )
        )
        if commit is True:
            self.env["ir.mail_server"]._document_commit_keeping_cache()

    def _document_release_after_error(self):
        """A queue session stopped by an error: its claims are not left to
        lapse. Committed on a cursor of its own when this one is aborted
        (the rows this transaction changed are skipped: its rollback
        returns them to this connection's claims, free to its next run)."""
        pid = self.env.cr._cnx.get_backend_pid()
        try:
            with self.env.cr.savepoint():
                self._document_release()
            return
        except psycopg2.Error as error:
            _logger.info("Releasing on a cursor of its own: %s", error)
        with self.env.registry.cursor() as cr:
            cr.execute(
                """UPDATE mail_mail SET document_claim_pid = NULL
                    WHERE id IN (SELECT id FROM mail_mail WHERE id IN %s
                                   AND state = 'outgoing'
                                   AND document_claim_pid = %s
                                   FOR NO KEY UPDATE SKIP LOCKED)""",
                [tuple(self.ids), pid],
            )

    @api.model_create_multi
    def create(self, vals_list):
        mails = super().create(vals_list)
        if mails._document_wake_workers():
            self._document_trigger_delivery()
        return mails

    def _document_wake_workers(self):
        """Whether these new emails wait for the delivery workers: on a
        documents server, and not sent at once by this request (Send now;
        a temporary refusal then wakes them at its retry)."""
        if SENDING_NOW.get():
            return False
        return any(self.sudo().mail_server_id.mapped("document_company_id"))

    @api.model
    def _document_trigger_delivery(self, at=None):
        """The delivery workers run beside core's queue when documents wait:
        the scheduled job, and with OCA queue_job jobs any server takes."""
        for xmlid in DELIVERY_CRONS:
            cron = self.env.ref(xmlid, raise_if_not_found=False)
            if cron:
                cron.sudo()._trigger(at=at)
        if "queue.job" in self.env:
            self._document_enqueue_delivery(at=at)

    @api.model
    def _document_enqueue_delivery(self, at=None):
        """A few delivery jobs on the documents' channel (not one per email):
        each claims one slice and sends it over its own SMTP session. One
        job per slot waits at a time (its identity key); a later one (a
        retry, the per-minute limit) has a key per minute of its own, so that
        it never stands in for the jobs wanted now."""
        if at:
            slots = [(0, f"document_email_deliver_at_{at:%Y%m%d%H%M}")]
        else:
            slots = [
                (slot, f"document_email_deliver_{slot}")
                for slot in range(QUEUE_JOB_PARALLEL)
            ]
        for slot, key in slots:
            self.browse().sudo().with_delay(
                channel=QUEUE_JOB_CHANNEL,
                eta=at,
                identity_key=key,
                description=self.env._("Send by email: deliver a slice of emails"),
            )._job_document_deliver(slot)

    @api.model
    def _job_document_deliver(self, slot):
        """queue_job: one slice of the documents' emails, claimed and sent
        over its own session. While free emails wait, a job that sent some
        enqueues the next ones; one that found all claimed by live workers
        comes back when the first of those claims lapses."""
        one_slice = {"claimed": 0}
        token = ONE_SLICE.set(one_slice)
        try:
            self._cron_document_deliver()
        finally:
            ONE_SLICE.reset(token)
        free, first_lapse = self._document_free_to_deliver()
        if one_slice["claimed"] and free:
            self._document_enqueue_delivery()
        elif not one_slice["claimed"] and first_lapse:
            self._document_enqueue_delivery(at=first_lapse)
        return slot

    @api.model
    def _document_free_to_deliver(self):
        """(emails due on a documents server no live worker has claimed,
        when the first claim of the others lapses)."""
        self.env.cr.execute(
            SQL(
                f"""SELECT count(*) FILTER (WHERE {CLAIM_FREE}),
                           min(mail.document_claimed_until)
                               FILTER (WHERE NOT {CLAIM_FREE})
                      FROM mail_mail mail
                      JOIN mail_message message ON message.id = mail.mail_message_id
                      JOIN ir_mail_server server ON server.id = message.mail_server_id
                     WHERE mail.state = 'outgoing'
                       AND server.document_company_id IS NOT NULL
                       AND (mail.scheduled_date IS NULL OR mail.scheduled_date
                            <= statement_timestamp() AT TIME ZONE 'UTC')"""
            )
        )
        return self.env.cr.fetchone()

    @api.model
    def _cron_document_deliver(self):
        """A delivery worker more for the company's document emails only,
        beside core's mail queue (which sends them too): each claims its own
        emails and opens its own SMTP session."""
        filters = [("mail_server_id.document_company_id", "!=", False)]
        return self.with_context(filters=filters).process_email_queue()
