"""What the mail queue costs per email (issue 22, goal 2): the company's
document emails through our queue against the same number of core emails
(same customers, same PDF, same SMTP sink) through core's, each run by
core's ``process_email_queue`` in a real child process with auto-commit, as
the cron runs it. Counted there: every SQL statement and every commit,
the cron's own commit at the end included."""

import json
import logging

from odoo.tests import tagged

from . import test_queue_processes as processes
from .common import SMTPTestServer

_logger = logging.getLogger(__name__)
EMAILS = 10


@tagged("post_install", "-at_install")
class TestMailQueueCost(processes.ChildProcessCase):
    def _cleanup_cost(self, created, port):
        processes.TestBatchProcesses._cleanup_batch(self, created, port)
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

    def test_ours_no_dearer_than_core_per_email(self):
        with SMTPTestServer() as server:
            created = json.loads(self._run("cost", str(EMAILS), str(server.port)))
            self.addCleanup(self._cleanup_cost, created, server.port)
            self.assertEqual(len(created["ours"]), EMAILS)
            self.assertEqual(len(created["core"]), EMAILS)
            core = json.loads(self._run("count", *map(str, created["core"])))
            ours = json.loads(self._run("count", *map(str, created["ours"])))
            delivered = [m["message"]["Message-Id"] for m in server.messages]
        self.assertEqual(len(delivered), 2 * EMAILS, "every email delivered")
        self.assertEqual(len(set(delivered)), 2 * EMAILS, "none twice")
        states = {
            state for state, _r, _m in self._committed_mails(created["ours"]).values()
        }
        self.assertEqual(states, {"sent"})
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
