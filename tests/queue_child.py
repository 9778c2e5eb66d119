"""Runs Odoo's mail queue in a separate process, as the cron would, for the
tests that kill it or race it (tests/test_queue_processes.py).

usage: python queue_child.py CONFIG_JSON MODE
  MODE "create N PORT": queue N emails through a server at 127.0.0.1:PORT,
        commit, print their ids
  MODE "queue": run the mail queue (auto-commit, as the cron does)
  MODE "send ID [ID...]": send these emails now, as the wizard does
  MODE "batch N PORT": N sale orders to N customers, sent as one batch from
        the wizard by the administrator (through a server at PORT); prints ids
  MODE "process SIZE [KILL_AT]": run the batch job in chunks of SIZE, each
        committed, as the scheduler does; prints how many chunks it did. With
        KILL_AT, the process kills itself right after creating the emails of
        its KILL_AT-th chunk, before committing (killed during queueing).
  MODE "process-pause SIZE MARKER": as "process", but once the first chunk
        is committed, right after the next file reaches the filestore (its
        attachment row not inserted yet), creates MARKER and waits until the
        test creates MARKER.go (at most 60 s).
  MODE "gc": Odoo's filestore GC, as the auto-vacuum runs it; prints what
        it returned (false: it could not lock ir_attachment and gave up).
Both run again after a concurrent update, as Odoo does with a request (and
the cron on its next run): the one that loses the race on an email fails
there before sending it.
"""

import json
import os
import signal
import sys

import odoo
from odoo import SUPERUSER_ID, Command, api
from odoo.service.model import retrying


def create_server(env, port):
    return env["ir.mail_server"].create(
        {
            "name": f"queue test {port}",
            "smtp_host": "127.0.0.1",
            "smtp_port": port,
            "smtp_encryption": "none",
            "from_filter": "queue@company.example.com",
            "document_company_id": env.company.id,
            "sequence": 99,
        }
    )


def create_batch(env, count, port):
    """The company's own documents server (or Odoo's first server) points at
    the test SMTP server meanwhile; the test restores it."""
    server = env.company._get_document_mail_server()
    if not server:
        server = env["ir.mail_server"].create(
            {"name": f"queue test {port}", "smtp_host": "127.0.0.1", "sequence": 1}
        )
    saved = server.read(["smtp_host", "smtp_port", "smtp_encryption"])[0]
    server.write(
        {"smtp_host": "127.0.0.1", "smtp_port": port, "smtp_encryption": "none"}
    )
    env = env(user=env.ref("base.user_admin"))
    partners = env["res.partner"].create(
        [
            {"name": f"Batch customer {n}", "email": f"customer{n}@example.com"}
            for n in range(count)
        ]
    )
    product = env["product.product"].create(
        {"name": "Batch test service", "type": "service", "list_price": 10.0}
    )
    orders = env["sale.order"].create(
        [
            {
                "partner_id": partner.id,
                "order_line": [Command.create({"product_id": product.id})],
            }
            for partner in partners
        ]
    )
    wizard = (
        env["document.email.wizard"]
        .with_context(active_model="sale.order", active_ids=orders.ids)
        .create({})
    )
    action = wizard.action_send()
    return {
        "batch": action["res_id"],
        "orders": orders.ids,
        "partners": partners.ids,
        "product": product.product_tmpl_id.id,
        "server": saved,
    }


def kill_in_create_mails(kill_at):
    """Kill this process once the emails of the kill_at-th chunk exist,
    before the chunk commits."""
    from odoo.addons.account_document_email.wizards.document_email_wizard import (
        DocumentEmailWizard,
    )

    original = DocumentEmailWizard._create_mails
    calls = []

    def _create_mails(self, values_list):
        mails = original(self, values_list)
        calls.append(len(mails))
        if len(calls) == kill_at:
            mails.flush_recordset()
            os.kill(os.getpid(), signal.SIGKILL)
        return mails

    DocumentEmailWizard._create_mails = _create_mails


def without_report_assets():
    """wkhtmltopdf fetches the report's CSS from the server Odoo runs on:
    while the tests run, that server waits for the loading registry, so the
    children point it at a closed port (a real PDF, without styles)."""
    from odoo.addons.base.models.ir_actions_report import IrActionsReport

    IrActionsReport._get_report_url = lambda self, layout=None: "http://127.0.0.1:9"


CHUNKS_DONE = []


def pause_after_a_file(marker):
    """The moment Odoo's filestore GC must not run: a file written, its
    attachment row not inserted yet (in a chunk after the first, which may
    also make the report's assets)."""
    import time

    from odoo.addons.base.models.ir_attachment import IrAttachment

    original = IrAttachment._file_write

    def _file_write(self, bin_value, checksum):
        fname = original(self, bin_value, checksum)
        if CHUNKS_DONE and not os.path.exists(marker):
            with open(marker, "w") as file:
                file.write(fname)
            deadline = time.time() + 60
            while not os.path.exists(f"{marker}.go") and time.time() < deadline:
                time.sleep(0.05)
        return fname

    IrAttachment._file_write = _file_write


def process_batches(registry, size):
    chunks = 0
    while True:
        with registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            done = env["document.email.batch"]._process_chunk(
                chunk_size=size, auto_commit=True
            )
        if not done:
            return chunks
        chunks += 1
        CHUNKS_DONE.append(done)


def main():
    config, mode, *args = json.loads(sys.argv[1]), sys.argv[2], *sys.argv[3:]
    odoo.tools.config.parse_config(
        [
            "-d",
            config["db"],
            "--addons-path",
            config["addons_path"],
            "--data-dir",
            config["data_dir"],
            "--log-level",
            "warn",
        ]
    )
    registry = odoo.modules.registry.Registry(config["db"])
    if mode in ("process", "process-pause"):
        without_report_assets()
        if mode == "process-pause":
            pause_after_a_file(args[1])
        elif len(args) > 1:
            kill_in_create_mails(int(args[1]))
        sys.stdout.write(json.dumps(process_batches(registry, int(args[0]))))
        return
    # the cursor commits when the block ends, as a cron job does
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        if mode == "create":
            count, port = int(args[0]), int(args[1])
            server = create_server(env, port)
            mails = env["mail.mail"].create(
                [
                    {
                        "subject": f"Queue test {n}",
                        "body_html": f"<p>Email {n}</p>",
                        "email_from": "queue@company.example.com",
                        "email_to": f"customer{n}@example.com",
                        "mail_server_id": server.id,
                        "auto_delete": False,
                    }
                    for n in range(count)
                ]
            )
            sys.stdout.write(json.dumps(mails.ids))
        elif mode == "batch":
            sys.stdout.write(json.dumps(create_batch(env, int(args[0]), int(args[1]))))
        elif mode == "queue":
            retrying(env["mail.mail"].process_email_queue, env)
        elif mode == "send":
            mails = env["mail.mail"].browse([int(i) for i in args])
            retrying(lambda: mails.send(raise_exception=False), env)
        elif mode == "gc":
            sys.stdout.write(json.dumps(env["ir.attachment"]._gc_file_store()))


if __name__ == "__main__":
    main()
