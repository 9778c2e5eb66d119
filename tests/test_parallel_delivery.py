"""Delivery in parallel (issue 22, goal 3): three worker processes run the
mail queue at once on the company's document emails, against one SMTP
server whose per-minute limit is set. Each worker claims its emails with
SKIP LOCKED and sends them over its own session; the limit is counted for
all workers together (slots taken under one lock row per server, on the
database's clock), never per worker. The window is cut to a few seconds
here (a system parameter): the limit holds in any span of that length as
it does in any minute, not only in clock-aligned ones."""

import asyncio
import glob
import json
import logging
import os
import tempfile
import threading
import time

from odoo.tests import tagged

from odoo.addons.account_document_email.models.mail_mail import SLICE_SIZE

from .common import RecordingHandler, SMTPTestServer
from .test_queue_processes import ChildProcessCase

_logger = logging.getLogger(__name__)
WINDOW = 5
LIMIT = 4
EMAILS = 14
WORKERS = 3


class TimedHandler(RecordingHandler):
    """Notes when each message arrived, and over which connection."""

    async def handle_DATA(self, server, session, envelope):
        answer = await super().handle_DATA(server, session, envelope)
        with self.lock:
            self.messages[-1]["at"] = time.time()
            self.messages[-1]["peer"] = session.peer
        return answer


class HoldingHandler(RecordingHandler):
    """Holds the first session's first message until a second worker has
    claimed a slice of IDS (seen committed in the database) or delivered
    over a session of its own: the first worker cannot finish the queue
    alone, whatever the machine's pace. Holds it at most TIMEOUT seconds,
    less than the client's SMTP timeout (30 s: the held email must never
    become uncertain), and notes it (timed_out) for the test to fail on.
    Notes each message's connection."""

    def __init__(self, registry, ids, timeout=20):
        super().__init__()
        self.registry, self.ids, self.timeout = registry, ids, timeout
        self.held = None
        self.timed_out = False

    async def handle_DATA(self, server, session, envelope):
        if self.held is None:
            self.held = session.peer
        if session.peer == self.held:
            deadline = time.time() + self.timeout
            while not self._second_worker():
                if time.time() > deadline:
                    self.timed_out = True
                    break
                await asyncio.sleep(0.05)
        answer = await super().handle_DATA(server, session, envelope)
        with self.lock:
            self.messages[-1]["peer"] = session.peer
        return answer

    def _second_worker(self):
        with self.lock:
            if any(m["peer"] != self.held for m in self.messages):
                return True
        with self.registry.cursor() as cr:
            cr.execute(
                "SELECT count(DISTINCT document_claim_pid) FROM mail_mail "
                "WHERE id IN %s AND document_claim_pid IS NOT NULL",
                [tuple(self.ids)],
            )
            return cr.fetchone()[0] > 1


@tagged("post_install", "-at_install")
class TestParallelDelivery(ChildProcessCase):
    def _limit(self, port):
        with self.registry.cursor() as cr:
            cr.execute(
                "UPDATE ir_mail_server SET document_max_per_minute = %s "
                "WHERE name = %s",
                [LIMIT, f"queue test {port}"],
            )
            cr.execute(
                "INSERT INTO ir_config_parameter (key, value) VALUES (%s, %s)",
                ["account_document_email.smtp_limit_window_seconds", str(WINDOW)],
            )
        self.addCleanup(self._unlimit)

    def _unlimit(self):
        with self.registry.cursor() as cr:
            cr.execute(
                "DELETE FROM ir_config_parameter WHERE key = %s",
                ["account_document_email.smtp_limit_window_seconds"],
            )

    def _run_workers(self, ids):
        workers = [self._child("drain", "120", *map(str, ids)) for _i in range(WORKERS)]
        outputs = [None] * WORKERS

        def communicate(index):
            outputs[index] = workers[index].communicate(timeout=300)

        threads = [
            threading.Thread(target=communicate, args=(i,)) for i in range(WORKERS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        for worker, (_out, err) in zip(workers, outputs, strict=True):
            self.assertEqual(worker.returncode, 0, err[-3000:])

    def test_three_workers_share_the_limit(self):
        with SMTPTestServer(handler=TimedHandler()) as server:
            ids = json.loads(self._run("create", str(EMAILS), str(server.port)))
            self.addCleanup(self._cleanup, ids, server.port)
            self._limit(server.port)
            self._run_workers(ids)
            messages = list(server.messages)
        delivered = [m["message"]["Message-Id"] for m in messages]
        self.assertEqual(len(delivered), EMAILS, "every email delivered")
        self.assertEqual(len(set(delivered)), EMAILS, "none twice")
        mails = self._committed_mails(ids)
        self.assertEqual(
            {mid for state, _reason, mid in mails.values() if state == "sent"},
            set(delivered),
        )
        per_window = {}
        for message in messages:
            window = int(message["at"] // WINDOW)
            per_window[window] = per_window.get(window, 0) + 1
        _logger.info(
            "parallel delivery: %s emails, per %s s window %s (limit %s), over %s "
            "SMTP connections",
            EMAILS,
            WINDOW,
            sorted(per_window.values(), reverse=True),
            LIMIT,
            len({message["peer"] for message in messages}),
        )
        self.assertLessEqual(max(per_window.values()), LIMIT, per_window)
        # a sliding window: no span of WINDOW seconds, aligned or not, saw
        # more than the limit arrive
        arrivals = sorted(message["at"] for message in messages)
        sliding = {
            round(at, 3): sum(1 for other in arrivals if at <= other < at + WINDOW)
            for at in arrivals
        }
        self.assertLessEqual(max(sliding.values()), LIMIT, sliding)
        # the limit, not the workers, set the pace: full windows one after
        # the other
        self.assertGreaterEqual(len(per_window), -(-EMAILS // LIMIT), per_window)

    def _race(self, ids):
        """WORKERS "race" children, started together once all are ready;
        how many emails each handed to the server."""
        folder = tempfile.mkdtemp()
        go = os.path.join(folder, "go")
        workers = [
            self._child("race", "120", go, *map(str, ids)) for _i in range(WORKERS)
        ]
        deadline = time.time() + 120
        while len(glob.glob(f"{go}.ready.*")) < WORKERS and time.time() < deadline:
            time.sleep(0.05)
        with open(go, "w"):
            pass
        counts = []
        for worker in workers:
            out, err = worker.communicate(timeout=300)
            self.assertEqual(worker.returncode, 0, err[-3000:])
            counts.append(json.loads(out)["sent"])
        return counts

    def test_default_settings_deliver_in_parallel(self):
        """No per-connection or per-minute limit set: each session claims a
        slice of at most SLICE_SIZE emails, so that the workers share the
        queue instead of one claiming it all. The server holds the first
        worker's session until a second worker has claimed (SKIP LOCKED may
        split the slices any way): at least two workers deliver, over two
        sessions at least, every email once."""
        emails = 2 * SLICE_SIZE
        handler = HoldingHandler(self.registry, [])
        with SMTPTestServer(handler=handler) as server:
            ids = json.loads(self._run("create", str(emails), str(server.port)))
            self.addCleanup(self._cleanup, ids, server.port)
            handler.ids = ids
            counts = self._race(ids)
            messages = list(server.messages)
        delivered = [m["message"]["Message-Id"] for m in messages]
        _logger.info("default settings: emails handed over per worker %s", counts)
        self.assertFalse(
            handler.timed_out,
            f"no second worker claimed within {handler.timeout} s: {counts}",
        )
        self.assertEqual(len(delivered), emails, "every email delivered")
        self.assertEqual(len(set(delivered)), emails, "none twice")
        self.assertEqual(sum(counts), emails)
        self.assertGreaterEqual(len([c for c in counts if c]), 2, counts)
        sessions = {message["peer"] for message in messages}
        self.assertGreaterEqual(len(sessions), 2, "one session per slice at least")
        mails = self._committed_mails(ids)
        self.assertEqual({state for state, _r, _m in mails.values()}, {"sent"})
