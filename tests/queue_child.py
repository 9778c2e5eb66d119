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
  MODE "tbai-batch N": the demo Spanish company set up in Gipuzkoa with
        l10n_es_edi_tbai's test helpers (its test certificate), N of its
        invoices and one of the main company, sent as one batch from the
        wizard by the administrator; prints ids
  MODE "tbai-process SIZE [kill]": "process" on the date of TicketBAI's
        tests (its certificate valid then); with "kill", the process kills
        itself right after TicketBAI's hook commits a submission.
  MODE "cost N PORT": N sale orders of the company sent as one batch through
        its own documents server at PORT (rendered and queued), and N core
        emails to the same customers with the same PDF, posted on the same
        orders through a plain server at PORT; prints the ids of both
  MODE "count ID [ID...]": run the mail queue on these emails only
        (auto-commit, as the cron does); prints the SQL queries and the
        commits it made
  MODE "drain SECONDS ID [ID...]": a delivery worker: runs the mail queue on
        these emails (auto-commit) again and again until none is left to
        send or SECONDS have passed
  MODE "race SECONDS GO ID [ID...]": "drain", once the file GO exists (the
        test creates it when every worker is ready, GO.ready.PID); prints how
        many emails this worker handed to the SMTP server
  MODE "claimed ID [ID...]": one mail queue run on these emails; then, its
        database connection still open, prints the emails still claimed
  MODE "send-listed ID [ID...]": the mail queue's send() (auto-commit) on
        these emails, as listed by a run before another worker claimed some
  MODE "send-now-replayed PORT": one sale order sent at once from the
        dialog (saved first, as the web client does) through the company's
        documents server at PORT, in Odoo's retrying() as a request is run;
        the first try then fails on a real serialization failure, after the
        server took the email, and the request is replayed; prints ids
  MODE "send-now-replayed PORT statement": the same with the customer's
        statement (its email kept on a record each try creates anew)
  MODE "send-now-leftover PORT": as "send-now-replayed", but the first
        request fails for good after the server took the email (rolled
        back, its mark left); then a second dialog for the same order and
        customer is saved and sent; prints ids and what the user was told
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

from child_common import child_registry

from odoo import SUPERUSER_ID, Command, api
from odoo.service.model import PG_CONCURRENCY_EXCEPTIONS_TO_RETRY, retrying


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


def tbai_helpers(env, company):
    """l10n_es_edi_tbai's test helpers (tests/common.py) on this committed
    environment, in this company."""
    import logging

    # they live in its tests: importing them outside test mode logs an
    # error meant for business modules
    logging.getLogger("odoo.tests.common").setLevel(logging.CRITICAL)
    from odoo.addons.l10n_es_edi_tbai.tests.common import TestEsEdiTbaiCommon

    class Basque(TestEsEdiTbaiCommon):
        pass

    Basque.env = env(context=dict(env.context, allowed_company_ids=company.ids))
    Basque.company_data = {"company": company}
    return Basque


def create_basque_batch(env, count):
    """The demo Spanish company configured as TicketBAI's tests configure
    theirs (in Gipuzkoa, its test certificate), COUNT of its invoices after
    one of the main company, sent as one batch by the administrator."""
    company = env.ref("base.demo_company_es")
    company.write(
        {
            "state_id": env.ref("base.state_es_ss").id,
            "vat": "ES09760433S",
            "l10n_es_tbai_test_env": True,
        }
    )
    basque = tbai_helpers(env, company)
    basque._set_tax_agency("gipuzkoa")
    basque.product_a = env["product.product"].create({"name": "Basque service"})
    invoices = env["account.move"]
    for n in range(count):
        # without Facturae, as TicketBAI's tests set their customer
        basque.partner_a = basque.env["res.partner"].create(
            {
                "name": f"Basque customer {n}",
                "email": f"basque{n}@example.com",
                "vat": "ESF35999705",
                "country_id": env.ref("base.es").id,
                "invoice_edi_format": False,
            }
        )
        invoices |= basque._create_posted_invoice()
    main = env.ref("base.main_company")
    customer = env["res.partner"].create(
        {"name": "Main company customer", "email": "customer@example.com"}
    )
    normal = (
        env["account.move"]
        .with_company(main)
        .create(
            {
                "move_type": "out_invoice",
                "partner_id": customer.id,
                "invoice_line_ids": [
                    Command.create(
                        {"product_id": basque.product_a.id, "price_unit": 10}
                    )
                ],
            }
        )
    )
    normal.action_post()
    admin = env.ref("base.user_admin")
    wizard = (
        env(user=admin, context={"allowed_company_ids": (main | company).ids})[
            "document.email.wizard"
        ]
        .with_context(active_model="account.move", active_ids=(normal | invoices).ids)
        .create({})
    )
    return {
        "batch": wizard.action_send()["res_id"],
        "basque": invoices.ids,
        "normal": normal.id,
    }


def kill_when_ticketbai_commits():
    """Kill this process right after TicketBAI's hook commits (the outcome
    of a submission saved), before anything else."""
    from odoo.sql_db import Cursor

    from odoo.addons.l10n_es_edi_tbai.models.account_move_send import (
        AccountMoveSend,
    )

    original_hook = AccountMoveSend._call_web_service_before_invoice_pdf_render
    original_commit = Cursor.commit
    inside = []

    def _call_web_service_before_invoice_pdf_render(self, invoices_data):
        inside.append(True)
        try:
            return original_hook(self, invoices_data)
        finally:
            inside.pop()

    def commit(self):
        result = original_commit(self)
        if inside:
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    AccountMoveSend._call_web_service_before_invoice_pdf_render = (
        _call_web_service_before_invoice_pdf_render
    )
    Cursor.commit = commit


def kill_in_create_mails(kill_at):
    """Kill this process once the emails of the kill_at-th chunk exist,
    before the chunk commits."""
    from odoo.addons.account_document_email.models.document_email_send import (
        DocumentEmailSend,
    )

    original = DocumentEmailSend._create_mails
    calls = []

    def _create_mails(self, values_list):
        mails = original(self, values_list)
        calls.append(len(mails))
        if len(calls) == kill_at:
            mails.flush_recordset()
            os.kill(os.getpid(), signal.SIGKILL)
        return mails

    DocumentEmailSend._create_mails = _create_mails


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
        try:
            with registry.cursor() as cr:
                env = api.Environment(cr, SUPERUSER_ID, {})
                done = env["document.email.batch"]._process_chunk(
                    chunk_size=size, auto_commit=True
                )
        except PG_CONCURRENCY_EXCEPTIONS_TO_RETRY:
            # the other worker changed a line after this chunk's snapshot:
            # rolled back, run again, as the cron job runs again
            continue
        if not done:
            return chunks
        chunks += 1
        CHUNKS_DONE.append(done)


def create_cost_emails(env, count, port):
    """Our document emails and core's, as alike as can be (see "cost")."""
    env.company.write(
        {
            "document_smtp_use_default": False,
            "document_smtp_host": "127.0.0.1",
            "document_smtp_port": port,
            "document_smtp_encryption": "none",
            "document_smtp_authentication": False,
            "document_smtp_verify_certificate": False,
        }
    )
    created = create_batch(env, count, port)
    plain = env["ir.mail_server"].create(
        {"name": f"queue test {port}", "smtp_host": "127.0.0.1", "sequence": 99}
    )
    plain.write({"smtp_port": port, "smtp_encryption": "none"})
    created["plain_server"] = plain.id
    return created


def post_core_emails(env, orders, server_id):
    """Core's emails: each order's PDF posted to its customer, queued."""
    mails = env["mail.mail"]
    for order in orders:
        pdf = env["ir.attachment"].search(
            [("res_model", "=", "sale.order"), ("res_id", "=", order.id)], limit=1
        )
        message = order.with_context(mail_notify_force_send=False).message_post(
            body=f"<p>Your order {order.name}</p>",
            subject=f"Core {order.name}",
            partner_ids=order.partner_id.ids,
            attachments=[(pdf.name, pdf.raw)],
            message_type="comment",
            # to the customer only, as our emails go (not to the followers)
            subtype_xmlid="mail.mt_note",
        )
        mails |= env["mail.mail"].search([("mail_message_id", "=", message.id)])
    mails.write({"mail_server_id": server_id, "auto_delete": False})
    return mails.ids


def count_queue(registry, ids):
    """The SQL queries and commits of one mail queue run on these emails."""
    from odoo.sql_db import Cursor

    counts = {"queries": 0, "commits": 0}
    execute, commit = Cursor.execute, Cursor.commit

    def counted_execute(self, *args, **kwargs):
        counts["queries"] += 1
        return execute(self, *args, **kwargs)

    def counted_commit(self):
        counts["commits"] += 1
        return commit(self)

    Cursor.execute, Cursor.commit = counted_execute, counted_commit
    try:
        # the cron's own commit at the end counts too (ours leaves it the
        # last email's outcome)
        with registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            Mail = env["mail.mail"].with_context(filters=[("id", "in", ids)])
            Mail.process_email_queue()
    finally:
        Cursor.execute, Cursor.commit = execute, commit
    return counts


def drain(registry, seconds, ids):
    """Run the queue on these emails until none is outgoing any more."""
    import time

    deadline = time.time() + seconds
    while time.time() < deadline:
        with registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            Mail = env["mail.mail"].with_context(filters=[("id", "in", ids)])
            Mail.process_email_queue()
        with registry.cursor() as cr:
            cr.execute(
                "SELECT count(*) FROM mail_mail WHERE id IN %s AND state = 'outgoing'",
                [tuple(ids)],
            )
            if not cr.fetchone()[0]:
                return
        time.sleep(0.2)


def count_handed_over():
    """How many messages this process hands to an SMTP server (counted only:
    they go as before)."""
    import smtplib

    counted = {"sent": 0}
    sendmail = smtplib.SMTP.sendmail

    def counted_sendmail(self, *args, **kwargs):
        refused = sendmail(self, *args, **kwargs)
        counted["sent"] += 1
        return refused

    smtplib.SMTP.sendmail = counted_sendmail
    return counted


def race(registry, seconds, go, ids):
    """A worker that starts draining with the others (see "race")."""
    import time

    counted = count_handed_over()
    with open(f"{go}.ready.{os.getpid()}", "w"):
        pass
    deadline = time.time() + 60
    while not os.path.exists(go) and time.time() < deadline:
        time.sleep(0.02)
    drain(registry, seconds, ids)
    return counted


def still_claimed(registry, ids):
    """One queue run on these emails, committed; then, from the same
    connection (its claims count as live), the emails still claimed."""
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        env["mail.mail"].with_context(filters=[("id", "in", ids)]).process_email_queue()
        cr.commit()  # pylint: disable=invalid-commit
        cr.execute(
            "SELECT id FROM mail_mail WHERE id IN %s "
            "AND document_claim_pid IS NOT NULL",
            [tuple(ids)],
        )
        return sorted(row[0] for row in cr.fetchall())


def create_send_now(env, port, statement=False):
    """The company's documents server at PORT (as "cost"), one order to one
    customer, and the dialog for it (or, STATEMENT, for the customer's
    statement), saved (committed by the caller)."""
    env.company.write(
        {
            "document_smtp_use_default": False,
            "document_smtp_host": "127.0.0.1",
            "document_smtp_port": port,
            "document_smtp_encryption": "none",
            "document_smtp_authentication": False,
            "document_smtp_verify_certificate": False,
        }
    )
    server = env.company._get_document_mail_server()
    saved = server.read(["smtp_host", "smtp_port", "smtp_encryption"])[0]
    admin = env(user=env.ref("base.user_admin"))
    partner = admin["res.partner"].create(
        {"name": "Send now customer", "email": "customer0@example.com"}
    )
    product = admin["product.product"].create(
        {"name": "Send now service", "type": "service", "list_price": 10.0}
    )
    order = admin["sale.order"].create(
        {
            "partner_id": partner.id,
            "order_line": [Command.create({"product_id": product.id})],
        }
    )
    document = partner if statement else order
    wizard = (
        admin["document.email.wizard"]
        .with_context(active_model=document._name, active_ids=document.ids)
        .create({})
    )
    env["ir.config_parameter"].set_param("account_document_email.test_probe", "0")
    return {
        "batch": None,
        "orders": order.ids,
        "partners": partner.ids,
        "product": product.product_tmpl_id.id,
        "server": saved,
        "wizard": wizard.id,
        "admin": admin.uid,
    }


def send_now_replayed(registry, port, statement=False):
    """See "send-now-replayed": the request's first try loses a real
    serialization race on a row it did not touch, once the email is sent."""
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        created = create_send_now(env, port, statement)
    tries = []
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        admin = env(user=env.ref("base.user_admin"))
        probe = "UPDATE ir_config_parameter SET value = %s WHERE key = %s"

        def request():
            tries.append(1)
            admin["document.email.wizard"].browse(created["wizard"]).action_send()
            if len(tries) == 1:
                with registry.cursor() as other:
                    other.execute(probe, ["1", "account_document_email.test_probe"])
                cr.execute(probe, ["2", "account_document_email.test_probe"])

        retrying(request, env)
    created["tries"] = len(tries)
    return created


def send_now_leftover(registry, port):
    """See "send-now-leftover": the first dialog's request fails for good
    once the server took the email (its mark left behind); a second dialog
    then sends the same order to the same customer."""
    without_report_assets()
    with registry.cursor() as cr:
        created = create_send_now(api.Environment(cr, SUPERUSER_ID, {}), int(port))
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        admin = env(user=env.ref("base.user_admin"))
        admin["document.email.wizard"].browse(created["wizard"]).action_send()
        cr.rollback()  # a non-retryable error after the SMTP call
    with registry.cursor() as cr:
        admin = api.Environment(cr, SUPERUSER_ID, {})(user=created["admin"])
        order = admin["sale.order"].browse(created["orders"])
        second = (
            admin["document.email.wizard"]
            .with_context(active_model=order._name, active_ids=order.ids)
            .create({})
        )
        created["second_wizard"] = second.id
    with registry.cursor() as cr:
        admin = api.Environment(cr, SUPERUSER_ID, {})(user=created["admin"])
        action = admin["document.email.wizard"].browse(second.id).action_send()
        created["told"] = action["params"]["type"]
    return created


def send_listed(registry, ids):
    """The queue's send() on emails listed before another worker claimed
    some of them."""
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        env["mail.mail"].browse(ids).send(auto_commit=True)


def send_now_replayed_mode(registry, port, document="sale.order"):
    without_report_assets()
    return send_now_replayed(registry, int(port), document == "statement")


# the modes of the delivery in parallel (issue 22): (registry, *args)
def pause_when_a_session_ends(marker):
    """This worker stops when its first session has ended and before it
    settles (and commits) that session, until MARKER.go exists: what it
    committed before then is all other workers can see."""
    import time

    from odoo.addons.account_document_email.models.mail_mail import MailMail

    original = MailMail._document_email_states_changed

    def _document_email_states_changed(self):
        if self and not os.path.exists(f"{marker}.ready"):
            with open(f"{marker}.ready", "w"):
                pass
            deadline = time.time() + 60
            while not os.path.exists(f"{marker}.go") and time.time() < deadline:
                time.sleep(0.05)
        return original(self)

    MailMail._document_email_states_changed = _document_email_states_changed


def claimed_paused(registry, marker, *ids):
    pause_when_a_session_ends(marker)
    return still_claimed(registry, [int(i) for i in ids])


PARALLEL_MODES = {
    "claimed-paused": claimed_paused,
    "race": lambda registry, seconds, go, *ids: race(
        registry, float(seconds), go, [int(i) for i in ids]
    ),
    "claimed": lambda registry, *ids: still_claimed(registry, [int(i) for i in ids]),
    "send-now-replayed": send_now_replayed_mode,
    "send-now-leftover": send_now_leftover,
    "send-listed": lambda registry, *ids: send_listed(registry, [int(i) for i in ids]),
}


def main():
    _config, mode, args, registry = child_registry()
    if mode in ("process", "process-pause"):
        without_report_assets()
        if mode == "process-pause":
            pause_after_a_file(args[1])
        elif len(args) > 1:
            kill_in_create_mails(int(args[1]))
        sys.stdout.write(json.dumps(process_batches(registry, int(args[0]))))
        return
    if mode == "cost":
        without_report_assets()
        with registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            created = create_cost_emails(env, int(args[0]), int(args[1]))
        process_batches(registry, 10)
        with registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            orders = env["sale.order"].browse(created["orders"])
            created["ours"] = (
                env["mail.mail"]
                .search([("model", "=", "sale.order"), ("res_id", "in", orders.ids)])
                .ids
            )
            created["core"] = post_core_emails(env, orders, created["plain_server"])
        sys.stdout.write(json.dumps(created))
        return
    if mode in PARALLEL_MODES:
        sys.stdout.write(json.dumps(PARALLEL_MODES[mode](registry, *args)))
        return
    if mode == "drain":
        drain(registry, float(args[0]), [int(i) for i in args[1:]])
        return
    if mode == "count":
        ids = [int(i) for i in args]
        sys.stdout.write(json.dumps(count_queue(registry, ids)))
        return
    if mode == "tbai-process":
        from freezegun import freeze_time

        without_report_assets()
        if args[1:] == ["kill"]:
            kill_when_ticketbai_commits()
        # the day TicketBAI's tests run on (tests/common.py, frozen_today)
        with freeze_time("2022-01-01"):
            chunks = process_batches(registry, int(args[0]))
        sys.stdout.write(json.dumps(chunks))
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
        elif mode == "tbai-batch":
            sys.stdout.write(json.dumps(create_basque_batch(env, int(args[0]))))
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
