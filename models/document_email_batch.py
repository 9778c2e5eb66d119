import logging
import threading
import time

import psycopg2.errors

from odoo import Command, api, fields, models, modules
from odoo.exceptions import UserError
from odoo.tools import SQL

_logger = logging.getLogger(__name__)

# documents rendered and queued per committed transaction: as core's Send
# cron (20 invoices a call), a chunk stays well under a prefork worker's
# limit_time_real (120 s) on a loaded server (50 took 85 to 90 s at load 5)
CHUNK_SIZE = 20
# seconds before a chunk job looks again at lines another worker holds
BUSY_RETRY_SECONDS = 5
QUEUE_JOB_CHANNEL = "root.document_email"
# chunk jobs enqueued at once (the channel's capacity decides how many run)
QUEUE_JOB_PARALLEL = 4
# seconds after which a scheduled job stops taking chunks in one run and
# wakes itself up instead: a prefork cron worker's unit of work (every ready
# job, and up to 10 calls of each) stays far from limit_time_real (120 s) and
# limit_time_cpu (60 s)
CRON_TIME_BUDGET = 15
# when this thread's current scheduled-job run started
_cron_run = threading.local()
CRON_XMLIDS = (
    "account_document_email.ir_cron_document_email_batch",
    "account_document_email.ir_cron_document_email_batch_2",
)


class _PartHeldElsewhere(Exception):
    """A customer's part is partly locked by another worker."""


class DocumentEmailBatch(models.Model):
    """What the send wizard chose for many documents, processed in the
    background in committed chunks (one email per document), with what
    became of each document."""

    _name = "document.email.batch"
    _description = "Send by Email: Batch"
    _order = "id desc"

    name = fields.Char(required=True, readonly=True)
    user_id = fields.Many2one(
        "res.users",
        string="Sent by",
        required=True,
        readonly=True,
        index=True,
        default=lambda self: self.env.user,
    )
    company_id = fields.Many2one(
        "res.company",
        required=True,
        readonly=True,
        default=lambda self: self.env.company,
    )
    res_model = fields.Char("Document Model", required=True, readonly=True)
    # the template and PDF chosen instead of each document's own (else empty)
    template_id = fields.Many2one("mail.template", readonly=True)
    report_id = fields.Many2one("ir.actions.report", string="PDF", readonly=True)
    report_chosen = fields.Boolean(
        readonly=True, help="The PDF (or none) was chosen for every document"
    )
    email_cc = fields.Char("Cc", readonly=True)
    email_bcc = fields.Char("Bcc", readonly=True)
    attachment_ids = fields.Many2many(
        "ir.attachment",
        "document_email_batch_ir_attachment_rel",
        "batch_id",
        "attachment_id",
        string="Attachments",
        readonly=True,
    )
    options = fields.Json(readonly=True, help="Context the documents render with")
    per_customer = fields.Boolean(
        "One email per customer",
        readonly=True,
        help="The documents of each customer went together in one email",
    )
    state = fields.Selection(
        [
            ("processing", "In progress"),
            ("done", "Done"),
            ("cancelled", "Cancelled"),
        ],
        default="processing",
        required=True,
        readonly=True,
        index=True,
    )
    line_ids = fields.One2many("document.email.batch.line", "batch_id", readonly=True)
    total_count = fields.Integer("Documents", compute="_compute_counts")
    rendered_count = fields.Integer("Rendered", compute="_compute_counts")
    queued_count = fields.Integer("Queued", compute="_compute_counts")
    sent_count = fields.Integer("Sent", compute="_compute_counts")
    failed_count = fields.Integer("Failed", compute="_compute_counts")
    bounced_count = fields.Integer("Bounced", compute="_compute_counts")
    skipped_count = fields.Integer("Skipped", compute="_compute_counts")
    cancelled_count = fields.Integer("Not sent", compute="_compute_counts")
    pending_count = fields.Integer("To render", compute="_compute_counts")
    progress = fields.Char(compute="_compute_counts")
    customer_count = fields.Integer("Customers", compute="_compute_customer_counts")
    email_count = fields.Integer("Emails", compute="_compute_customer_counts")

    @api.depends("line_ids.state")
    def _compute_counts(self):
        counts = {}
        if self.ids:
            groups = self.env["document.email.batch.line"]._read_group(
                [("batch_id", "in", self.ids)],
                ["batch_id", "state", "stage"],
                ["__count"],
            )
            for batch, state, stage, count in groups:
                by_state = counts.setdefault(batch.id, {})
                by_state[state] = by_state.get(state, 0) + count
                if stage == "queued":
                    by_state["rendered"] = by_state.get("rendered", 0) + count
        for batch in self:
            by_state = counts.get(batch.id, {})
            batch.total_count = sum(
                count for state, count in by_state.items() if state != "rendered"
            )
            batch.rendered_count = by_state.get("rendered", 0)
            batch.pending_count = by_state.get("pending", 0)
            batch.queued_count = by_state.get("queued", 0)
            batch.sent_count = by_state.get("sent", 0)
            batch.failed_count = by_state.get("failed", 0)
            batch.bounced_count = by_state.get("bounced", 0)
            batch.skipped_count = by_state.get("skipped", 0)
            batch.cancelled_count = by_state.get("cancelled", 0)
            batch.progress = self.env._(
                "%(rendered)s of %(total)s rendered, %(queued)s queued, %(sent)s "
                "sent, %(failed)s failed, %(skipped)s skipped, %(bounced)s bounced",
                rendered=batch.rendered_count,
                total=batch.total_count,
                queued=batch.queued_count,
                sent=batch.sent_count,
                failed=batch.failed_count,
                skipped=batch.skipped_count,
                bounced=batch.bounced_count,
            )

    @api.depends("line_ids.mail_id", "line_ids.group_key", "line_ids.stage")
    def _compute_customer_counts(self):
        """The customers (recipients) and the emails of each batch."""
        groups = self.env["document.email.batch.line"]._read_group(
            [("batch_id", "in", self.ids), ("stage", "=", "queued")],
            ["batch_id"],
            ["group_key:count_distinct", "mail_id:count_distinct"],
        )
        counts = {batch.id: (customers, mails) for batch, customers, mails in groups}
        for batch in self:
            batch.customer_count, batch.email_count = counts.get(batch.id, (0, 0))

    # ------------------------------------------------------------------
    # Recording (in the request: nothing is rendered)
    # ------------------------------------------------------------------

    @api.model
    def _create_batch(self, documents, settings, name=None, options=None):
        """The batch of these documents with the settings the user chose,
        one pending line per document (inserted in one statement).
        ``options``: context keys the server sets for the rendering (e.g. a
        statement run's date), beside those the document type accepts from
        the request."""
        attachments = settings["attachments"]
        self.env["document.email.send"]._check_groupable(documents, settings)
        batch = self.sudo().create(
            {
                "name": name or documents._get_document_email_batch_name(),
                "user_id": self.env.uid,
                "company_id": self.env.company.id,
                "res_model": documents._name,
                "template_id": settings["template"].id,
                "report_id": settings["report"] and settings["report"].id,
                "report_chosen": settings["report"] is not None,
                "per_customer": bool(settings.get("per_customer")),
                "email_cc": settings["email_cc"],
                "email_bcc": settings["email_bcc"],
                "attachment_ids": [Command.set(attachments.ids)],
                "options": dict(
                    documents._get_document_email_rendering_options(), **(options or {})
                ),
            }
        )
        # files uploaded in the dialog outlive it: they belong to the batch now
        attachments.filtered(
            lambda a: a.res_model == "document.email.wizard"
        ).sudo().write({"res_model": self._name, "res_id": batch.id})
        batch._insert_lines(documents, settings)
        batch._trigger_processing()
        return batch.with_env(self.env)

    def _insert_lines(self, documents, settings=None):
        """One pending line per document; sent one email per customer, each
        document's customer is noted and a customer's documents are cut in
        parts of at most a chunk, numbered from the start ("1 of 2")."""
        rows = [(doc.id, None, 1, 1) for doc in documents]
        if self.per_customer:
            rows = self._get_customer_parts(documents, settings)
        if not rows:
            return
        ids, keys, parts, counts = (list(column) for column in zip(*rows, strict=True))
        self.env.cr.execute(
            SQL(
                """INSERT INTO document_email_batch_line
                       (batch_id, res_id, group_key, group_part, group_parts,
                        sequence, stage, state,
                        create_uid, create_date, write_uid, write_date)
                   SELECT %(batch)s, doc.id, doc.key, doc.part, doc.parts,
                          doc.seq, 'pending', 'pending',
                          %(uid)s, now() at time zone 'UTC',
                          %(uid)s, now() at time zone 'UTC'
                     FROM unnest(%(ids)s::int[], %(keys)s::varchar[],
                                 %(parts)s::int[], %(counts)s::int[])
                          WITH ORDINALITY AS doc(id, key, part, parts, seq)""",
                batch=self.id,
                uid=self.env.uid,
                ids=ids,
                keys=keys,
                parts=parts,
                counts=counts,
            )
        )
        self.invalidate_recordset(["line_ids"])

    def _get_customer_parts(self, documents, settings):
        """[(document id, customer key, part, parts)], a customer's documents
        following each other in parts of at most a chunk (a chunk takes
        whole parts: never thousands of files in one transaction)."""
        engine = self.env["document.email.send"]
        size = max(self._get_chunk_size(), 1)
        by_key = documents.grouped(lambda doc: engine._get_customer_key(doc, settings))
        rows = []
        for key, group in by_key.items():
            count = -(-len(group) // size)
            for index in range(count):
                start, end = (
                    index * len(group) // count,
                    (index + 1) * len(group) // count,
                )
                rows += [(doc.id, key, index + 1, count) for doc in group[start:end]]
        return rows

    def _trigger_processing(self):
        """With OCA queue_job installed, one job per chunk on the channel
        root.document_email (every server of the database takes them);
        otherwise wake both scheduled jobs up."""
        if "queue.job" in self.env:
            self._enqueue_chunk_jobs()
        else:
            self._trigger_crons()

    @api.model
    def _trigger_crons(self):
        for xmlid in CRON_XMLIDS:
            cron = self.env.ref(xmlid, raise_if_not_found=False)
            if cron:
                cron.sudo()._trigger()

    def _enqueue_chunk_jobs(self):
        size = self._get_chunk_size()
        pending = self._count_pending()
        # a few jobs at a time (not one per chunk: the request stays fast);
        # each chunk job enqueues the next while documents remain
        for _index in range(min(-(-pending // size), QUEUE_JOB_PARALLEL)):
            self.browse().sudo().with_delay(
                channel=QUEUE_JOB_CHANNEL,
                description=self.env._("Send by email: render and queue a chunk"),
            )._job_process_chunk(size)

    @api.model
    def _job_process_chunk(self, size):
        """queue_job: one chunk in the job's own transaction; the end of the
        batch is checked by a job of its own, after this one commits."""
        done = self._process_chunk(chunk_size=size, finish=False)
        if self._count_pending():
            # nothing taken: the rest is held by another worker for now
            self.with_delay(
                eta=None if done else BUSY_RETRY_SECONDS,
                channel=QUEUE_JOB_CHANNEL,
                description=self.env._("Send by email: render and queue a chunk"),
            )._job_process_chunk(size)
        self.with_delay(
            channel=QUEUE_JOB_CHANNEL,
            identity_key="document_email_batch_finish",
            description=self.env._("Send by email: finish batches"),
        )._finish_batches(False)
        return done

    @api.model
    def _get_chunk_size(self):
        return int(
            self.env["ir.config_parameter"]
            .sudo()
            .get_param("account_document_email.batch_chunk_size", CHUNK_SIZE)
        )

    # ------------------------------------------------------------------
    # Processing (scheduled jobs)
    # ------------------------------------------------------------------

    @api.model
    def _cron_process_batches(self, chunk_size=None):
        """One chunk of one batch per call, committed; the scheduler calls
        again while ``_notify_progress`` reports documents remaining, and
        another worker takes other chunks in parallel (rows locked with SKIP
        LOCKED)."""
        auto_commit = not modules.module.current_test
        self._cron_run_elapsed()  # the first call of a run notes its start
        done = self._process_chunk(chunk_size=chunk_size, auto_commit=auto_commit)
        remaining = self._count_pending()
        # past the time budget, the run ends here (nothing left for this
        # run) and the trigger starts a new one in the worker's next loop
        over_budget = self._cron_run_elapsed() > CRON_TIME_BUDGET
        self.env["ir.cron"]._notify_progress(
            done=done, remaining=0 if over_budget else remaining
        )
        if remaining:
            self._trigger_crons()

    @api.model
    def _cron_run_elapsed(self):
        """Seconds since this scheduled-job run started in this thread (the
        runner calls the job up to 10 times in a run, with the same
        ``cron_id`` and ``lastcall`` in the context)."""
        run = (self.env.context.get("cron_id"), self.env.context.get("lastcall"))
        if getattr(_cron_run, "key", None) != run:
            _cron_run.key = run
            _cron_run.start = time.monotonic()
            return 0.0
        return time.monotonic() - _cron_run.start

    @api.model
    def _flush_states(self):
        """The ORM's pending writes, before reading states in SQL."""
        self.env["document.email.batch"].flush_model(["state"])
        self.env["document.email.batch.line"].flush_model(["stage", "batch_id"])

    @api.model
    def _count_pending(self):
        self._flush_states()
        self.env.cr.execute(
            """SELECT count(*) FROM document_email_batch_line l
                 JOIN document_email_batch b ON b.id = l.batch_id
                WHERE l.stage = 'pending' AND b.state = 'processing'"""
        )
        return self.env.cr.fetchone()[0]

    @api.model
    def _process_chunk(self, chunk_size=None, auto_commit=False, finish=True):
        """Render and queue one chunk: the emails and the lines' new state
        are written in the same transaction, so a process killed at any point
        leaves the chunk either entirely queued or entirely pending."""
        # a system job: each chunk renders as its batch's user (with_user)
        batches = self.sudo()
        lines = batches._lock_chunk(chunk_size or self._get_chunk_size())
        if lines:
            if not lines.batch_id._make_files_apart(lines):
                lines.batch_id._process_lines(lines)
            if auto_commit:
                # each chunk is its own transaction, as cron jobs commit theirs
                self.env.cr.commit()  # pylint: disable=invalid-commit
        if finish:
            # after the commit: a new transaction sees every worker's chunks
            batches._finish_batches(auto_commit)
        return len(lines)

    @api.model
    def _lock_chunk(self, size):
        """Pending lines of the oldest running batch, locked for this
        transaction; those another worker holds are skipped (one email per
        customer: whole parts only)."""
        self._flush_states()
        self.env.cr.execute(
            """SELECT b.id FROM document_email_batch b
                WHERE b.state = 'processing'
                  AND EXISTS (SELECT 1 FROM document_email_batch_line l
                               WHERE l.batch_id = b.id AND l.stage = 'pending')
                ORDER BY b.id"""
        )
        for batch in self.browse(row[0] for row in self.env.cr.fetchall()):
            lines = (
                batch._lock_parts(size)[0]
                if batch.per_customer
                else batch._lock_lines(size)
            )
            if lines:
                return lines
        return self.env["document.email.batch.line"]

    def _lock_lines(self, size):
        self.env.cr.execute(
            """SELECT id FROM document_email_batch_line
                WHERE batch_id = %s AND stage = 'pending'
                ORDER BY sequence, id
                LIMIT %s
                  FOR NO KEY UPDATE SKIP LOCKED""",
            [self.id, size],
        )
        return self.env["document.email.batch.line"].browse(
            row[0] for row in self.env.cr.fetchall()
        )

    def _lock_parts(self, size):
        """(lines, busy): whole customer parts of this batch up to ``size``
        documents, locked; a part some of whose lines another worker holds
        is left whole to a later chunk (``busy``: look again later)."""
        self.env.cr.execute(
            """SELECT array_agg(id ORDER BY sequence, id)
                 FROM document_email_batch_line
                WHERE batch_id = %s AND stage = 'pending'
                GROUP BY group_key, group_part
                ORDER BY min(sequence)
                LIMIT %s""",
            [self.id, 5 * size],
        )
        lines, busy = self.env["document.email.batch.line"], False
        for (ids,) in self.env.cr.fetchall():
            if lines and len(lines) + len(ids) > size:
                break
            part = self._lock_whole(ids)
            lines |= part
            busy = busy or not part
        return lines, busy

    def _lock_whole(self, ids):
        """These lines locked, or none of them (the locks taken are released
        when one is held elsewhere)."""
        try:
            with self.env.cr.savepoint(flush=False):
                self.env.cr.execute(
                    """SELECT id FROM document_email_batch_line
                        WHERE id = ANY(%s) AND stage = 'pending'
                          FOR NO KEY UPDATE SKIP LOCKED""",
                    [ids],
                )
                locked = [row[0] for row in self.env.cr.fetchall()]
                if len(locked) != len(ids):
                    raise _PartHeldElsewhere
        except _PartHeldElsewhere:
            return self.env["document.email.batch.line"]
        # all locked: in the part's order (sequence), which the lock's rows lack
        return self.env["document.email.batch.line"].browse(ids)

    def _user_env(self):
        """As the batch's user in the batch's company, with every company
        the user may work in allowed (as when they sent it): a batch mixing
        documents of several companies renders each with its own."""
        self.ensure_one()
        user = self.user_id
        companies = self.company_id | user.company_ids
        return self.with_user(user).with_context(allowed_company_ids=companies.ids)

    def _get_engine(self):
        """The sending engine as the batch's user in the batch's company,
        with the context the documents render with (e.g. the date of a
        statement); the filestore GC waits while the chunk writes its files
        (ir.attachment.create)."""
        self.ensure_one()
        # merged into one dict first: a stored key may not clash with ours
        options = dict(self.options or {}, document_email_hold_gc=True)
        env = self._user_env().with_context(**options)
        return env.env["document.email.send"]

    def _get_settings(self, engine):
        """What the user chose, as the engine's settings: the templates'
        own content is rendered for each document, never stored text."""
        self.ensure_one()
        return engine._get_default_settings(
            template=self.template_id.with_env(engine.env),
            report=self.report_id.with_env(engine.env) if self.report_chosen else None,
            email_cc=self.email_cc,
            email_bcc=self.email_bcc,
            attachments=self.attachment_ids.with_env(engine.env),
            per_customer=self.per_customer,
        )

    def _make_files_apart(self, lines):
        """Make, before the chunk renders, the files of one of these lines'
        documents whose making may commit (e.g. an invoice a localisation
        submits to its government), in a transaction of its own: the
        chunk's, which holds its lines' locks, never commits half-way. Its
        line stays pending, rendered by the next call, or fails with the
        error. Whether a document's files were made."""
        self.ensure_one()
        by_res_id = {line.res_id: line for line in lines}
        # the same checks as rendering (group, read access, refusals) first
        documents = self._get_readable_documents(by_res_id)
        if not documents:
            return False
        engine = self._get_engine()
        documents = documents.with_env(engine.env)
        by_report = engine._get_reports(documents, self._get_settings(engine))
        apart = [
            (document, report)
            for report, group in by_report.items()
            for document in group._get_document_email_files_apart(report)
        ]
        if not apart:
            return False
        document, report = apart[0]
        if error := self._make_files_in_own_transaction(document, report):
            by_res_id[document.id]._fail(error)
        return True

    def _make_files_in_own_transaction(self, document, report):
        """The document's files made through a cursor of their own (the
        localisation may commit it); the error, or None. A readable error
        (kept on the invoice, as core's Send keeps it) is committed there;
        anything else is rolled back."""
        try:
            with self.env.registry.cursor() as cr:
                env = document.env(cr=cr)
                move = env[document._name].browse(document.id)
                try:
                    move._make_document_email_files_apart(report.with_env(env))
                except UserError as error:
                    return str(error)
        except Exception as error:
            _logger.exception("document email batch %s: files failed", self.id)
            return str(error)
        finally:
            # what the other transaction wrote, read afresh
            self.env.invalidate_all()
        return None

    def _process_lines(self, lines):
        """Render and queue the documents of these lines (all of this batch)."""
        self.ensure_one()
        by_res_id = {line.res_id: line for line in lines}
        readable = self._get_readable_documents(by_res_id)
        if not readable:
            return
        try:
            with self.env.cr.savepoint():
                prepared, mails = self._queue_documents(readable, lines)
        except (
            psycopg2.errors.TransactionRollbackError,
            psycopg2.errors.LockNotAvailable,
        ):
            raise  # another worker got there first: the job runs again
        except Exception as error:
            if len(readable) > 1 and self._process_apart(readable, by_res_id):
                return
            if not isinstance(error, UserError | ValueError | psycopg2.Error):
                _logger.exception("document email batch %s: rendering failed", self.id)
            _logger.info("document email batch %s: chunk failed: %s", self.id, error)
            for document in readable:
                by_res_id[document.id]._fail(str(error))
            return
        self._record_outcomes(by_res_id, prepared, mails)
        self.env.ref("mail.ir_cron_mail_scheduler_action").sudo()._trigger()

    def _process_apart(self, documents, by_res_id):
        """After a chunk failed: each document again on its own, or each
        customer's documents together (one email per customer); False when
        they cannot be parted (a single customer's)."""
        lines = self.env["document.email.batch.line"].concat(
            *(by_res_id[document.id] for document in documents)
        )
        parts = (
            lines.grouped(
                lambda line: line.group_key and (line.group_key, line.group_part)
            )
            if self.per_customer
            else {}
        )
        if self.per_customer and len(parts) == 1 and next(iter(parts)):
            return False
        for key, group in parts.items():
            if key:  # no key: documents without a recipient, each alone
                self._process_lines(group)
                lines -= group
        for line in lines:
            self._process_lines(line)
        return True

    def _get_readable_documents(self, by_res_id):
        """The documents of these lines the batch's user may still send;
        the lines of the others are skipped with the reason."""
        documents = self._user_env().env[self.res_model].browse(list(by_res_id))
        existing = documents.exists()
        for res_id in set(by_res_id) - set(existing.ids):
            by_res_id[res_id]._skip(self.env._("The document no longer exists."))
        if not existing._has_document_email_group():
            lost = self.env._(
                "%(user)s may no longer send them.", user=self.user_id.name
            )
            return self._skip_all(existing, by_res_id, lost)
        readable = existing._filtered_access("read")
        lost = self.env._("%(user)s may no longer read it.", user=self.user_id.name)
        self._skip_all(existing - readable, by_res_id, lost)
        refused = readable.filtered(lambda d: d._get_document_email_refusal())
        for document in refused:
            by_res_id[document.id]._skip(document._get_document_email_refusal())
        return readable - refused

    def _skip_all(self, documents, by_res_id, reason):
        for document in documents:
            by_res_id[document.id]._skip(reason)
        return documents.browse()

    def _queue_documents(self, documents, lines=None):
        """{document: mail values, skip reason or error}, and the emails
        queued, through the engine as the batch's user."""
        engine = self._get_engine()
        settings = self._get_settings(engine)
        if self.per_customer and lines:
            settings["customer_parts"] = {
                line.res_id: (line.group_part or 1, line.group_parts or 1)
                for line in lines
            }
        prepared = engine._prepare_documents_values(
            documents.with_env(engine.env), settings
        )
        # one email per customer: the documents of one email share its values
        values_list = list(
            {
                id(values): values
                for values in prepared.values()
                if isinstance(values, dict)
            }.values()
        )
        mails = engine._create_mails(values_list)
        mail_of = {
            id(values): mail for values, mail in zip(values_list, mails, strict=True)
        }
        mail_of = {
            document: mail_of[id(values)]
            for document, values in prepared.items()
            if isinstance(values, dict)
        }
        if self.per_customer:
            engine._trace_customer_mails(mail_of)
        return prepared, mail_of

    def _record_outcomes(self, by_res_id, prepared, mail_of):
        """Each line's stage: queued with its email, skipped or failed."""
        for document, values in prepared.items():
            line = by_res_id[document.id]
            if isinstance(values, UserError):
                line._fail(str(values))
            elif isinstance(values, str):
                line._skip(values)
            else:
                mail = mail_of[document]
                line.write(
                    {
                        "stage": "queued",
                        "mail_id": mail.id,
                        "partner_id": mail.partner_ids[:1].id,
                        "email_to": values.get("email_to"),
                        "reason": False,
                    }
                )

    @api.model
    def _finish_batches(self, auto_commit):
        """Batches with nothing left to render: done, and their user told."""
        self._flush_states()
        self.env.cr.execute(
            """SELECT b.id FROM document_email_batch b
                WHERE b.state = 'processing' AND NOT EXISTS (
                      SELECT 1 FROM document_email_batch_line l
                       WHERE l.batch_id = b.id AND l.stage = 'pending')
                  FOR NO KEY UPDATE SKIP LOCKED"""
        )
        batches = self.browse(row[0] for row in self.env.cr.fetchall())
        for batch in batches:
            batch.state = "done"
            batch._notify_user()
        if batches and auto_commit:
            self.env.cr.commit()  # pylint: disable=invalid-commit

    def _notify_user(self):
        self.ensure_one()
        self.invalidate_recordset()
        problems = self.skipped_count + self.failed_count
        self.user_id._bus_send(
            "simple_notification",
            {
                "title": self.env._("Send by email"),
                "message": self._get_result_message(),
                "type": "warning" if problems else "success",
                "sticky": bool(problems),
            },
        )

    def _get_result_message(self):
        """What the user is told once the batch is done."""
        if self.per_customer:
            return self.env._(
                "%(name)s: %(queued)s documents queued in %(emails)s emails to "
                "%(customers)s customers, %(skipped)s skipped, %(failed)s failed, "
                "%(cancelled)s not sent.",
                name=self.name,
                queued=self.rendered_count,
                emails=self.email_count,
                customers=self.customer_count,
                skipped=self.skipped_count,
                failed=self.failed_count,
                cancelled=self.cancelled_count,
            )
        return self.env._(
            "%(name)s: %(queued)s emails queued, %(skipped)s skipped, "
            "%(failed)s failed, %(cancelled)s not sent.",
            name=self.name,
            queued=self.rendered_count,
            skipped=self.skipped_count,
            failed=self.failed_count,
            cancelled=self.cancelled_count,
        )

    # ------------------------------------------------------------------
    # User actions
    # ------------------------------------------------------------------

    def action_cancel(self):
        """Stop the batch: documents not yet queued stay unsent; a chunk
        being rendered right now still gets queued (its rows are locked)."""
        self.check_access("read")
        batches = self.sudo().filtered(lambda b: b.state == "processing")
        self._flush_states()
        self.env.cr.execute(
            """SELECT id FROM document_email_batch_line
                WHERE batch_id IN %s AND stage = 'pending'
                  FOR NO KEY UPDATE SKIP LOCKED""",
            [tuple(batches.ids or [0])],
        )
        pending = (
            self.env["document.email.batch.line"]
            .sudo()
            .browse(row[0] for row in self.env.cr.fetchall())
        )
        pending.write(
            {"stage": "cancelled", "reason": self.env._("Cancelled before sending.")}
        )
        batches.write({"state": "cancelled"})
        return True

    def action_retry_failed(self):
        """Queue again the failed emails of this batch only, and render again
        the documents whose rendering failed."""
        self.check_access("read")
        failed = self.sudo().line_ids.filtered(lambda line: line.state == "failed")
        mails = failed.mail_id.filtered(lambda m: m.state in ("exception", "cancel"))
        mails.action_retry()
        if mails:
            self.env.ref("mail.ir_cron_mail_scheduler_action").sudo()._trigger()
        unrendered = failed.filtered(lambda line: not line.mail_id)
        unrendered.write({"stage": "pending", "reason": False})
        if unrendered:
            unrendered.batch_id.write({"state": "processing"})
            self._trigger_processing()
        return True


class DocumentEmailBatchLine(models.Model):
    """One document of a batch: what became of it, and its email."""

    _name = "document.email.batch.line"
    _description = "Send by Email: Batch Document"
    _order = "batch_id, sequence, id"

    batch_id = fields.Many2one(
        "document.email.batch", required=True, ondelete="cascade", index=True
    )
    # the customer (company and recipients) of a document sent together
    # with the customer's others, one email per customer
    group_key = fields.Char(readonly=True)
    # one email per customer: the customer's part this line is in ("1 of 2")
    group_part = fields.Integer("Part", readonly=True, default=1)
    group_parts = fields.Integer("Parts", readonly=True, default=1)
    user_id = fields.Many2one(related="batch_id.user_id")
    sequence = fields.Integer(default=10)
    res_model = fields.Char(related="batch_id.res_model")
    res_id = fields.Integer("Document ID", required=True)
    document_name = fields.Char("Document", compute="_compute_document_name")
    partner_id = fields.Many2one("res.partner", string="Recipient", readonly=True)
    email_to = fields.Char("To", readonly=True)
    mail_id = fields.Many2one(
        "mail.mail",
        string="Email",
        readonly=True,
        index="btree_not_null",
        ondelete="set null",
    )
    # where the batch processing left it; ``state`` adds what the queue did
    stage = fields.Selection(
        [
            ("pending", "To render"),
            ("queued", "Queued"),
            ("skipped", "Skipped"),
            ("error", "Not rendered"),
            ("cancelled", "Not sent"),
        ],
        default="pending",
        required=True,
        readonly=True,
        index=True,
    )
    state = fields.Selection(
        [
            ("pending", "To render"),
            ("queued", "Queued"),
            ("sent", "Sent"),
            ("failed", "Failed"),
            ("bounced", "Bounced"),
            ("skipped", "Skipped"),
            ("cancelled", "Not sent"),
        ],
        compute="_compute_state",
        store=True,
        readonly=True,
    )
    reason = fields.Char(readonly=True)
    failure_reason = fields.Text(compute="_compute_failure_reason")

    @api.depends("stage", "mail_id", "mail_id.state", "mail_id.document_bounced")
    def _compute_state(self):
        by_mail_state = {
            "sent": "sent",
            "received": "sent",
            "exception": "failed",
            "cancel": "failed",
        }
        for line in self:
            if line.stage == "error":
                line.state = "failed"
            elif line.stage == "queued" and not line.mail_id and line.group_key:
                line.state = "failed"  # one email per customer: its email is gone
            elif line.stage == "queued" and line.sudo().mail_id.document_bounced:
                line.state = "bounced"
            elif line.stage == "queued":
                line.state = by_mail_state.get(line.sudo().mail_id.state, "queued")
            else:
                line.state = line.stage

    @api.depends("res_id", "res_model")
    def _compute_document_name(self):
        for model, lines in self.grouped("res_model").items():
            documents = self.env[model].browse(lines.mapped("res_id"))
            names = {
                doc.id: doc.display_name for doc in documents._filtered_access("read")
            }
            for line in lines:
                line.document_name = names.get(line.res_id, f"{model},{line.res_id}")

    @api.depends("mail_id.failure_reason", "reason")
    def _compute_failure_reason(self):
        # the email of the user's own batch line (record rules on the line);
        # never the server's host or account, even in reasons stored before
        # they were left out where reasons are written
        for line in self:
            mail = line.sudo().mail_id
            company = mail.mail_server_id.document_company_id
            line.failure_reason = line.reason or company._document_smtp_hide_server(
                mail.failure_reason
            )

    def _skip(self, reason):
        self.write({"stage": "skipped", "reason": reason})

    def _fail(self, reason):
        self.write({"stage": "error", "reason": reason})

    def action_open_document(self):
        self.ensure_one()
        return {
            "type": "ir.actions.act_window",
            "res_model": self.res_model,
            "res_id": self.res_id,
            "view_mode": "form",
            "views": [(False, "form")],
            "target": "current",
        }
