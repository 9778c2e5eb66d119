"""The mail queue in real separate processes (tests/queue_child.py), against
this test database and a real SMTP server: a queue run killed mid-batch, and
"send now" racing the queue. The children commit their own data; each test
removes it at the end."""

import asyncio
import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from unittest.mock import patch

import psycopg2.errors

import odoo
from odoo import SUPERUSER_ID, api, fields
from odoo.tests import TransactionCase, tagged
from odoo.tools import config, mute_logger

from odoo.addons.account_document_email.models import ir_attachment
from odoo.addons.account_document_email.models.mail_mail import SLICE_PARAM

from .common import RecordingHandler, SMTPTestServer, forget_send_marks, free_port

CHILD = os.path.join(os.path.dirname(__file__), "queue_child.py")


class KillingHandler(RecordingHandler):
    """Stores the Nth message, then kills the process sending it before it
    hears the answer: mid-batch, at the worst moment."""

    def __init__(self, kill_at):
        super().__init__()
        self.kill_at = kill_at
        self.victim = None

    async def handle_DATA(self, server, session, envelope):
        reply = await super().handle_DATA(server, session, envelope)
        if len(self.messages) == self.kill_at and self.victim:
            os.kill(self.victim.pid, signal.SIGKILL)
            self.victim.wait()
        return reply


class SlowHandler(RecordingHandler):
    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(1.5)  # widen the race window
        return await super().handle_DATA(server, session, envelope)


class ClosingHandler(RecordingHandler):
    """Answers the Nth MAIL FROM with 421 and closes the connection, as a
    server shutting down mid-session: that email was refused before DATA."""

    def __init__(self, close_at):
        super().__init__()
        self.close_at = close_at
        self.mail_commands = 0

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        with self.lock:
            self.mail_commands += 1
            closing = self.mail_commands == self.close_at
        if closing:
            # the answer is written first, then the socket closed
            asyncio.get_running_loop().call_soon(server.transport.close)
            return "421 4.3.2 Service shutting down, closing transmission channel"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"


class ChildProcessCase(TransactionCase):
    """Runs tests/queue_child.py on this test database."""

    def _child(self, *args):
        settings = {
            "db": self.env.cr.dbname,
            "addons_path": config["addons_path"],
            "data_dir": config["data_dir"],
        }
        odoo_root = os.path.dirname(os.path.dirname(odoo.__file__))
        return subprocess.Popen(
            [sys.executable, CHILD, json.dumps(settings), *args],
            env=dict(os.environ, PYTHONPATH=odoo_root),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def _run(self, *args):
        child = self._child(*args)
        out, err = child.communicate(timeout=300)
        self.assertEqual(child.returncode, 0, err[-3000:])
        return out

    def _committed_mails(self, ids):
        """The emails as committed by the children (a fresh cursor)."""
        with self.registry.cursor() as cr:
            cr.execute(
                "SELECT m.id, m.state, m.failure_reason, msg.message_id "
                "FROM mail_mail m JOIN mail_message msg ON msg.id = m.mail_message_id "
                "WHERE m.id IN %s",
                [tuple(ids)],
            )
            return {row[0]: row[1:] for row in cr.fetchall()}

    def _cleanup_company_server(self, created, port):
        """What "cost" or "send-now-replayed" created and changed, undone."""
        TestBatchProcesses._cleanup_batch(self, created, port)
        with self.registry.cursor() as cr:
            cr.execute(
                "UPDATE res_company SET document_smtp_use_default = true, "
                "document_smtp_host = NULL WHERE id = "
                "(SELECT document_company_id FROM ir_mail_server WHERE id = %s)",
                [created["server"]["id"]],
            )
            cr.execute(
                "UPDATE ir_mail_server SET active = false WHERE id = %s",
                [created["server"]["id"]],
            )

    def _cleanup(self, ids, port):
        with self.registry.cursor() as cr:
            cr.execute(
                "DELETE FROM mail_message WHERE id IN "
                "(SELECT mail_message_id FROM mail_mail WHERE id IN %s)",
                [tuple(ids)],
            )
            cr.execute(
                "DELETE FROM ir_mail_server WHERE name = %s", [f"queue test {port}"]
            )


@tagged("post_install", "-at_install")
class TestQueueProcesses(ChildProcessCase):
    def test_killed_mid_batch_then_restarted(self):
        handler = KillingHandler(kill_at=20)
        with SMTPTestServer(handler=handler) as server:
            ids = json.loads(self._run("create", "50", str(server.port)))
            self.addCleanup(self._cleanup, ids, server.port)
            handler.victim = self._child("queue")
            handler.victim.wait(timeout=300)
            self.assertEqual(handler.victim.returncode, -signal.SIGKILL, "killed")
            self.assertEqual(len(server.messages), 20)
            self._run("queue")  # the next cron run
            delivered = [m["message"]["Message-Id"] for m in server.messages]
        self.assertEqual(len(delivered), len(set(delivered)), "nothing sent twice")
        mails = self._committed_mails(ids)
        sent = {mid for state, _reason, mid in mails.values() if state == "sent"}
        interrupted = [
            mid
            for state, reason, mid in mails.values()
            if state == "exception" and "may have been delivered" in (reason or "")
        ]
        # the one in flight when killed is kept, readable, never resent
        self.assertEqual(len(interrupted), 1)
        self.assertEqual(len(sent), 49)
        self.assertEqual(len(delivered), 50, "each email delivered exactly once")
        self.assertEqual(set(delivered), sent | set(interrupted))

    def test_send_now_while_the_queue_runs(self):
        with SMTPTestServer(handler=SlowHandler()) as server:
            ids = json.loads(self._run("create", "3", str(server.port)))
            self.addCleanup(self._cleanup, ids, server.port)
            racers = [self._child("queue"), self._child("send", *map(str, ids))]
            outputs = [None] * len(racers)

            def communicate(index):
                outputs[index] = racers[index].communicate(timeout=300)

            threads = [
                threading.Thread(target=communicate, args=(i,))
                for i in range(len(racers))
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=300)
            delivered = [m["message"]["Message-Id"] for m in server.messages]
        for racer, (_out, err) in zip(racers, outputs, strict=True):
            self.assertEqual(racer.returncode, 0, err[-3000:])
        self.assertEqual(len(delivered), 3, "each of the 3 emails delivered once")
        self.assertEqual(len(set(delivered)), 3)
        mails = self._committed_mails(ids)
        self.assertEqual(
            {mid for state, _reason, mid in mails.values() if state == "sent"},
            set(delivered),
        )

    def _claims(self, ids):
        """{id: (state, uncertain, attempts)} as committed."""
        with self.registry.cursor() as cr:
            cr.execute(
                "SELECT id, state, COALESCE(document_uncertain, false), "
                "document_attempts FROM mail_mail WHERE id IN %s",
                [tuple(ids)],
            )
            return {row[0]: row[1:] for row in cr.fetchall()}

    def test_421_mid_session_refused_before_data_goes_back_to_the_queue(self):
        """The server answers the 3rd MAIL FROM with 421 and closes: that
        email is retried later (never uncertain: nothing was handed over),
        the ones after it never reached the server and are free at once for
        another live worker, before this one has settled its session; each
        is delivered once in the end."""
        handler = ClosingHandler(close_at=3)
        with SMTPTestServer(handler=handler) as server:
            ids = sorted(json.loads(self._run("create", "6", str(server.port))))
            self.addCleanup(self._cleanup, ids, server.port)
            marker = os.path.join(tempfile.mkdtemp(), "session")
            worker = self._child("claimed-paused", marker, *map(str, ids))
            deadline = time.time() + 120
            while not os.path.exists(f"{marker}.ready") and time.time() < deadline:
                time.sleep(0.05)
            self.assertTrue(os.path.exists(f"{marker}.ready"), "first session ended")
            self.assertEqual(len(server.messages), 2)
            # the first worker is alive, its session not settled: the emails
            # it released are another worker's at once
            self._run("claimed", *map(str, ids))
            self.assertEqual(len(server.messages), 5)
            with open(f"{marker}.go", "w"):
                pass
            out, err = worker.communicate(timeout=300)
            self.assertEqual(worker.returncode, 0, err[-3000:])
            claimed = json.loads(out)
            first = self._claims(ids)
            with self.registry.cursor() as cr:
                cr.execute(
                    "UPDATE mail_mail SET scheduled_date = NULL WHERE id = %s",
                    [ids[2]],
                )
            self._run("claimed", *map(str, ids))  # its retry is due
            delivered = [m["message"]["Message-Id"] for m in server.messages]
        self.assertEqual(claimed, [], "nothing left claimed by the live worker")
        self.assertEqual(
            [first[mail_id] for mail_id in ids],
            [("sent", False, 0)] * 2
            + [("outgoing", False, 1)]
            + [("sent", False, 0)] * 3,
        )
        self.assertEqual(len(delivered), 6)
        self.assertEqual(len(set(delivered)), 6, "none twice")
        self.assertEqual({state for state, *_r in self._claims(ids).values()}, {"sent"})

    def test_refused_connection_fails_only_the_emails_it_claimed(self):
        """A run listed 4 emails; another live worker claimed 2 of them
        since; the server is down: the run fails its own 2 only."""
        port = free_port()  # nothing listens there
        ids = sorted(json.loads(self._run("create", "4", str(port))))
        self.addCleanup(self._cleanup, ids, port)
        with self.registry.cursor() as other:
            other.execute(
                "UPDATE mail_mail SET document_claim_pid = pg_backend_pid(), "
                "document_claimed_until = (now() AT TIME ZONE 'UTC') "
                "+ interval '30 minutes' WHERE id IN %s",
                [tuple(ids[:2])],
            )
            other.commit()
            self._run("send-listed", *map(str, ids))
            other.execute(
                "SELECT state, document_claim_pid = pg_backend_pid() "
                "FROM mail_mail WHERE id IN %s ORDER BY id",
                [tuple(ids)],
            )
            rows = other.fetchall()
        self.assertEqual(
            rows,
            [("outgoing", True)] * 2 + [("exception", None)] * 2,
            "the other worker's emails untouched, its claims kept",
        )

    def test_unreachable_server_fails_one_slice_per_run(self):
        """Slices of 2, the server down: the run fails the slice it claimed,
        commits that, and leaves the server's other slices unclaimed for the
        next run instead of waiting on the server once per slice."""
        port = free_port()  # nothing listens there
        ids = sorted(json.loads(self._run("create", "6", str(port))))
        self.addCleanup(self._cleanup, ids, port)
        self._slice_size("2")
        self._run("send-listed", *map(str, ids))
        with self.registry.cursor() as cr:
            cr.execute(
                "SELECT state, document_claim_pid FROM mail_mail "
                "WHERE id IN %s ORDER BY id",
                [tuple(ids)],
            )
            rows = cr.fetchall()
        self.assertEqual(
            sorted(rows, key=lambda row: row[0]),
            [("exception", None)] * 2 + [("outgoing", None)] * 4,
        )

    def _slice_size(self, value):
        with self.registry.cursor() as cr:
            cr.execute(
                "INSERT INTO ir_config_parameter (key, value) VALUES (%s, %s)",
                [SLICE_PARAM, value],
            )
        self.addCleanup(self._unset_slice_size)

    def _unset_slice_size(self):
        with self.registry.cursor() as cr:
            cr.execute("DELETE FROM ir_config_parameter WHERE key = %s", [SLICE_PARAM])

    def test_send_now_replayed_after_the_server_took_it(self):
        """ "Send now" in a request that fails on a serialization error after
        the server took the email, and is replayed as Odoo replays it: the
        replay finds the email sent (its mark committed on a cursor of its
        own) and sends nothing."""
        forget_send_marks(self)
        with SMTPTestServer() as server:
            created = json.loads(self._run("send-now-replayed", str(server.port)))
            self.addCleanup(self._cleanup_company_server, created, server.port)
            delivered = [m["message"]["Message-Id"] for m in server.messages]
        self.assertEqual(created["tries"], 2, "the request was replayed")
        self.assertEqual(len(delivered), 1, "delivered once, not once per try")
        with self.registry.cursor() as cr:
            cr.execute(
                "SELECT m.state, m.document_uncertain, msg.message_id "
                "FROM mail_mail m JOIN mail_message msg ON msg.id = m.mail_message_id "
                "WHERE msg.model = 'sale.order' AND msg.res_id IN %s",
                [tuple(created["orders"])],
            )
            self.assertEqual(cr.fetchall(), [("sent", False, delivered[0])])
            cr.execute(
                "SELECT document_email_state FROM sale_order WHERE id IN %s",
                [tuple(created["orders"])],
            )
            self.assertEqual(cr.fetchall(), [("sent",)])

    def test_send_now_of_a_statement_replayed_after_the_server_took_it(self):
        """As above, for a customer's statement: its email is kept on a
        statement record each try creates anew, yet the replay (same dialog,
        same customer) finds the email sent and sends nothing."""
        forget_send_marks(self)
        with SMTPTestServer() as server:
            created = json.loads(
                self._run("send-now-replayed", str(server.port), "statement")
            )
            self.addCleanup(self._cleanup_company_server, created, server.port)
            delivered = [m["message"]["Message-Id"] for m in server.messages]
        self.assertEqual(created["tries"], 2, "the request was replayed")
        self.assertEqual(len(delivered), 1, "delivered once, not once per try")
        with self.registry.cursor() as cr:
            cr.execute(
                "SELECT m.state, m.document_uncertain, msg.message_id "
                "FROM mail_mail m JOIN mail_message msg ON msg.id = m.mail_message_id "
                "JOIN document_email_statement log ON log.id = msg.res_id "
                "WHERE msg.model = 'document.email.statement' "
                "AND log.partner_id IN %s",
                [tuple(created["partners"])],
            )
            self.assertEqual(cr.fetchall(), [("sent", False, delivered[0])])

    def test_send_now_mark_found_stays_for_the_request_that_made_it(self):
        """Request A marks an email, then rolls back (and waits to retry);
        request B finds A's mark, and commits: the mark stays, still
        protecting A's replay. Only the request that made a mark forgets it
        at its commit. Real cursors (this TransactionCase): their commits
        run the post-commit hooks, as a request's does."""
        forget_send_marks(self)
        key = hashlib.sha256(b"a mark found by another request").hexdigest()
        with self.registry.cursor() as cr:
            marks = api.Environment(cr, SUPERUSER_ID, {})["document.mail.send.mark"]
            mark_id, earlier = marks._begin(key, "<a@test.example>")
            self.assertIsNone(earlier)
            cr.rollback()
        with self.registry.cursor() as cr:
            marks = api.Environment(cr, SUPERUSER_ID, {})["document.mail.send.mark"]
            self.assertEqual(
                marks._begin(key, "<b@test.example>"),
                (mark_id, ("in_flight", "<a@test.example>")),
            )
        with self.registry.cursor() as cr:
            cr.execute(
                "SELECT id FROM document_mail_send_mark WHERE id = %s", [mark_id]
            )
            self.assertTrue(cr.fetchone(), "A's mark outlives B's commit")

    def test_send_now_from_another_dialog_despite_a_leftover_mark(self):
        """A Send now request fails for good once the server took the email:
        its mark stays (a day). Another dialog sending the same order to the
        same customer is no replay of it: its email really goes."""
        forget_send_marks(self)
        with SMTPTestServer() as server:
            created = json.loads(self._run("send-now-leftover", str(server.port)))
            self.addCleanup(self._cleanup_company_server, created, server.port)
            delivered = [m["message"]["Message-Id"] for m in server.messages]
        self.assertEqual(created["told"], "success")
        self.assertEqual(len(delivered), 2, "the second dialog's email was sent")
        with self.registry.cursor() as cr:
            cr.execute(
                "SELECT m.state, msg.message_id "
                "FROM mail_mail m JOIN mail_message msg ON msg.id = m.mail_message_id "
                "WHERE msg.model = 'sale.order' AND msg.res_id IN %s",
                [tuple(created["orders"])],
            )
            self.assertEqual(cr.fetchall(), [("sent", delivered[1])])


@tagged("post_install", "-at_install")
class TestBatchProcesses(ChildProcessCase):
    """The batch job in real processes: killed while rendering, killed while
    queueing, and two workers at once; every document delivered exactly once
    to a real SMTP server, none forgotten."""

    def _batch(self, count, port):
        created = json.loads(self._run("batch", str(count), str(port)))
        self.addCleanup(self._cleanup_batch, created, port)
        return created

    def _cleanup_batch(self, created, port):
        with self.registry.cursor() as cr:
            orders = tuple(created["orders"])
            cr.execute(
                "DELETE FROM mail_message WHERE model = 'sale.order' AND res_id IN %s",
                [orders],
            )
            cr.execute(
                "DELETE FROM ir_attachment WHERE res_model = 'sale.order' "
                "AND res_id IN %s",
                [orders],
            )
            cr.execute(
                "DELETE FROM document_email_batch WHERE id = %s", [created["batch"]]
            )
            cr.execute("DELETE FROM sale_order WHERE id IN %s", [orders])
            cr.execute(
                "DELETE FROM product_template WHERE id = %s", [created["product"]]
            )
            cr.execute(
                "DELETE FROM mail_message WHERE model = 'res.partner' AND res_id IN %s",
                [tuple(created["partners"])],
            )
            # a statement sent ("send-now-replayed PORT statement")
            cr.execute(
                "DELETE FROM mail_message WHERE model = 'document.email.statement' "
                "AND res_id IN (SELECT id FROM document_email_statement "
                "WHERE partner_id IN %s)",
                [tuple(created["partners"])],
            )
            cr.execute(
                "DELETE FROM ir_attachment "
                "WHERE res_model = 'document.email.statement' AND res_id IN "
                "(SELECT id FROM document_email_statement "
                "WHERE partner_id IN %s)",
                [tuple(created["partners"])],
            )
            cr.execute(
                "DELETE FROM res_partner WHERE id IN %s", [tuple(created["partners"])]
            )
            cr.execute(
                "DELETE FROM ir_mail_server WHERE name = %s", [f"queue test {port}"]
            )
            saved = created["server"]
            cr.execute(
                "UPDATE ir_mail_server SET smtp_host = %s, smtp_port = %s, "
                "smtp_encryption = %s WHERE id = %s",
                [
                    saved["smtp_host"],
                    saved["smtp_port"],
                    saved["smtp_encryption"],
                    saved["id"],
                ],
            )

    def _committed_lines(self, batch_id):
        """{stage: count} and the emails of the batch's documents, committed."""
        with self.registry.cursor() as cr:
            cr.execute(
                "SELECT stage, count(*) FROM document_email_batch_line "
                "WHERE batch_id = %s GROUP BY stage",
                [batch_id],
            )
            stages = dict(cr.fetchall())
            cr.execute(
                "SELECT count(*), count(l.id) FROM mail_mail m "
                "JOIN mail_message msg ON msg.id = m.mail_message_id "
                "LEFT JOIN document_email_batch_line l ON l.mail_id = m.id "
                "WHERE msg.model = 'sale.order' AND msg.res_id IN "
                "(SELECT res_id FROM document_email_batch_line WHERE batch_id = %s)",
                [batch_id],
            )
            mails, linked = cr.fetchone()
        return stages, mails, linked

    def _assert_each_delivered_once(self, server, created):
        delivered = sorted(rcpt for m in server.messages for rcpt in m["rcpt_tos"])
        expected = sorted(
            f"customer{n}@example.com" for n in range(len(created["orders"]))
        )
        self.assertEqual(delivered, expected, "each document once, none forgotten")
        stages, mails, linked = self._committed_lines(created["batch"])
        self.assertEqual(stages, {"queued": len(expected)})
        self.assertEqual((mails, linked), (len(expected), len(expected)))

    def _wait_for_wkhtmltopdf(self, child, batch_id, min_queued):
        """Once a chunk is committed, the moment the child runs wkhtmltopdf."""
        import psutil

        deadline = time.time() + 240
        while time.time() < deadline and child.poll() is None:
            stages, _mails, _linked = self._committed_lines(batch_id)
            if stages.get("queued", 0) >= min_queued:
                # a PDF being made, not Odoo's "wkhtmltopdf --version" probe
                # of its start-up
                commands = []
                for process in psutil.Process(child.pid).children(recursive=True):
                    with contextlib.suppress(psutil.NoSuchProcess):
                        if "wkhtmltopdf" in process.name():
                            commands.append(process.cmdline())
                if any("--version" not in command for command in commands):
                    return True
            time.sleep(0.05)
        return False

    def test_batch_killed_while_rendering_then_resumed(self):
        with SMTPTestServer() as server:
            created = self._batch(8, server.port)
            child = self._child("process", "2")
            rendering = self._wait_for_wkhtmltopdf(child, created["batch"], 2)
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=60)
            self.assertTrue(rendering, "killed while wkhtmltopdf ran")
            self.assertEqual(child.returncode, -signal.SIGKILL)
            stages, mails, linked = self._committed_lines(created["batch"])
            self.assertTrue(stages.get("pending"), "the killed chunk is still to do")
            self.assertEqual(mails, stages["queued"], "no email without its line")
            self.assertEqual(linked, mails)
            self._run("process", "2")  # the next scheduled run resumes
            self._run("queue")
            self._assert_each_delivered_once(server, created)

    def test_batch_killed_while_queueing_then_resumed(self):
        with SMTPTestServer() as server:
            created = self._batch(6, server.port)
            child = self._child("process", "2", "2")
            child.communicate(timeout=300)
            self.assertEqual(child.returncode, -signal.SIGKILL)
            stages, mails, linked = self._committed_lines(created["batch"])
            # the first chunk committed; the second's emails vanished with it
            self.assertEqual(stages, {"queued": 2, "pending": 4})
            self.assertEqual((mails, linked), (2, 2))
            self._run("process", "2")
            self._run("queue")
            self._assert_each_delivered_once(server, created)

    def test_two_workers_share_a_batch(self):
        with SMTPTestServer() as server:
            created = self._batch(12, server.port)
            workers = [self._child("process", "2") for _i in range(2)]
            outputs = [worker.communicate(timeout=300) for worker in workers]
            for worker, (_out, err) in zip(workers, outputs, strict=True):
                self.assertEqual(worker.returncode, 0, err[-3000:])
            chunks = [json.loads(out) for out, _err in outputs]
            self.assertEqual(sum(chunks), 6)
            self.assertTrue(all(chunks), f"both workers rendered chunks: {chunks}")
            self._run("queue")
            self._assert_each_delivered_once(server, created)

    def test_filestore_gc_waits_for_a_chunk_s_files(self):
        """Odoo's filestore GC takes a SHARE lock on ir_attachment, then
        deletes the checklisted files that no committed attachment names;
        core's attachment create writes its files before its INSERT (all of
        a chunk's official PDFs at once). When a worker has written a file
        whose row is not inserted yet, the GC's lock is refused; once the
        worker is done, it is granted, and every order is delivered once."""
        marker = os.path.join(tempfile.mkdtemp(), "file-written")
        with SMTPTestServer() as server:
            created = self._batch(4, server.port)
            child = self._child("process-pause", "2", marker)
            deadline = time.time() + 240
            while not os.path.exists(marker) and child.poll() is None:
                self.assertLess(time.time(), deadline, "no file written")
                time.sleep(0.05)
            self.assertTrue(os.path.exists(marker), "the worker wrote a file")
            with self.registry.cursor() as cr:
                cr.execute("SET LOCAL lock_timeout TO '500ms'")
                with (
                    mute_logger("odoo.sql_db"),
                    self.assertRaises(psycopg2.errors.LockNotAvailable),
                ):
                    cr.execute("LOCK TABLE ir_attachment IN SHARE MODE")
                cr.rollback()
            # the worker waited, its row not inserted, until now
            with open(f"{marker}.go", "w"):
                pass
            out, err = child.communicate(timeout=300)
            self.assertEqual(child.returncode, 0, err[-3000:])
            self.assertEqual(json.loads(out), 2)
            with self.registry.cursor() as cr:
                cr.execute("SET LOCAL lock_timeout TO '5s'")
                cr.execute("LOCK TABLE ir_attachment IN SHARE MODE")
                cr.rollback()
            self._run("queue")
            self._assert_each_delivered_once(server, created)

    def test_filestore_gc_met_by_a_chunk_runs_again_once_it_is_done(self):
        """Odoo's filestore GC gives up after 10 s on a chunk holding
        ir_attachment while it writes files (until the next day): while a
        batch runs, it tries again after a short pause, and collects once
        the chunk has committed; the chunk's files stay, an orphan goes."""
        marker = os.path.join(tempfile.mkdtemp(), "file-written")
        Attachment = self.env["ir.attachment"]
        orphan = f"an orphan file {time.time()}".encode()
        orphan = Attachment._full_path(
            Attachment._file_write(orphan, Attachment._compute_checksum(orphan))
        )
        with SMTPTestServer() as server:
            created = self._batch(4, server.port)
            child = self._child("process-pause", "2", marker)
            deadline = time.time() + 240
            while not os.path.exists(marker) and child.poll() is None:
                self.assertLess(time.time(), deadline, "no file written")
                time.sleep(0.05)
            self.assertTrue(os.path.exists(marker), "the worker wrote a file")
            gc = self._child("gc")
            # the GC waits for the lock, then gives up (core's 10 s)
            self._wait_for_gc_lock(gc, waiting=True)
            self._wait_for_gc_lock(gc, waiting=False)
            self.assertTrue(os.path.exists(orphan), "nothing collected yet")
            with open(f"{marker}.go", "w"):
                pass
            out, err = child.communicate(timeout=300)
            self.assertEqual(child.returncode, 0, err[-3000:])
            out, err = gc.communicate(timeout=120)
            self.assertEqual(gc.returncode, 0, err[-3000:])
            self.assertIsNot(json.loads(out), False, "the GC ran again")
            self.assertFalse(os.path.exists(orphan), "the orphan was collected")
            with open(marker) as file:
                fname = file.read()
            with self.registry.cursor() as cr:
                cr.execute(
                    "SELECT count(*) FROM ir_attachment WHERE store_fname = %s",
                    [fname],
                )
                if cr.fetchone()[0]:
                    self.assertTrue(os.path.exists(Attachment._full_path(fname)))
            self._run("queue")
            self._assert_each_delivered_once(server, created)

    def test_filestore_gc_still_held_runs_again_in_a_few_minutes(self):
        """When a chunk still holds ir_attachment after the GC's last try,
        the auto-vacuum (the GC with it) runs again in a few minutes, not
        the next day."""
        cron = self.env.ref("base.autovacuum_job")
        with SMTPTestServer() as server:
            self._batch(2, server.port)  # in progress, committed
            with (
                self.registry.cursor() as chunk,
                self.registry.cursor() as cr,
                patch.object(ir_attachment, "GC_RETRIES", 0),
            ):
                chunk.execute("LOCK TABLE ir_attachment IN ROW EXCLUSIVE MODE")
                env = api.Environment(cr, SUPERUSER_ID, {})
                before = fields.Datetime.now()
                with mute_logger("odoo.sql_db"):
                    self.assertIs(env["ir.attachment"]._gc_file_store(), False)
                cr.execute(
                    "SELECT call_at FROM ir_cron_trigger "
                    "WHERE cron_id = %s AND call_at > %s",
                    [cron.id, before + timedelta(minutes=5)],
                )
                later = cr.fetchall()
                cr.rollback()
                chunk.rollback()
        self.assertEqual(len(later), 1, "the auto-vacuum runs again soon")
        self.assertLess(later[0][0], before + timedelta(hours=1))

    def _wait_for_gc_lock(self, gc, waiting):
        """Until the GC child waits for its SHARE lock (or no longer does)."""
        deadline = time.time() + 120
        while True:
            with self.registry.cursor() as cr:
                cr.execute(
                    """SELECT count(*) FROM pg_stat_activity
                        WHERE datname = current_database()
                          AND wait_event_type = 'Lock'
                          AND query ILIKE 'LOCK ir_attachment IN SHARE MODE%%'"""
                )
                if bool(cr.fetchone()[0]) == waiting:
                    return
            self.assertIsNone(gc.poll(), "the GC ended while the chunk held it")
            self.assertLess(time.time(), deadline, "the GC did not get there")
            time.sleep(0.05)
