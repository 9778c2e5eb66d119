"""Runs the payment reminders job in a separate process, as the cron would,
for tests/test_reminder_process.py.

usage: python reminder_child.py CONFIG_JSON MODE
  MODE "setup PORT": a reminder level at 2,000 days (the company's others
        archived: no demo invoice is that old) and customers with an invoice
        2,010 days overdue in the main company, sent through a server at
        127.0.0.1:PORT; commit, print the customers' ids
  MODE "run": the reminders job, its batch, then the mail queue, as the
        crons do
  MODE "run-killed": the reminders job (committed), then its batch: the
        process kills itself once the first chunk's emails are rendered and
        created, before that chunk commits
  MODE "cleanup IDS_JSON": remove what "setup" and "run" left
"""

import json
import sys

from child_common import child_registry
from queue_child import kill_in_create_mails, without_report_assets

from odoo import SUPERUSER_ID, Command, api, fields


def setup(env, port):
    env.company.write(
        {
            "document_smtp_use_default": False,
            "document_smtp_host": "127.0.0.1",
            "document_smtp_port": port,
            "document_smtp_encryption": "none",
            "document_smtp_authentication": False,
            "email": "billing@company.example.com",
        }
    )
    Level = env["account.reminder.level"]
    Level.search([("company_id", "=", env.company.id)]).active = False
    Level.create(
        {
            "name": "Process reminder",
            "days": 2000,
            "mail_template_id": env.ref(
                "account_document_email.mail_template_payment_reminder"
            ).id,
        }
    )
    customers = env["res.partner"].create(
        [
            {"name": f"Reminder Customer {n}", "email": f"reminder{n}@example.com"}
            for n in range(3)
        ]
    )
    create_invoices(env, customers)
    return customers.ids


def create_invoices(env, customers):
    due = fields.Date.subtract(fields.Date.context_today(env.user), days=2010)
    env["account.move"].create(
        [
            {
                "move_type": "out_invoice",
                "partner_id": customer.id,
                "invoice_date": due,
                "invoice_date_due": due,
                "invoice_payment_term_id": False,
                "invoice_line_ids": [
                    Command.create(
                        {
                            "name": "Service",
                            "price_unit": 100.0 * (n + 1),
                            "tax_ids": [],
                        }
                    )
                ],
            }
            for n, customer in enumerate(customers)
        ]
    ).action_post()


def cleanup(env, ids):
    env["document.email.batch"].search(
        [("res_model", "=", "document.email.statement")]
    ).unlink()
    logs = env["document.email.statement"].search([("partner_id", "in", ids)])
    env["mail.mail"].search(
        [("model", "=", logs._name), ("res_id", "in", logs.ids)]
    ).unlink()
    logs.unlink()
    moves = env["account.move"].search([("partner_id", "in", ids)])
    moves.button_draft()
    moves.with_context(force_delete=True).unlink()
    env["res.partner"].browse(ids).unlink()
    Level = env["account.reminder.level"].with_context(active_test=False)
    Level.search([("name", "=", "Process reminder")]).unlink()
    Level.search([("company_id", "=", env.company.id)]).active = True


def run(env, cr):
    env["account.reminder.level"]._cron_send_payment_reminders()
    cr.commit()  # pylint: disable=invalid-commit
    # the run's batch, rendered and queued as its scheduled job does
    while env["document.email.batch"]._process_chunk(auto_commit=True):
        pass
    env["mail.mail"].process_email_queue()


def main():
    _config, mode, args, registry = child_registry()
    without_report_assets()
    # the cursor commits when the block ends, as a cron job does
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        if mode == "setup":
            sys.stdout.write(json.dumps(setup(env, int(args[0]))))
        elif mode == "run":
            run(env, cr)
        elif mode == "run-killed":
            kill_in_create_mails(1)
            run(env, cr)
        elif mode == "cleanup":
            cleanup(env, json.loads(args[0]))


if __name__ == "__main__":
    main()
