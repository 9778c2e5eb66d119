"""The payment reminders job in real separate processes
(tests/reminder_child.py) against this test database and a real SMTP
server: killed between rendering and queueing, then run again, and run
twice: each reminder is delivered once."""

import json
import os
import signal
import subprocess
import sys

import odoo
from odoo.tests import TransactionCase, tagged
from odoo.tools import config

from .common import SMTPTestServer

CHILD = os.path.join(os.path.dirname(__file__), "reminder_child.py")


@tagged("post_install", "-at_install")
class TestReminderProcess(TransactionCase):
    def _child(self, *args):
        settings = {
            "db": self.env.cr.dbname,
            "addons_path": config["addons_path"],
            "data_dir": config["data_dir"],
        }
        odoo_root = os.path.dirname(os.path.dirname(odoo.__file__))
        child = subprocess.Popen(
            [sys.executable, CHILD, json.dumps(settings), *args],
            env=dict(os.environ, PYTHONPATH=odoo_root),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        out, err = child.communicate(timeout=300)
        return child.returncode, out, err

    def _run(self, *args):
        returncode, out, err = self._child(*args)
        self.assertEqual(returncode, 0, err[-3000:])
        return out

    def _committed(self, ids):
        """The committed reminders' delivery states, their emails' states
        and their batch lines' stages."""
        with self.registry.cursor() as cr:
            env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {})
            reminders = env["document.email.statement"].search(
                [("document", "=", "reminder"), ("partner_id", "in", ids)]
            )
            mails = env["mail.mail"].search(
                [("model", "=", reminders._name), ("res_id", "in", reminders.ids)]
            )
            lines = env["document.email.batch.line"].search(
                [
                    ("batch_id.res_model", "=", reminders._name),
                    ("res_id", "in", reminders.ids),
                ]
            )
            return (
                sorted(reminders.mapped("mail_state")),
                sorted(mails.mapped("state")),
                sorted(lines.mapped("stage")),
            )

    def test_killed_between_rendering_and_queueing(self):
        with SMTPTestServer() as server:
            ids = json.loads(self._run("setup", str(server.port)))
            self.addCleanup(self._run, "cleanup", json.dumps(ids))
            returncode, _out, _err = self._child("run-killed")
            self.assertEqual(returncode, -signal.SIGKILL, "killed")
            # the reminders were given (committed) but no email survived
            self.assertEqual(
                self._committed(ids), (["queued"] * 3, [], ["pending"] * 3)
            )
            self.assertFalse(server.messages)
            self._run("run")  # the next run resumes the batch, adds nothing
            self._run("run")
            recipients = [address for m in server.messages for address in m["rcpt_tos"]]
        self.assertEqual(
            sorted(recipients), [f"reminder{n}@example.com" for n in range(3)]
        )
        self.assertEqual(
            self._committed(ids), (["sent"] * 3, ["sent"] * 3, ["queued"] * 3)
        )
