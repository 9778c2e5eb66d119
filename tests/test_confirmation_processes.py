"""The evidence chain of balance confirmations under real concurrency:
other database connections (processes, tests/confirmation_child.py) append
to the same campaign while the mail queue settles an email's outcome, or
while another append runs. The data is committed for them to see it; each
test removes it at the end."""

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta

import psycopg2
import requests

import odoo
from odoo import SUPERUSER_ID, Command, api, fields
from odoo.exceptions import UserError
from odoo.modules.registry import DummyRLock, Registry
from odoo.tests import TransactionCase, tagged
from odoo.tools import config, mute_logger

from odoo.addons.account_document_email.models.mail_mail import SLICE_PARAM

from ..models.res_config_settings import SMTP_SETTINGS
from .aged_common import DATE_AT
from .common import RecordingHandler, SMTPTestServer, real_smtp_delivery


class HeldSecondConnection:
    """A TCP relay to an SMTP server whose second connection is not passed
    on (no greeting) until the test releases it: a queue process then waits
    in the connect of its second session."""

    def __init__(self, port):
        self.port_to = port
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.arrived, self.release = threading.Event(), threading.Event()
        self.count = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client = self.sock.accept()[0]
            except OSError:
                return
            self.count += 1
            if self.count == 2:
                self.arrived.set()
                self.release.wait(120)
            upstream = socket.create_connection(("127.0.0.1", self.port_to))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source, target):
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                target.sendall(data)
        for end in (source, target):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def close(self):
        self.release.set()
        self.sock.close()


CHILD = os.path.join(os.path.dirname(__file__), "confirmation_child.py")

REQUEST = "account.confirmation.request"
CAMPAIGN = "account.confirmation.campaign"
EVENT = "account.confirmation.event"
OUTCOME = "account.confirmation.outcome"


class HeadProbeHandler(RecordingHandler):
    """While it reads an email, tries to lock the campaign's head from its
    own connection: "free" or "locked"."""

    def __init__(self, dbname):
        super().__init__()
        self.dbname = dbname
        self.campaign_id = None
        self.head = []

    async def handle_DATA(self, server, session, envelope):
        connection = odoo.sql_db.db_connect(self.dbname)
        with connection.cursor() as cr, mute_logger("odoo.sql_db"):
            try:
                cr.execute(
                    "SELECT id FROM account_confirmation_campaign "
                    "WHERE id = %s FOR UPDATE NOWAIT",
                    [self.campaign_id],
                )
                self.head.append("free")
            except psycopg2.errors.LockNotAvailable:
                self.head.append("locked")
            cr.rollback()
        return await super().handle_DATA(server, session, envelope)


@tagged("post_install", "-at_install")
class TestConfirmationConcurrency(TransactionCase):
    def _env(self, cr):
        return api.Environment(cr, SUPERUSER_ID, {})

    def _committed_campaign(self, port):
        """An approved, sent campaign of one request whose email waits in
        the queue (through a real SMTP server at ``port``), committed."""
        with self.registry.cursor() as cr:
            env = self._env(cr)
            partner = env["res.partner"].create(
                {"name": "Concurrent Customer", "email": "concurrent@example.com"}
            )
            campaign = env[CAMPAIGN].create(
                {
                    "name": "Concurrent",
                    "date_at": DATE_AT,
                    "deadline": fields.Date.today() + timedelta(days=20),
                    "reply_email": "auditor@audit.example.com",
                    "require_code": False,
                }
            )
            request = env[REQUEST].create(
                {
                    "campaign_id": campaign.id,
                    "partner_id": partner.id,
                    "currency_id": env.company.currency_id.id,
                    "our_balance": 100.0,
                }
            )
            campaign.action_approve()
            campaign.state = "sent"
            request.state = "queued"
            server = env["ir.mail_server"].create(
                {
                    "name": f"confirmation test {port}",
                    "smtp_host": "127.0.0.1",
                    "smtp_port": port,
                    "smtp_encryption": "none",
                    "sequence": 99,
                }
            )
            mail = env["mail.mail"].create(
                {
                    "model": REQUEST,
                    "res_id": request.id,
                    "subject": "Balance confirmation",
                    "body_html": "<p>Please confirm your balance.</p>",
                    "email_from": "billing@company.example.com",
                    "email_to": partner.email,
                    "mail_server_id": server.id,
                }
            )
            request.confirmation_message_ids = [Command.link(mail.mail_message_id.id)]
            # queued by the engine: its own email, not any mail of the message
            request.document_email_mail_id = mail
            ids = {
                "partner": partner.id,
                "campaign": campaign.id,
                "request": request.id,
                "server": server.id,
                "mail": mail.id,
            }
        self.addCleanup(self._cleanup, ids)
        return ids

    def _cleanup(self, ids):
        with self.registry.cursor() as cr:
            for table in ("account_confirmation_event", "account_confirmation_outcome"):
                cr.execute(
                    f"DELETE FROM {table} WHERE campaign_id = %s",
                    [ids["campaign"]],
                )
            cr.execute(
                "DELETE FROM mail_message WHERE (model = %s AND res_id = %s) "
                "OR (model = %s AND res_id = %s) "
                "OR (model = 'res.partner' AND res_id = %s)",
                [REQUEST, ids["request"], CAMPAIGN, ids["campaign"], ids["partner"]],
            )
            cr.execute(
                "DELETE FROM mail_followers WHERE (res_model = %s AND res_id = %s) "
                "OR (res_model = %s AND res_id = %s)",
                [REQUEST, ids["request"], CAMPAIGN, ids["campaign"]],
            )
            cr.execute(
                "DELETE FROM account_confirmation_campaign WHERE id = %s",
                [ids["campaign"]],
            )
            cr.execute("DELETE FROM res_partner WHERE id = %s", [ids["partner"]])
            cr.execute("DELETE FROM ir_mail_server WHERE id = %s", [ids["server"]])

    def _committed(self, ids):
        """What the database holds now (a fresh cursor)."""
        with self.registry.cursor() as cr:
            env = self._env(cr)
            campaign = env[CAMPAIGN].browse(ids["campaign"])
            events = campaign.event_ids.sorted("sequence")
            return {
                "mail": env["mail.mail"].browse(ids["mail"]).exists().state,
                "request": env[REQUEST].browse(ids["request"]).state,
                "events": events.mapped("event_type"),
                "sequences": events.mapped("sequence"),
                "previous": events.mapped("previous_hash"),
                "payloads": events.mapped("payload"),
                "intact": campaign._check_evidence()[0],
            }

    def _child(self, *args):
        settings = {
            "db": self.env.cr.dbname,
            "addons_path": config["addons_path"],
            "data_dir": config["data_dir"],
        }
        odoo_root = os.path.dirname(os.path.dirname(odoo.__file__))
        return subprocess.Popen(
            [sys.executable, CHILD, json.dumps(settings), *map(str, args)],
            env=dict(os.environ, PYTHONPATH=odoo_root),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def _finish(self, child):
        out, err = child.communicate(timeout=300)
        self.assertEqual(child.returncode, 0, err[-3000:])
        return out

    def _holding_the_head(self, ids):
        """A process that appended to the campaign's chain and has not
        committed yet (it holds the head's row), and its backend's pid; it
        commits once the test creates MARKER.go."""
        marker = os.path.join(tempfile.mkdtemp(), "held")
        holder = self._child("hold", ids["campaign"], ids["request"], marker)
        for __ in range(3000):
            if os.path.exists(marker) or holder.poll() is not None:
                break
            time.sleep(0.1)
        if not os.path.exists(marker):
            holder.kill()
            self.fail(holder.communicate()[1][-3000:])
        with open(marker) as file:
            return holder, int(file.read()), marker

    def _wait_until_blocked_by(self, pid, child):
        """Until another connection waits for a lock held by backend ``pid``
        (or ``child`` ended): "" when one does, else what the database's
        connections were doing."""
        for __ in range(3000):
            with self.registry.cursor() as cr:
                cr.execute(
                    "SELECT pid, state, wait_event, pg_blocking_pids(pid), "
                    "left(query, 60) FROM pg_stat_activity "
                    "WHERE datname = current_database()"
                )
                rows = cr.fetchall()
            if any(pid in row[3] for row in rows):
                return ""
            if child.poll() is not None:
                break
            time.sleep(0.1)
        return f"child ended: {child.poll()}, connections: {rows}"

    def test_outcome_committed_while_another_append_holds_the_head(self):
        """Another connection appends to the campaign (uncommitted) while the
        mail queue settles the email: the queue never waits for it, the
        outcome is committed (sent), the delivered entry follows once the
        head is free, by the outcomes' job, the chain holds."""
        with SMTPTestServer() as server:
            ids = self._committed_campaign(server.port)
            holder, pid, marker = self._holding_the_head(ids)
            queue = self._child("queue", ids["mail"])
            try:
                self.assertTrue(self._wait_until_blocked_by(pid, queue))
                # the outcome is committed while the head is still held
                before = self._committed(ids)
                self.assertEqual(before["mail"], "sent")
                self.assertEqual(before["request"], "sent")
                self.assertNotIn("delivered", before["events"])
            finally:
                open(f"{marker}.go", "w").close()
                self._finish(holder)
                self._finish(queue)
            self.assertEqual(len(server.messages), 1)
        # recorded with the outcome, appended by the outcomes' job
        self.assertEqual(self._committed(ids)["events"], ["approved", "opened"])
        self._run_outcomes_job()
        after = self._committed(ids)
        self.assertEqual(after["mail"], "sent")
        self.assertEqual(after["events"], ["approved", "opened", "delivered"])
        self.assertIn(f'"mail_id": {ids["mail"]}', after["payloads"][-1])
        self.assertTrue(after["intact"])

    def _run_outcomes_job(self):
        """The outcomes' job, as the cron runs it (its own cursor)."""
        with self.registry.cursor() as cr:
            return self._env(cr)[OUTCOME]._cron_append_pending()

    def test_deleted_email_does_not_lose_its_outcome(self):
        """The head is busy when the queue settles the email; then the
        request's chatter message (and with it the email) is deleted: the
        recorded outcome is still appended by the follow-up, once. Before,
        the follow-up rebuilt the entry from the mail.mail row, gone."""
        with SMTPTestServer() as server:
            ids = self._committed_campaign(server.port)
            holder, __, marker = self._holding_the_head(ids)
            try:
                self._finish(self._child("queue", ids["mail"]))
            finally:
                open(f"{marker}.go", "w").close()
                self._finish(holder)
        with self.registry.cursor() as cr:
            env = self._env(cr)
            mail = env["mail.mail"].browse(ids["mail"])
            self.assertEqual(mail.state, "sent")
            mail.mail_message_id.unlink()
            self.assertFalse(mail.exists())
        for __ in range(2):
            with self.registry.cursor() as cr:
                self._env(cr)[CAMPAIGN]._cron_follow_up()
        after = self._committed(ids)
        self.assertEqual(after["request"], "sent")
        self.assertEqual(after["events"], ["approved", "opened", "delivered"])
        self.assertIn(f'"mail_id": {ids["mail"]}', after["payloads"][-1])
        self.assertIn('"observed_at"', after["payloads"][-1])
        self.assertTrue(after["intact"])

    def _documents_server_company(self, port):
        """The main company sends its documents through its own SMTP
        settings (at ``port``), restored at the end."""
        with self.registry.cursor() as cr:
            company = self._env(cr).company
            fields_ = list(SMTP_SETTINGS.values())
            saved = {name: company[name] for name in fields_}
            company.write(
                {
                    "document_smtp_use_default": False,
                    "document_smtp_host": "127.0.0.1",
                    "document_smtp_port": port,
                    "document_smtp_encryption": "none",
                    "document_smtp_authentication": False,
                    "document_smtp_verify_certificate": False,
                }
            )
            server_id = company.document_mail_server_id.id
        self.addCleanup(self._restore_company, saved)
        return server_id

    def _restore_company(self, saved):
        with self.registry.cursor() as cr:
            self._env(cr).company.write(saved)

    def _documents_emails(self, ids, server_id):
        """The request's email, and another document email of the company
        sent after it (the queue sends in id order), through the company's
        documents server."""
        with self.registry.cursor() as cr:
            env = self._env(cr)
            request = env[REQUEST].browse(ids["request"])
            mail = env["mail.mail"].create(
                {
                    "model": REQUEST,
                    "res_id": request.id,
                    "subject": "Balance confirmation",
                    "body_html": "<p>Please confirm your balance.</p>",
                    "email_from": "billing@company.example.com",
                    "email_to": "concurrent@example.com",
                    "mail_server_id": server_id,
                }
            )
            request.confirmation_message_ids = [Command.link(mail.mail_message_id.id)]
            # queued by the engine: its own email, not any mail of the message
            request.document_email_mail_id = mail
            ids["mail"] = mail.id
            other = env["mail.mail"].create(
                {
                    "model": "res.partner",
                    "res_id": ids["partner"],
                    "subject": "Invoice INV/1",
                    "body_html": "<p>Your invoice.</p>",
                    "email_from": "billing@company.example.com",
                    "email_to": "concurrent@example.com",
                    "mail_server_id": server_id,
                }
            )
            return other.id

    def _committed_states(self, mail_ids):
        with self.registry.cursor() as cr:
            mails = self._env(cr)["mail.mail"].browse(mail_ids)
            return mails.mapped("state")

    def test_documents_server_queue_never_waits_for_the_head(self):
        """With the company's own documents server, the queue commits an
        email's outcome inside the sending of the next one. The head is held
        by another connection: the next email is sent and committed anyway,
        nobody waits for the holder, and the outcome's entry is appended by
        the outcomes' job once the head is free. Before, the outcome's
        append after that commit waited for the head with the next email's
        SMTP session open."""
        with SMTPTestServer() as server:
            ids = self._committed_campaign(server.port)
            server_id = self._documents_server_company(server.port)
            other_id = self._documents_emails(ids, server_id)
            holder, pid, marker = self._holding_the_head(ids)
            queue = self._child("queue", other_id, ids["mail"])
            try:
                # the queue ends without ever waiting for the holder
                self.assertTrue(self._wait_until_blocked_by(pid, queue))
                self._finish(queue)
                self.assertEqual(
                    self._committed_states([ids["mail"], other_id]), ["sent", "sent"]
                )
                self.assertEqual(self._committed(ids)["request"], "sent")
                self.assertNotIn("delivered", self._committed(ids)["events"])
            finally:
                open(f"{marker}.go", "w").close()
                self._finish(holder)
            subjects = [m["message"]["Subject"] for m in server.messages]
            self.assertEqual(subjects, ["Balance confirmation", "Invoice INV/1"])
        self.assertTrue(self._run_outcomes_job())
        after = self._committed(ids)
        self.assertEqual(after["events"], ["approved", "opened", "delivered"])
        self.assertTrue(after["intact"])

    def test_campaign_not_closed_while_outcomes_pending(self):
        """The email's outcome waits for a busy head: closing the campaign
        is refused (a UserError, not a wait); once the head is free, the
        closing appends the outcome first, then the closing entry."""
        with SMTPTestServer() as server:
            ids = self._committed_campaign(server.port)
            holder, __, marker = self._holding_the_head(ids)
            try:
                self._finish(self._child("queue", ids["mail"]))
                with self.registry.cursor() as cr:
                    campaign = self._env(cr)[CAMPAIGN].browse(ids["campaign"])
                    with self.assertRaisesRegex(UserError, "not in its evidence yet"):
                        campaign.action_close()
                    cr.rollback()
            finally:
                open(f"{marker}.go", "w").close()
                self._finish(holder)
        with self.registry.cursor() as cr:
            self._env(cr)[CAMPAIGN].browse(ids["campaign"]).action_close()
        after = self._committed(ids)
        self.assertEqual(after["events"], ["approved", "opened", "delivered", "closed"])
        self.assertTrue(after["intact"])

    def test_two_connections_append_at_once_without_fork(self):
        """Two connections append to the same chain at the same time: the
        second waits for the first's head, is refused, tries again as Odoo
        does and appends after it; then two more append 5 entries each at
        once. No entry shares its previous hash with another; the chain
        verifies."""
        ids = self._committed_campaign(0)
        first, pid, marker = self._holding_the_head(ids)
        second = self._child("append", ids["campaign"], 1)
        try:
            self.assertFalse(self._wait_until_blocked_by(pid, second))
        finally:
            open(f"{marker}.go", "w").close()
            self._finish(first)
        # refused once (serialization error), appended on its second try
        self.assertEqual(json.loads(self._finish(second)), [2])
        racers = [self._child("append", ids["campaign"], 5) for __ in range(2)]
        tries = [json.loads(self._finish(racer)) for racer in racers]
        self.assertEqual([len(t) for t in tries], [5, 5], "every append made it")
        after = self._committed(ids)
        self.assertEqual(after["sequences"], list(range(1, 14)))
        self.assertEqual(len(set(after["previous"])), 13, "no fork")
        self.assertTrue(after["intact"])

    def _pending_outcome(self, ids):
        """An outcome of the campaign's email recorded, not appended yet."""
        with self.registry.cursor() as cr:
            env = self._env(cr)
            request = env[REQUEST].browse(ids["request"])
            payload = {"mail_id": ids["mail"], "reason": "test"}
            env[OUTCOME]._record(request, ids["mail"], "undelivered", payload)

    def _in_job_order(self, campaigns):
        """``campaigns`` in the order the outcomes' job takes them."""
        with self.registry.cursor() as cr:
            order = list(self._env(cr)[OUTCOME]._get_pending().campaign_id.ids)
        return sorted(campaigns, key=lambda ids: order.index(ids["campaign"]))

    def test_outcomes_job_commits_each_campaign(self):
        """The outcomes' job, run as the cron runs it (another process),
        commits each campaign's entries before it waits for the next
        campaign's busy head; once the head is free, a next run appends the
        rest, and both chains hold."""
        campaigns = [self._committed_campaign(0) for __ in range(2)]
        for ids in campaigns:
            self._pending_outcome(ids)
        first, second = self._in_job_order(campaigns)
        holder, pid, marker = self._holding_the_head(second)
        job = self._child("outcomes", "60s")
        try:
            self.assertFalse(self._wait_until_blocked_by(pid, job))
            # committed while the job still waits for the second head
            self.assertEqual(
                self._committed(first)["events"], ["approved", "undelivered"]
            )
            self.assertNotIn("undelivered", self._committed(second)["events"])
            self.assertFalse(self._wait_until_blocked_by(pid, job))
        finally:
            open(f"{marker}.go", "w").close()
            self._finish(holder)
        self.assertFalse(json.loads(self._finish(job)), "the second head was busy")
        self.assertTrue(self._run_outcomes_job())
        for ids, events in (
            (first, ["approved", "undelivered"]),
            (second, ["approved", "opened", "undelivered"]),
        ):
            after = self._committed(ids)
            self.assertEqual(after["events"], events)
            self.assertTrue(after["intact"])

    def _set_slice_size(self, size):
        with self.registry.cursor() as cr:
            params = self._env(cr)["ir.config_parameter"]
            saved = params.get_param(SLICE_PARAM) or False
            params.set_param(SLICE_PARAM, size)
        self.addCleanup(self._restore_slice_size, saved)

    def _restore_slice_size(self, saved):
        with self.registry.cursor() as cr:
            self._env(cr)["ir.config_parameter"].set_param(SLICE_PARAM, saved)

    def _head_is_free(self, ids):
        with self.registry.cursor() as cr:
            try:
                cr.execute(
                    "SELECT id FROM account_confirmation_campaign WHERE id = %s "
                    "FOR NO KEY UPDATE NOWAIT",
                    [ids["campaign"]],
                    log_exceptions=False,
                )
            except Exception:  # noqa: BLE001 - LockNotAvailable
                return False
            finally:
                cr.rollback()
        return True

    def test_queue_holds_no_head_across_the_next_connect(self):
        """The queue sends the request's email in one session, then connects
        for the next (one email per session): while that connect waits, the
        campaign's head is free; the outcome's entry follows by the job."""
        with SMTPTestServer() as server:
            relay = HeldSecondConnection(server.port)
            self.addCleanup(relay.close)
            ids = self._committed_campaign(server.port)
            server_id = self._documents_server_company(relay.port)
            other_id = self._documents_emails(ids, server_id)
            self._set_slice_size(1)
            queue = self._child("queue", ids["mail"], other_id)
            try:
                self.assertTrue(relay.arrived.wait(120), "no second connection")
                self.assertTrue(self._head_is_free(ids), "head held across SMTP")
            finally:
                relay.release.set()
                self._finish(queue)
            self.assertEqual(len(server.messages), 2)
        self.assertEqual(self._committed(ids)["request"], "sent")
        self._run_outcomes_job()
        after = self._committed(ids)
        self.assertEqual(after["events"], ["approved", "delivered"])
        self.assertTrue(after["intact"])

    @contextlib.contextmanager
    def _http_on_own_connections(self):
        """The test server answers while the test run holds the registry's
        lock: released as HttpCase's test mode does, without its shared
        cursor (each request has its own connection, on committed data)."""
        saved = Registry._lock
        Registry._lock = DummyRLock()
        try:
            yield
        finally:
            Registry._lock = saved

    def _page_while_busy(self, request_id, token):
        """The partner presses the page's button (a real HTTP request, its
        own connection): the landing's form, then its POST."""
        base = f"http://127.0.0.1:{config['http_port']}/my/confirmation/{request_id}"
        session = requests.Session()
        landing = session.get(f"{base}?access_token={token}", timeout=60)
        self.assertEqual(landing.status_code, 200)
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', landing.text).group(1)
        return session.post(
            f"{base}/open",
            data={"access_token": token, "csrf_token": csrf},
            timeout=60,
        )

    def test_code_email_leaves_after_commit_with_the_head_free(self):
        """The page queues the code and appends its entry under the
        campaign's head: the code email leaves after the commit, so while
        the SMTP server reads it another connection locks the head at once.
        Before, the head stayed locked through the whole SMTP exchange."""
        handler = HeadProbeHandler(self.env.cr.dbname)
        with SMTPTestServer(handler=handler) as server:
            ids = self._committed_campaign(server.port)
            self._documents_server_company(server.port)
            with self.registry.cursor() as cr:
                cr.execute(
                    "UPDATE account_confirmation_campaign SET require_code = true "
                    "WHERE id = %s",
                    [ids["campaign"]],
                )
                cr.execute(
                    "UPDATE account_confirmation_request SET state = 'opened' "
                    "WHERE id = %s",
                    [ids["request"]],
                )
                token = self._env(cr)[REQUEST].browse(ids["request"])
                token = token._get_confirmation_token()
            handler.campaign_id = ids["campaign"]
            with real_smtp_delivery(), self._http_on_own_connections():
                response = self._page_while_busy(ids["request"], token)
            self.assertEqual(response.status_code, 200)
            self.assertEqual(len(server.messages), 1, "the code email")
        self.assertEqual(handler.head, ["free"])
        self.assertEqual(self._committed(ids)["events"][-1], "code_sent")

    def test_busy_head_sends_no_code_and_shows_no_balance(self):
        """Opened before, no code running: the partner opens the page again
        while another connection holds the campaign's head. The page answers
        503 with a try-again message only (no balance, no name), no code
        email is queued nor reaches the server, no entry is appended. Before,
        the code left by SMTP before the savepoint rolled its record back."""
        with SMTPTestServer() as server:
            ids = self._committed_campaign(server.port)
            self._documents_server_company(server.port)
            with self.registry.cursor() as cr:
                cr.execute(
                    "UPDATE account_confirmation_campaign SET require_code = true "
                    "WHERE id = %s",
                    [ids["campaign"]],
                )
                cr.execute(
                    "UPDATE account_confirmation_request SET state = 'opened' "
                    "WHERE id = %s",
                    [ids["request"]],
                )
                token = self._env(cr)[REQUEST].browse(ids["request"])
                token = token._get_confirmation_token()
            holder, __, marker = self._holding_the_head(ids)
            try:
                with real_smtp_delivery(), self._http_on_own_connections():
                    response = self._page_while_busy(ids["request"], token)
            finally:
                open(f"{marker}.go", "w").close()
                self._finish(holder)
            self.assertEqual(response.status_code, 503)
            self.assertIn("try", response.text)
            for shown in ("100.00", "100,00", "Concurrent Customer"):
                self.assertNotIn(shown, response.text)
            self.assertFalse(server.messages, "no code email reached the server")
        with self.registry.cursor() as cr:
            cr.execute(
                "SELECT count(*) FROM mail_mail m JOIN mail_message g "
                "ON g.id = m.mail_message_id WHERE m.email_to = %s",
                ["concurrent@example.com"],
            )
            queued = cr.fetchone()[0]
        self.assertEqual(queued, 1, "the request's own email only, no code email")
        # the holder's entry only
        self.assertEqual(self._committed(ids)["events"], ["approved", "opened"])
