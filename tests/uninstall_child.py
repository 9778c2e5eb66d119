"""Steps of the uninstall test (tests/test_uninstall.py), each in a process
of its own on a database of its own, as an administrator would do them.

usage: python uninstall_child.py CONFIG_JSON MODE
  MODE "before": create a hand-made server, print Odoo's server choices
  MODE "configure": save the company's own server, queue one email through
        it, keep one sent email; print their ids
  MODE "state": print the company settings, the servers, Odoo's choices and
        the emails of "configure" (given as a JSON argument)
  MODE "uninstall": uninstall the add-on as from Apps
"""

import json
import sys

from child_common import child_registry

from odoo import SUPERUSER_ID, api

SENDERS = (
    "noreply@other.example",
    "billing@acme.example",
    "someone@acme.example",
    False,
)
COMPANY_FIELDS = (
    "document_smtp_use_default",
    "document_smtp_host",
    "document_smtp_port",
    "document_smtp_authentication",
    "document_smtp_user",
    "document_smtp_pass",
    "document_smtp_encryption",
    "document_smtp_verify_certificate",
)
SERVER_FIELDS = (
    "id",
    "name",
    "smtp_host",
    "smtp_port",
    "smtp_user",
    "smtp_pass",
    "smtp_encryption",
    "from_filter",
    "sequence",
    "active",
)


def choices(env):
    """Odoo's server for each sender, asked as connect() and the queue do."""
    servers = env["ir.mail_server"]
    everyone = servers.search([], order="sequence, id")
    result = {}
    for sender in SENDERS:
        asked = servers._find_mail_server(sender)
        queued = servers._find_mail_server(sender, everyone)
        result[str(sender)] = [
            [server.name if server else None, email]
            for server, email in (asked, queued)
        ]
    return result


def state(env, mail_ids):
    company = env.company
    has_addon = "document_smtp_host" in company._fields
    servers = env["ir.mail_server"].with_context(active_test=False).search([])
    mails = env["mail.mail"].browse(mail_ids).exists()
    module = env["ir.module.module"].search([("name", "=", "account_document_email")])
    return {
        "module": module.state,
        "company": {f: company[f] for f in COMPANY_FIELDS} if has_addon else None,
        "servers": servers.read([f for f in SERVER_FIELDS if f in servers._fields]),
        "choices": choices(env),
        "mails": {
            mail.subject: [
                mail.state,
                mail.failure_reason,
                mail.mail_server_id.name or None,
                sorted(mail.notification_ids.mapped("notification_status")),
            ]
            for mail in mails
        },
    }


def configure(env):
    company = env.company
    company.write(
        {
            "document_smtp_use_default": False,
            "document_smtp_host": "smtp.acme.example",
            "document_smtp_port": 587,
            "document_smtp_user": "billing@acme.example",
            "document_smtp_pass": "acme-Pa55",
        }
    )
    server = company.document_mail_server_id
    partner = env["res.partner"].create(
        {"name": "Customer", "email": "customer@customer.example"}
    )
    mails = env["mail.mail"].create(
        [
            {
                "subject": subject,
                "body_html": "<p>Invoice</p>",
                "email_from": "billing@acme.example",
                "model": "res.partner",
                "res_id": company.partner_id.id,
                "mail_server_id": server.id,
                "recipient_ids": [(6, 0, partner.ids)],
                "auto_delete": False,
                "state": state,
            }
            for subject, state in (("queued", "outgoing"), ("sent", "sent"))
        ]
    )
    env["mail.notification"].create(
        [
            {
                "mail_message_id": mail.mail_message_id.id,
                "mail_mail_id": mail.id,
                "res_partner_id": partner.id,
                "notification_type": "email",
                "notification_status": "ready" if mail.state == "outgoing" else "sent",
            }
            for mail in mails
        ]
    )
    return mails.ids


def main():
    _config, mode, args, registry = child_registry()
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        if mode == "before":
            env["ir.mail_server"].create(
                {
                    "name": "Hand-made",
                    "smtp_host": "smtp.acme.example",
                    "smtp_port": 25,
                    "from_filter": "acme.example",
                }
            )
            output = choices(env)
        elif mode == "configure":
            output = configure(env)
        elif mode == "state":
            output = state(env, json.loads(args[0]))
        elif mode == "uninstall":
            module = env["ir.module.module"].search(
                [("name", "=", "account_document_email")]
            )
            module.button_immediate_uninstall()
            output = True
    sys.stdout.write(json.dumps(output, default=str))


if __name__ == "__main__":
    main()
