"""Runs Odoo's mail queue in a separate process, as the cron would, for the
tests that kill it or race it (tests/test_queue_processes.py).

usage: python queue_child.py CONFIG_JSON MODE
  MODE "create N PORT": queue N emails through a server at 127.0.0.1:PORT,
        commit, print their ids
  MODE "queue": run the mail queue (auto-commit, as the cron does)
  MODE "send ID [ID...]": send these emails now, as the wizard does
Both run again after a concurrent update, as Odoo does with a request (and
the cron on its next run): the one that loses the race on an email fails
there before sending it.
"""

import json
import sys

import odoo
from odoo import SUPERUSER_ID, api
from odoo.service.model import retrying


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
    registry = odoo.registry(config["db"])
    # the cursor commits when the block ends, as a cron job does
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        if mode == "create":
            count, port = int(args[0]), int(args[1])
            server = env["ir.mail_server"].create(
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
        elif mode == "queue":
            retrying(env["mail.mail"].process_email_queue, env)
        elif mode == "send":
            mails = env["mail.mail"].browse([int(i) for i in args])
            retrying(lambda: mails.send(raise_exception=False), env)


if __name__ == "__main__":
    main()
