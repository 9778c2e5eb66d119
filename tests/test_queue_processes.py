"""The mail queue in real separate processes (tests/queue_child.py), against
this test database and a real SMTP server: a queue run killed mid-batch, and
"send now" racing the queue. The children commit their own data; each test
removes it at the end."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading

import odoo
from odoo.tests import TransactionCase, tagged
from odoo.tools import config

from .common import RecordingHandler, SMTPTestServer

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


@tagged("post_install", "-at_install")
class TestQueueProcesses(TransactionCase):
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
