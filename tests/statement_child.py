"""Runs the scheduled statements job in a separate process, as the cron
would, for tests/test_statement_process.py.

usage: python statement_child.py CONFIG_JSON MODE
  MODE "setup PORT REPORT_URL": customers with open invoices in the main
        company, whose statements are due today (weekly, today's weekday),
        sent through a server at 127.0.0.1:PORT, their PDFs' assets taken
        from REPORT_URL; commit, print the customers' ids
  MODE "run": the scheduled job, its batch, then the mail queue, as the crons do
  MODE "cleanup IDS_JSON": remove what "setup" and "run" left
"""

import json
import sys

from child_common import child_registry

from odoo import SUPERUSER_ID, Command, api, fields


def setup(env, port, report_url):
    env["ir.config_parameter"].set_param("report.url", report_url)
    company = env.company
    company.write(
        {
            "document_smtp_use_default": False,
            "document_smtp_host": "127.0.0.1",
            "document_smtp_port": port,
            "document_smtp_encryption": "none",
            "document_smtp_authentication": False,
            "email": "billing@company.example.com",
            "statement_schedule": "weekly",
            "statement_weekday": str(fields.Date.context_today(env.user).weekday()),
        }
    )
    customers = env["res.partner"].create(
        [
            {"name": f"Process Customer {n}", "email": f"process{n}@example.com"}
            for n in range(3)
        ]
    )
    invoices = env["account.move"].create(
        [
            {
                "move_type": "out_invoice",
                "partner_id": customer.id,
                "invoice_date": fields.Date.context_today(env.user),
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
    )
    invoices.action_post()
    return customers.ids


def cleanup(env, ids):
    customers = env["res.partner"].browse(ids)
    env["document.email.batch"].search([("res_model", "=", "res.partner")]).unlink()
    logs = env["document.email.statement"].search([("partner_id", "in", ids)])
    env["mail.mail"].search(
        [("model", "=", logs._name), ("res_id", "in", logs.ids)]
    ).unlink()
    logs.unlink()
    moves = env["account.move"].search([("partner_id", "in", ids)])
    moves.button_draft()
    moves.with_context(force_delete=True).unlink()
    customers.unlink()
    env.company.statement_schedule = "off"
    env["ir.config_parameter"].set_param("report.url", False)


def main():
    _config, mode, args, registry = child_registry()
    # the cursor commits when the block ends, as a cron job does
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        if mode == "setup":
            sys.stdout.write(json.dumps(setup(env, int(args[0]), args[1])))
        elif mode == "run":
            env["res.partner"]._cron_send_statements()
            # the run's batch, rendered and queued as its scheduled job does
            while env["document.email.batch"]._process_chunk(auto_commit=True):
                pass
            env["mail.mail"].process_email_queue()
        elif mode == "cleanup":
            cleanup(env, json.loads(args[0]))


if __name__ == "__main__":
    main()
