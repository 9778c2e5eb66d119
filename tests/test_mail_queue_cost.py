"""What the mail queue costs per email (issue 22, goal 2): the company's
document emails through our queue against the same number of core emails
(same customers, same PDF, same SMTP sink) through core's, each run by
core's ``process_email_queue`` in a real child process with auto-commit, as
the cron runs it. Counted there: every SQL statement and every commit,
the cron's own commit at the end included."""

import json
import logging
import signal

from odoo.tests import tagged

from odoo.addons.account_document_email.models.mail_mail import SLICE_PARAM

from . import test_queue_processes as processes
from .common import SMTPTestServer
from .test_smtp_limits import SessionRecordingHandler

_logger = logging.getLogger(__name__)
EMAILS = 10
# several slices (sessions) for our emails: their per-slice costs (claim,
# connection, settling) are counted, spread over their emails only
SLICE = 4


@tagged("post_install", "-at_install")
class TestMailQueueCost(processes.ChildProcessCase):
    def _cleanup_cost(self, created, port):
        self._cleanup_company_server(created, port)

    def _slice(self, size):
        """The slice size the children read, committed; removed after."""
        with self.registry.cursor() as cr:
            cr.execute(
                "INSERT INTO ir_config_parameter (key, value) VALUES (%s, %s)",
                [SLICE_PARAM, str(size)],
            )
        self.addCleanup(self._unslice)

    def _unslice(self):
        with self.registry.cursor() as cr:
            cr.execute("DELETE FROM ir_config_parameter WHERE key = %s", [SLICE_PARAM])

    def test_ours_no_dearer_than_core_per_email(self):
        with SMTPTestServer(handler=SessionRecordingHandler()) as server:
            created = json.loads(self._run("cost", str(EMAILS), str(server.port)))
            self.addCleanup(self._cleanup_cost, created, server.port)
            self._slice(SLICE)
            self.assertEqual(len(created["ours"]), EMAILS)
            self.assertEqual(len(created["core"]), EMAILS)
            core = json.loads(self._run("count", *map(str, created["core"])))
            ours = json.loads(self._run("count", *map(str, created["ours"])))
            messages = list(server.messages)
        delivered = [m["message"]["Message-Id"] for m in messages]
        self.assertEqual(len(delivered), 2 * EMAILS, "every email delivered")
        self.assertEqual(len(set(delivered)), 2 * EMAILS, "none twice")
        committed = self._committed_mails(created["ours"]).values()
        self.assertEqual({state for state, _r, _m in committed}, {"sent"})
        ours_ids = {message_id for _s, _r, message_id in committed}
        sessions = {
            m["peer"] for m in messages if m["message"]["Message-Id"] in ours_ids
        }
        self.assertEqual(len(sessions), -(-EMAILS // SLICE), "one session a slice")
        # the batch's lines and the orders follow their emails (written once
        # for the session, and counted above)
        self.assertEqual(self._committed_states(created), ({"sent"}, {"sent"}))
        _logger.info(
            "mail queue per email: ours %.1f queries, %.2f commits; "
            "core %.1f queries, %.2f commits",
            ours["queries"] / EMAILS,
            ours["commits"] / EMAILS,
            core["queries"] / EMAILS,
            core["commits"] / EMAILS,
        )
        self.assertLessEqual(ours["queries"], core["queries"], (ours, core))
        # one commit an email, and the run's own at the end, as core's
        self.assertLessEqual(ours["commits"], core["commits"], (ours, core))
        self.assertLessEqual(ours["commits"], EMAILS + 1, (ours, core))

    def _committed_states(self, created):
        """The batch lines' states and the orders' delivery states, as
        committed."""
        with self.registry.cursor() as cr:
            cr.execute(
                "SELECT state FROM document_email_batch_line WHERE batch_id = %s",
                [created["batch"]],
            )
            lines = {row[0] for row in cr.fetchall()}
            cr.execute(
                "SELECT document_email_state FROM sale_order WHERE id IN %s",
                [tuple(created["orders"])],
            )
            return lines, {row[0] for row in cr.fetchall()}

    def test_killed_session_settled_by_the_next_run(self):
        """Killed while the server takes its third email: the session never
        writes its lines' and orders' states; the next run does, for the
        emails the dead worker sent, and sends the rest once."""
        handler = processes.KillingHandler(kill_at=3)
        with SMTPTestServer(handler=handler) as server:
            created = json.loads(self._run("cost", "6", str(server.port)))
            self.addCleanup(self._cleanup_cost, created, server.port)
            handler.victim = self._child("count", *map(str, created["ours"]))
            handler.victim.wait(timeout=300)
            self.assertEqual(handler.victim.returncode, -signal.SIGKILL, "killed")
            self.assertEqual(self._committed_states(created)[1], {"queued"})
            self._run("count", *map(str, created["ours"]))  # the next run
            delivered = [m["message"]["Message-Id"] for m in server.messages]
        self.assertEqual(len(delivered), 6)
        self.assertEqual(len(set(delivered)), 6, "none twice")
        with self.registry.cursor() as cr:
            cr.execute(
                "SELECT line.state, sale.document_email_state, mail.state "
                "FROM document_email_batch_line line "
                "JOIN sale_order sale ON sale.id = line.res_id "
                "JOIN mail_mail mail ON mail.id = line.mail_id "
                "WHERE line.batch_id = %s",
                [created["batch"]],
            )
            rows = sorted(cr.fetchall())
        self.assertEqual(
            rows,
            [("failed", "uncertain", "exception")] + [("sent", "sent", "sent")] * 5,
        )
