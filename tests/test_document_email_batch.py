"""Batches sent in the background (document.email.batch): the request only
records them; scheduled jobs render and queue them in committed chunks (the
real-process cases are in test_queue_processes.py)."""

import json
from datetime import timedelta
from unittest.mock import patch

from odoo import Command, fields
from odoo.exceptions import AccessError
from odoo.tests import new_test_user, tagged

from odoo.addons.account_document_email.models import document_email_batch

from .common import real_smtp_delivery
from .document_common import DocumentEmailCase


@tagged("post_install", "-at_install")
class TestDocumentEmailBatch(DocumentEmailCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.invoices = cls.invoice = cls.init_invoice(
            "out_invoice", partner=cls.partner_a, amounts=[100.0], post=True
        )
        for partner, amount in (
            (cls.partner_b, 200.0),
            (cls.partner_a, 300.0),
            (cls.partner_b, 400.0),
        ):
            cls.invoices |= cls.init_invoice(
                "out_invoice", partner=partner, amounts=[amount], post=True
            )

    def send(self, documents, **values):
        action = self.open_wizard(documents, **values).action_send()
        self.assertEqual(action["res_model"], "document.email.batch")
        return self.env["document.email.batch"].browse(action["res_id"])

    def mails_of(self, documents):
        return self.env["mail.mail"].search(
            [("model", "=", documents._name), ("res_id", "in", documents.ids)]
        )

    def set_chunk_size(self, size):
        self.env["ir.config_parameter"].set_param(
            "account_document_email.batch_chunk_size", size
        )

    def test_request_only_records_the_batch(self):
        crons = self.env.ref(
            "account_document_email.ir_cron_document_email_batch"
        ) | self.env.ref("account_document_email.ir_cron_document_email_batch_2")
        self.env["ir.cron.trigger"].search([("cron_id", "in", crons.ids)]).unlink()
        batch = self.send(self.invoices, email_cc="boss@customer.example.com")
        self.assertFalse(self.mails_of(self.invoices), "nothing rendered")
        self.assertFalse(
            self.env["ir.attachment"].search(
                [
                    ("res_model", "=", "account.move"),
                    ("res_id", "in", self.invoices.ids),
                ]
            )
        )
        self.assertEqual(batch.user_id, self.env.user)
        self.assertEqual(batch.company_id, self.env.company)
        self.assertEqual(batch.email_cc, "boss@customer.example.com")
        self.assertEqual(batch.line_ids.mapped("res_id"), self.invoices.ids)
        self.assertEqual(set(batch.line_ids.mapped("state")), {"pending"})
        self.assertIn("0 of 4 rendered", batch.progress)
        if "queue.job" not in self.env:  # else jobs: TestBatchQueueJob
            triggers = self.env["ir.cron.trigger"].search(
                [("cron_id", "in", crons.ids)]
            )
            self.assertEqual(triggers.cron_id, crons, "both workers woken up")
        # processed as its user: the edited Cc reaches every email
        self.process_batches()
        mails = self.mails_of(self.invoices)
        self.assertEqual(len(mails), 4)
        self.assertEqual(set(mails.mapped("email_cc")), {"boss@customer.example.com"})
        self.assertEqual(batch.line_ids.mail_id, mails)

    def test_request_queries_do_not_grow_with_the_documents(self):
        """Opening the dialog on a selection and sending it as a batch costs
        the same queries for 20 or 200 documents: nothing is read, rendered
        or checked per document in the request (speed itself is measured by
        bench/batch_email.py)."""
        partners = self.env["res.partner"].create(
            [
                {"name": f"Scale {n}", "email": f"scale{n}@example.com"}
                for n in range(240)
            ]
        )
        statements = partners.with_context(aged_document="statement")

        def queries(documents):
            self.env.flush_all()
            self.env.invalidate_all()
            before = self.env.cr.sql_log_count
            action = self.open_wizard(documents).action_send()
            self.env.flush_all()
            self.assertEqual(action["res_model"], "document.email.batch")
            return self.env.cr.sql_log_count - before

        queries(statements[:20])  # caches warmed up (templates, parameters)
        small, big = queries(statements[20:40]), queries(statements[40:])
        self.assertEqual(small, big)
        batch = self.env["document.email.batch"].search([], limit=1)
        self.assertEqual(batch.total_count, 200)
        self.assertFalse(self.mails_of(partners), "nothing rendered")

    def test_user_in_two_companies_batch_through_the_scheduled_job(self):
        """A user allowed in A and B, working in A, sends A and B invoices in
        one batch: the scheduled job (no company in its context) renders
        each with its own company and server, none is skipped."""
        company_a = self.env.company
        company_b = self.setup_other_company(name="Beta Batch Ltd")["company"]
        company_b.write(
            {
                "document_smtp_use_default": False,
                "document_smtp_host": "127.0.0.1",
                "document_smtp_port": 2599,
                "document_smtp_encryption": "none",
                "document_smtp_authentication": False,
            }
        )
        server_b = company_b.sudo().document_mail_server_id
        self.assertTrue(server_b)
        customer_b = self.env["res.partner"].create(
            {"name": "Beta Customer", "email": "beta@customer.example.com"}
        )
        invoice_b = self.init_invoice(
            "out_invoice", partner=customer_b, amounts=[70.0], post=True,
            company=company_b,
        )  # fmt: skip
        user = new_test_user(
            self.env,
            login="two.companies.batch",
            groups="base.group_user,account.group_account_invoice",
            company_id=company_a.id,
            company_ids=[Command.set((company_a | company_b).ids)],
        )
        env = self.env(
            user=user,
            context=dict(
                self.env.context, allowed_company_ids=(company_a | company_b).ids
            ),
        )
        documents = (self.invoice | invoice_b).with_env(env)
        action = self.open_wizard(documents).action_send()
        batch = self.env["document.email.batch"].browse(action["res_id"])
        self.assertEqual(batch.company_id, company_a)
        cron_env = self.env(context={})  # as the scheduler runs it
        Batches = cron_env["document.email.batch"]
        for _round in range(3):
            Batches._cron_process_batches()
        batch.invalidate_recordset()
        self.assertEqual(batch.queued_count, 2, batch.line_ids.mapped("failure_reason"))
        mail_b = self.mails_of(invoice_b)
        self.assertEqual(mail_b.mail_server_id, server_b)
        self.assertIn("Beta Batch Ltd", mail_b.subject)

    def test_document_sent_while_its_batch_is_pending_asks_again(self):
        self.send(self.invoices[:2])
        wizard = self.open_wizard(self.invoices[:3])
        action = wizard.action_send()
        self.assertEqual(action["res_model"], "document.email.wizard")
        for invoice in self.invoices[:2]:
            self.assertIn(invoice.name, wizard.duplicate_warning)
        self.assertNotIn(self.invoices[2].name, wizard.duplicate_warning)

    def test_document_that_crashes_fails_alone_and_the_batch_goes_on(self):
        """An unexpected error rendering one document (not a UserError) fails
        that document with its reason; the others are queued and the job
        does not stop."""
        broken = self.invoices[1]
        broken.partner_id.email = "broken@customer.example.com"
        Engine = type(self.env["document.email.send"])
        original = Engine._prepare_documents_values

        def crash_on_broken(engine, documents, settings):
            if broken in documents:
                raise KeyError("template variable")
            return original(engine, documents, settings)

        self.patch(Engine, "_prepare_documents_values", crash_on_broken)
        batch = self.send(self.invoices)
        self.process_batches()
        batch.invalidate_recordset()
        [failed] = batch.line_ids.filtered(lambda line: line.state == "failed")
        self.assertEqual(failed.res_id, broken.id)
        self.assertIn("template variable", failed.failure_reason)
        self.assertEqual(batch.queued_count, 3)
        self.assertEqual(batch.state, "done")

    def test_chunks_committed_progress_and_notification(self):
        self.set_chunk_size(2)
        batch = self.send(self.invoices)
        batches = self.env["document.email.batch"]
        self.assertEqual(batches._process_chunk(), 2)
        batch.invalidate_recordset()
        self.assertEqual((batch.rendered_count, batch.pending_count), (2, 2))
        self.assertEqual(batch.state, "processing")
        self.assertEqual(batches._process_chunk(), 2)
        self.assertEqual(batches._process_chunk(), 0)
        batch.invalidate_recordset()
        self.assertEqual(batch.state, "done")
        self.env.cr.precommit.run()  # the bus notification is written on commit
        notes = (
            self.env["bus.bus"]
            .sudo()
            .search(
                [
                    ("message", "like", "simple_notification"),
                    ("message", "like", batch.name),
                ]
            )
        )
        self.assertEqual(len(notes), 1)
        payload = json.loads(notes.message)["payload"]
        self.assertIn("4 emails queued, 0 skipped", payload["message"])
        self.assertEqual(
            json.loads(notes.channel),
            [self.env.cr.dbname, "res.partner", self.env.user.partner_id.id],
            "to the user who sent it",
        )

    def test_cancel_keeps_what_is_not_queued_unsent(self):
        self.set_chunk_size(1)
        batch = self.send(self.invoices)
        self.env["document.email.batch"]._process_chunk()
        batch.action_cancel()
        self.process_batches()
        batch.invalidate_recordset()
        self.assertEqual(batch.state, "cancelled")
        self.assertEqual((batch.queued_count, batch.cancelled_count), (1, 3))
        self.assertEqual(len(self.mails_of(self.invoices)), 1)
        cancelled = batch.line_ids.filtered(lambda line: line.state == "cancelled")
        self.assertEqual(cancelled.mapped("res_id"), self.invoices[1:].ids)
        self.assertEqual(
            set(cancelled.mapped("failure_reason")), {"Cancelled before sending."}
        )
        with real_smtp_delivery():
            self.env["mail.mail"].process_email_queue()
        self.assertEqual(len(self.received()), 1)

    def test_rows_open_their_documents(self):
        batch = self.send(self.invoices)
        action = batch.line_ids[1].action_open_document()
        self.assertEqual(
            (action["res_model"], action["res_id"]),
            ("account.move", self.invoices[1].id),
        )
        self.assertEqual(batch.line_ids[1].document_name, self.invoices[1].display_name)

    def test_batches_belong_to_their_user(self):
        mine = self.send(self.invoices)
        self.process_batches()
        other = new_test_user(
            self.env,
            login="other.clerk",
            groups="account.group_account_invoice",
            company_id=self.env.company.id,
        )
        Batch = self.env["document.email.batch"].with_user(other)
        self.assertFalse(Batch.search([]), "another user's batches are hidden")
        self.assertFalse(
            self.env["document.email.batch.line"].with_user(other).search([])
        )
        with self.assertRaises(AccessError):
            mine.with_user(other).read(["name"])
        with self.assertRaises(AccessError):
            mine.with_user(other).action_retry_failed()
        with self.assertRaises(AccessError):
            mine.with_user(other).action_cancel()
        # nobody creates a batch (or a line) on emails of their choice
        someone_elses = self.mails_of(self.invoices)[:1]
        with self.assertRaises(AccessError):
            Batch.create({"name": "x", "res_model": "account.move"})
        with self.assertRaises(AccessError):
            self.env["document.email.batch.line"].with_user(other).create(
                {"batch_id": mine.id, "res_id": 1, "mail_id": someone_elses.id}
            )
        engine = self.env["document.email.send"].with_user(other)
        theirs = engine._queue_batch(
            self.invoices.with_user(other), engine._get_default_settings()
        )
        self.assertEqual(Batch.search([]), theirs)
        manager = new_test_user(
            self.env,
            login="accounting.manager",
            groups="account.group_account_manager",
            company_id=self.env.company.id,
        )
        seen = self.env["document.email.batch"].with_user(manager).search([])
        self.assertEqual(seen & (mine | theirs), mine | theirs, "managers see all")

    def test_retry_failed_only_this_batch(self):
        batch = self.send(self.invoices[:2])
        other_batch = self.send(self.invoices[2:])
        self.process_batches()
        all_mails = self.mails_of(self.invoices)
        all_mails.write({"state": "exception", "failure_reason": "550 no"})
        batch.invalidate_recordset()
        self.assertEqual(batch.failed_count, 2)
        self.assertEqual(set(batch.line_ids.mapped("failure_reason")), {"550 no"})
        batch.action_retry_failed()
        self.assertEqual(set(batch.line_ids.mail_id.mapped("state")), {"outgoing"})
        batch.invalidate_recordset()
        self.assertEqual((batch.failed_count, batch.queued_count), (0, 2))
        self.assertEqual(
            set(other_batch.line_ids.mail_id.mapped("state")),
            {"exception"},
            "the other batch's emails are untouched",
        )

    def test_duplicate_check_is_one_query(self):
        self.send(self.invoices)
        self.process_batches()
        engine = self.env["document.email.send"]
        settings = engine._get_default_settings()
        counts = []
        for documents in (self.invoices[:2], self.invoices):
            documents.partner_id.mapped("email")  # read before counting
            before = self.env.cr.sql_log_count
            self.assertEqual(engine._recently_sent(documents, settings), documents)
            counts.append(self.env.cr.sql_log_count - before)
        self.assertEqual(counts[0], counts[1], "independent of the batch size")
        self.assertLessEqual(counts[1], 3)

    def test_cron_run_ends_at_its_time_budget(self):
        """A scheduled-job run takes chunks while under its time budget, then
        says nothing is left for this run and wakes the job up again: a
        prefork cron worker's unit of work stays under the server's limits."""
        self.set_chunk_size(1)
        self.send(self.invoices)
        cron = self.env.ref("account_document_email.ir_cron_document_email_batch")
        run = {"cron_id": cron.id, "lastcall": cron.lastcall}
        document_email_batch._cron_run.key = None  # a new run in this thread
        self.env["ir.cron.trigger"].search([("cron_id", "=", cron.id)]).unlink()

        def call():
            cron_call, progress = cron.with_context(**run)._add_progress()
            self.env["document.email.batch"].with_context(
                **cron_call.env.context
            )._cron_process_batches()
            return progress.done, progress.remaining

        self.assertEqual(call(), (1, 3), "under the budget: more of this run")
        with patch.object(document_email_batch, "CRON_TIME_BUDGET", -1):
            self.assertEqual(call(), (1, 0), "over the budget: the run ends")
        self.assertTrue(
            self.env["ir.cron.trigger"].search([("cron_id", "=", cron.id)]),
            "and the job wakes itself up for a new run",
        )
        batch_lines = self.env["document.email.batch.line"].search(
            [("res_id", "in", self.invoices.ids)]
        )
        self.assertEqual(batch_lines.mapped("stage").count("pending"), 2)


@tagged("post_install", "-at_install")
class TestBatchQueueJob(DocumentEmailCase):
    """With OCA queue_job installed (scripts/setup.sh puts it in
    /opt/ade/oca/odoo/addons), chunks become jobs on root.document_email."""

    def setUp(self):
        super().setUp()
        if "queue.job" not in self.env:
            self.skipTest("queue_job is not installed in this database")

    def test_chunks_are_jobs_on_their_channel(self):
        from odoo.addons.queue_job.tests.common import trap_jobs

        invoices = self.env["account.move"]
        for partner in (self.partner_a, self.partner_b, self.partner_a):
            invoices |= self.init_invoice(
                "out_invoice", partner=partner, amounts=[20.0], post=True
            )
        self.env["ir.config_parameter"].set_param(
            "account_document_email.batch_chunk_size", 2
        )
        Batch = self.env["document.email.batch"]
        with trap_jobs() as trap:
            action = self.open_wizard(invoices).action_send()
            batch = Batch.browse(action["res_id"])
            trap.assert_jobs_count(2, only=Batch._job_process_chunk)
            trap.assert_enqueued_job(
                Batch._job_process_chunk,
                args=(2,),
                properties={"channel": "root.document_email"},
            )
            trap.perform_enqueued_jobs()  # the two chunks
            trap.assert_jobs_count(1, only=Batch._finish_batches)
            # the emails' delivery jobs: test_delivery_jobs_one_slice_each
            trap.enqueued_jobs = [
                job
                for job in trap.enqueued_jobs
                if job.method_name != "_job_document_deliver"
            ]
            trap.perform_enqueued_jobs()  # the end of the batch
        batch.invalidate_recordset()
        self.assertEqual((batch.state, batch.queued_count), ("done", 3))
        with real_smtp_delivery():
            self.env["mail.mail"].process_email_queue()
        self.assertEqual(len(self.received()), 3)

    def test_delivery_jobs_one_slice_each(self):
        """Queued emails of the company's server are delivered by jobs on
        root.document_email, one slice (one SMTP session) per job: several
        servers deliver them."""
        from odoo.addons.queue_job.tests.common import trap_jobs

        Mail = self.env["mail.mail"]
        self.env["ir.config_parameter"].set_param(
            "account_document_email.delivery_slice_size", 2
        )
        invoices = self.env["account.move"]
        for partner in (self.partner_a, self.partner_b, self.partner_a):
            invoices |= self.init_invoice(
                "out_invoice", partner=partner, amounts=[20.0], post=True
            )
        with trap_jobs() as trap:
            self.send_in_background(self.open_wizard(invoices))
            trap.assert_enqueued_job(
                Mail._job_document_deliver,
                args=(0,),
                properties={"channel": "root.document_email"},
            )
            deliveries = [
                job
                for job in trap.enqueued_jobs
                if job.method_name == "_job_document_deliver"
            ]
            self.assertEqual(len(deliveries), 4, "one job per slot, not per email")
            # one job alone first (the batch's own jobs are done already)
            trap.enqueued_jobs = deliveries[:1]
            with real_smtp_delivery():
                trap.perform_enqueued_jobs()  # one job: one slice
                self.assertEqual(len(self.received()), 2)
                trap.perform_enqueued_jobs()  # the next ones it enqueued
        delivered = [m["message"]["Message-Id"] for m in self.received()]
        self.assertEqual(len(delivered), 3)
        self.assertEqual(len(set(delivered)), 3, "none twice")
        mails = Mail.search(
            [("model", "=", "account.move"), ("res_id", "in", invoices.ids)]
        )
        self.assertEqual(set(mails.mapped("state")), {"sent"})

    def test_send_now_enqueues_no_delivery_job(self):
        """Send now sends the email in the request: no delivery job is
        enqueued for it (mail.mail._document_wake_workers)."""
        from odoo.addons.queue_job.tests.common import trap_jobs

        Mail = self.env["mail.mail"]
        invoice = self.init_invoice(
            "out_invoice", partner=self.partner_a, amounts=[20.0], post=True
        )
        with trap_jobs() as trap, real_smtp_delivery():
            self.open_wizard(invoice).action_send()
            trap.assert_jobs_count(0, only=Mail._job_document_deliver)
        mail = Mail.search(
            [("model", "=", "account.move"), ("res_id", "=", invoice.id)]
        )
        self.assertEqual(mail.state, "sent")
        self.assertEqual(len(self.received()), 1)

    def test_delivery_job_leaves_live_claims_to_their_worker(self):
        """All the queued emails are claimed by another live worker: the job
        claims nothing and does not enqueue the next jobs at once (a loop);
        it comes back when the first claim lapses, under a key of its own."""
        from odoo.addons.queue_job.tests.common import trap_jobs

        Mail = self.env["mail.mail"]
        invoices = self.init_invoice(
            "out_invoice", partner=self.partner_a, amounts=[20.0], post=True
        ) | self.init_invoice(
            "out_invoice", partner=self.partner_b, amounts=[20.0], post=True
        )
        with trap_jobs() as trap:
            self.send_in_background(self.open_wizard(invoices))
            mails = Mail.search(
                [("model", "=", "account.move"), ("res_id", "in", invoices.ids)]
            )
            self.assertEqual(len(mails), 2)
            # a live connection other than this one: another worker's
            self.env.cr.execute(
                "SELECT pid FROM pg_stat_activity "
                "WHERE pid != pg_backend_pid() AND pid IS NOT NULL LIMIT 1"
            )
            lapse = fields.Datetime.now() + timedelta(minutes=30)
            mails.write(
                {
                    "document_claim_pid": self.env.cr.fetchone()[0],
                    "document_claimed_until": lapse,
                }
            )
            mails.flush_recordset()
            trap.enqueued_jobs = []
            with real_smtp_delivery():
                Mail._job_document_deliver(0)
            self.assertFalse(self.received())
            deliveries = [
                job
                for job in trap.enqueued_jobs
                if job.method_name == "_job_document_deliver"
            ]
            self.assertEqual(
                [(job.eta, job.identity_key) for job in deliveries],
                [(lapse, f"document_email_deliver_at_{lapse:%Y%m%d%H%M}")],
            )
