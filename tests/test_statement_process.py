"""The scheduled statements job in real separate processes
(tests/statement_child.py) against this test database and a real SMTP
server: run twice, nothing is sent twice."""

import json
import os
import subprocess
import sys
from datetime import timedelta

import odoo
from odoo import fields
from odoo.tests import TransactionCase, tagged
from odoo.tools import config

from .common import SMTPTestServer, free_port, pdf_parts

CHILD = os.path.join(os.path.dirname(__file__), "statement_child.py")


@tagged("post_install", "-at_install")
class TestStatementProcess(TransactionCase):
    def _run(self, *args):
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
        self.assertEqual(child.returncode, 0, err[-3000:])
        return out

    def _committed(self, ids):
        with self.registry.cursor() as cr:
            env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {})
            customers = env["res.partner"].browse(ids)
            logs = env["document.email.statement"].search([("partner_id", "in", ids)])
            mails = env["mail.mail"].search(
                [("model", "=", logs._name), ("res_id", "in", logs.ids)]
            )
            return (
                {c.email: c.statement_next_date for c in customers},
                sorted(mails.mapped("state")),
            )

    def test_job_run_twice_sends_nothing_twice(self):
        with SMTPTestServer() as server:
            # PDFs without their style sheets: no server to fetch them from
            # here (the test server answers no other process during a test)
            report_url = f"http://127.0.0.1:{free_port()}"
            ids = json.loads(self._run("setup", str(server.port), report_url))
            self.addCleanup(self._run, "cleanup", json.dumps(ids))
            self._run("run")
            first = len(server.messages)
            self._run("run")  # the next run, the same day
            delivered = [m["message"]["Message-Id"] for m in server.messages]
            recipients = [address for m in server.messages for address in m["rcpt_tos"]]
            pdfs = [pdf_parts(m["message"]) for m in server.messages]
        self.assertEqual(len(delivered), first, "the second run sent nothing")
        self.assertTrue(all(len(parts) == 1 for parts in pdfs), "one PDF each")
        self.assertEqual(len(delivered), len(set(delivered)))
        for n in range(3):
            self.assertEqual(recipients.count(f"process{n}@example.com"), 1)
        next_dates, states = self._committed(ids)
        week_later = fields.Date.context_today(self.env.user) + timedelta(days=7)
        self.assertEqual(
            next_dates, {f"process{n}@example.com": week_later for n in range(3)}
        )
        self.assertEqual(states, ["sent"] * 3)
