"""Payment reminders for many customers on a throwaway database: one run of
the daily job, then its batch in bounded chunks, as the scheduler runs
them, with no HTTP request anywhere.

Run by hand for its figures (``make test`` runs it once with ``--smoke``),
with the Odoo venv's Python::

    /opt/ade/venv/bin/python bench/reminders.py [--customers 1000]
        [--smoke] [--pdfs] [--addons /opt/ade/addons] [--template DB] [--keep]

Installs the add-on in a new database (or copies ``--template``, a database
with the add-on installed, as ``make test`` does for its smoke run), creates
``customers`` customers with an invoice 10 days overdue and a reminder level
at +7 days (attaching the invoices' PDFs only with ``--pdfs``), points the
company's outgoing server at a local SMTP sink, then times: the job run (it
records the reminders and one batch, nothing rendered), the batch's chunks
(their count and largest size: bounded by the batch chunk size), the mail
queue; checks that every customer received exactly one reminder and that a
second job run queues none. ``--smoke`` runs the smallest size (5
customers). The database is dropped at the end unless ``--keep``.
"""

import argparse
import os
import subprocess
import sys
import time
from datetime import timedelta

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from batch_email import (
    ODOO_SRC,
    Sink,
    admin_env,
    drain_queue,
    free_port,
    install,
    open_registry,
    say,
)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--smoke", action="store_true", help="5 customers")
    parser.add_argument("--pdfs", action="store_true", help="attach the invoices")
    parser.add_argument(
        "--addons", default=os.environ.get("ADE_ADDONS", "/opt/ade/addons")
    )
    parser.add_argument("--db", default=f"ade_bench_reminders_{int(time.time())}")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument(
        "--template",
        help="create the database as a copy of this one (the add-on "
        "installed, without demo data; its filestore copied too) instead of "
        "installing from scratch",
    )
    args = parser.parse_args()
    if args.smoke:
        args.customers = 5
    return args


def setup_company(env, args, smtp_port):
    """A chart of accounts, the company sending through the sink, and the
    reminder level at +7 days."""
    company = env.company
    if not env["account.account"].search_count(
        [("account_type", "=", "asset_receivable")]
    ):
        env["account.chart.template"].try_loading("generic_coa", company)
    # PDFs without their style sheets: no HTTP server, no request
    env["ir.config_parameter"].set_param(
        "report.url", f"http://127.0.0.1:{free_port()}"
    )
    company.write(
        {
            "email": "billing@company.example.com",
            "document_smtp_use_default": False,
            "document_smtp_host": "127.0.0.1",
            "document_smtp_port": smtp_port,
            "document_smtp_encryption": "none",
            "document_smtp_authentication": False,
        }
    )
    env["account.reminder.level"].create(
        {
            "name": "Friendly reminder",
            "days": 7,
            "mail_template_id": env.ref(
                "account_document_email.mail_template_payment_reminder"
            ).id,
            "attach_invoices": args.pdfs,
        }
    )


def create_customers(env, numbers, due):
    """Customers with one posted invoice each, due ``due``."""
    from odoo import Command

    partners = env["res.partner"].create(
        [
            {"name": f"Reminder {n:05d}", "email": f"r{n}@bench.example.com"}
            for n in numbers
        ]
    )
    env["account.move"].create(
        [
            {
                "move_type": "out_invoice",
                "partner_id": partner.id,
                "invoice_date": due,
                "invoice_date_due": due,
                "invoice_payment_term_id": False,
                "invoice_line_ids": [
                    Command.create(
                        {"name": "Service", "price_unit": 100.0, "tax_ids": []}
                    )
                ],
            }
            for partner in partners
        ]
    ).action_post()


def build_data(env, args, smtp_port):
    """The company and level, then the customers and their invoices 10 days
    overdue, committed by hundreds."""
    from odoo import fields

    started = time.monotonic()
    setup_company(env, args, smtp_port)
    due = fields.Date.context_today(env.user) - timedelta(days=10)
    for start in range(0, args.customers, 100):
        create_customers(env, range(start, min(start + 100, args.customers)), due)
        env.cr.commit()
    say(f"{args.customers} customers built in {time.monotonic() - started:.1f} s")


def run_job(env):
    """The daily job once (committed): (reminders recorded, seconds)."""
    Statement = env["document.email.statement"]
    before = Statement.search_count([("document", "=", "reminder")])
    started = time.monotonic()
    env["account.reminder.level"]._cron_send_payment_reminders()
    env.cr.commit()
    elapsed = time.monotonic() - started
    return Statement.search_count([("document", "=", "reminder")]) - before, elapsed


def run_chunks(env):
    """The batch's scheduled job, chunk after chunk, each committed:
    (chunks, largest chunk, seconds)."""
    Batch = env["document.email.batch"]
    started = time.monotonic()
    sizes = []
    while done := Batch._process_chunk(auto_commit=True):
        sizes.append(done)
    return len(sizes), max(sizes, default=0), time.monotonic() - started


def bench(env, args, sink):
    count, job_time = run_job(env)
    say(f"job run: {count} reminders recorded in {job_time:.2f} s (nothing rendered)")
    chunks, largest, chunk_time = run_chunks(env)
    size = env["document.email.batch"]._get_chunk_size()
    say(
        f"batch: {chunks} chunks of at most {largest} (chunk size {size}) "
        f"in {chunk_time:.1f} s"
    )
    started = time.monotonic()
    drain_queue(env, time.monotonic() + 1800)
    say(f"mail queue: {sink.messages} delivered in {time.monotonic() - started:.1f} s")
    again, _elapsed = run_job(env)
    failures = []
    if count != args.customers or sink.messages != args.customers:
        failures.append(f"expected {args.customers} reminders, one each")
    if largest > size:
        failures.append("a chunk exceeded the chunk size")
    if again:
        failures.append(f"a second run recorded {again} reminders")
    return failures


def main():
    from aiosmtpd.controller import Controller

    args = parse_args()
    sys.path.insert(0, ODOO_SRC)
    install(args)
    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        registry = open_registry(args)
        with registry.cursor() as cr:
            env = admin_env(cr)
            build_data(env, args, port)
            failures = bench(env, args, sink)
    finally:
        controller.stop()
        if not args.keep:
            import odoo

            odoo.sql_db.close_all()
            subprocess.run(["dropdb", "--if-exists", args.db], check=False)
    for failure in failures:
        say(f"FAILED: {failure}")
    say("OK" if not failures else "FAILED")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
