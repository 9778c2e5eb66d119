"""Uninstalling leaves the database as it was; upgrading changes nothing.
Runs on a real database of its own (this test database cannot uninstall the
module under test): Odoo in separate processes installs, upgrades and
uninstalls the add-on as an administrator would (tests/uninstall_child.py)."""

import json
import os
import shutil
import subprocess
import sys

import odoo
from odoo.tests import TransactionCase, tagged
from odoo.tools import config

HERE = os.path.dirname(__file__)
ODOO_ROOT = os.path.dirname(os.path.dirname(odoo.__file__))
DEPENDENCIES = "account,sale,account_debit_note,account_check_printing"


@tagged("post_install", "-at_install")
class TestUninstall(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.db = f"{config['db_name'].split(',')[0]}_uninstall"[:63]
        cls.settings = {
            "db": cls.db,
            "addons_path": config["addons_path"],
            "data_dir": config["data_dir"],
        }

    def _postgres(self, command):
        args = [command]
        for option, key in (("-h", "db_host"), ("-p", "db_port"), ("-U", "db_user")):
            if config.get(key):
                args += [option, str(config[key])]
        if command == "dropdb":
            args.append("--if-exists")
        subprocess.run([*args, self.db], check=command == "createdb")

    def _drop(self):
        self._postgres("dropdb")
        shutil.rmtree(os.path.join(config["data_dir"], "filestore", self.db), True)

    def _run(self, args, timeout=1800):
        done = subprocess.run(
            [sys.executable, *args],
            env=dict(os.environ, PYTHONPATH=ODOO_ROOT),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,  # the exit code is asserted with the output
        )
        self.assertEqual(done.returncode, 0, done.stderr[-3000:])
        return done.stdout

    def _odoo(self, *args):
        """odoo-bin on the database of this test, as an administrator runs it."""
        db_options = [
            f"--{key}={config[key]}"
            for key in ("db_host", "db_port", "db_user", "db_password")
            if config.get(key)
        ]
        self._run(
            [
                os.path.join(ODOO_ROOT, "odoo-bin"),
                "-d",
                self.db,
                f"--addons-path={config['addons_path']}",
                f"--data-dir={config['data_dir']}",
                "--without-demo=all",
                "--no-http",
                "--max-cron-threads=0",
                "--log-level=warn",
                "--stop-after-init",
                *db_options,
                *args,
            ]
        )

    def _child(self, mode, *args):
        script = os.path.join(HERE, "uninstall_child.py")
        output = self._run([script, json.dumps(self.settings), mode, *args])
        return json.loads(output)

    def test_upgrade_keeps_uninstall_removes_reinstall_starts_clean(self):
        self._drop()
        self._postgres("createdb")
        self.addCleanup(self._drop)
        # a database that never had the add-on, with a server made by hand
        self._odoo("-i", DEPENDENCIES)
        before = self._child("before")

        self._odoo("-i", "account_document_email")
        mail_ids = json.dumps(self._child("configure"))
        configured = self._child("state", mail_ids)
        self.assertEqual(
            configured["company"]["document_smtp_host"], "smtp.acme.example"
        )
        names = {server["name"] for server in configured["servers"]}
        self.assertEqual(names, {"Hand-made", "My Company (documents)"})
        self.assertEqual(configured["mails"]["queued"][0], "outgoing")
        self.assertEqual(configured["choices"], before, "Odoo's choice unchanged")

        with self.subTest("upgrade (-u) keeps every setting and server"):
            self._odoo("-u", "account_document_email")
            self.assertEqual(self._child("state", mail_ids), configured)

        self._child("uninstall")
        after = self._child("state", mail_ids)
        self.assertEqual(after["module"], "uninstalled")
        hand_made = [s for s in configured["servers"] if s["name"] == "Hand-made"]
        self.assertEqual(after["servers"], hand_made, "ours gone, hand-made kept")
        self.assertEqual(after["choices"], before)
        state, reason, server, notifications = after["mails"]["queued"]
        self.assertEqual(
            (state, server, notifications), ("exception", None, ["exception"])
        )
        self.assertIn("was uninstalled", reason)
        self.assertEqual(after["mails"]["sent"], ["sent", False, None, ["sent"]])

        with self.subTest("reinstalling starts clean"):
            self._odoo("-i", "account_document_email")
            again = self._child("state", mail_ids)
            self.assertEqual(again["servers"], hand_made)
            self.assertTrue(again["company"]["document_smtp_use_default"])
            self.assertFalse(again["company"]["document_smtp_host"])
            self.assertFalse(again["company"]["document_smtp_pass"])
            self.assertEqual(again["choices"], before)
