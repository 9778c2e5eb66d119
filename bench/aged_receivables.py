"""Time ``res.partner._get_aged_receivable`` (and the options of the aged
balance screen) on a throwaway database.

Run by hand for its figures (``make test`` runs it once with ``--smoke``),
with the Odoo venv's Python::

    /opt/ade/venv/bin/python bench/aged_receivables.py [--customers 1000]
        [--items 20] [--addons /opt/ade/addons] [--oca DIR] [--keep]
        [--template DB] [--smoke]

Installs the add-on in a new database, posts ``customers`` journal entries
of ``items`` receivable lines each (due dates spread over a year, one
payment per customer dated after the report date), times the aged balance
of every customer and of 100 of them, then copies the lines by SQL to reach
10 times the data and times again. The database is dropped at the end
unless ``--keep``.

With ``--oca DIR`` (a folder holding OCA's ``account_financial_report``,
``date_range`` and ``report_xlsx``, see bench/README.md), also installs
``account_financial_report`` and, at each scale, times its Aged Partner
Balance computation on the same data (the report's ``_get_report_values``
for a wizard at the same date on the receivable accounts), prints the ratio
ours / OCA and both grand totals, which must agree.
"""

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from datetime import date, timedelta

ODOO_SRC = os.environ.get("ODOO_SRC", "/opt/odoo18")
DATA_DIR = f"{os.environ.get('ADE_HOME', '/opt/ade')}/data"
DATE_AT = date(2024, 6, 30)
AGED_BUCKETS = ("not_due", "period_1", "period_2", "period_3", "period_4", "older")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--items", type=int, default=20)
    parser.add_argument("--scale", type=int, default=10)
    parser.add_argument(
        "--addons", default=os.environ.get("ADE_ADDONS", "/opt/ade/addons")
    )
    parser.add_argument(
        "--oca",
        help="folder of OCA's account_financial_report, date_range and "
        "report_xlsx: also time its Aged Partner Balance",
    )
    parser.add_argument("--db", default=f"ade_bench_{int(time.time())}")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument(
        "--template",
        help="create the database as a copy of this one (the add-on "
        "installed, without demo data) instead of installing from scratch",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="smallest run, for CI: 10 customers x 2 items, x2",
    )
    args = parser.parse_args()
    if args.smoke:
        args.customers, args.items, args.scale = 10, 2, 2
    return args


def say(text):
    sys.stdout.write(f"[bench] {text}\n")
    sys.stdout.flush()


def addons_path(args):
    return ",".join([f"{ODOO_SRC}/addons", args.addons] + [args.oca] * bool(args.oca))


def install(args):
    modules = "account_document_email" + ",account_financial_report" * bool(args.oca)
    if args.template:
        subprocess.run(["createdb", "-T", args.template, args.db], check=True)
        filestore = f"{DATA_DIR}/filestore"
        if os.path.isdir(f"{filestore}/{args.template}"):
            shutil.copytree(f"{filestore}/{args.template}", f"{filestore}/{args.db}")
    else:
        subprocess.run(["createdb", args.db], check=True)
    say(f"installing {modules} in {args.db}")
    subprocess.run(
        [
            sys.executable,
            f"{ODOO_SRC}/odoo-bin",
            f"--addons-path={addons_path(args)}",
            f"--data-dir={DATA_DIR}",
            "-d",
            args.db,
            "-i",
            modules,
            "--without-demo=all",
            "--stop-after-init",
            "--log-level=warn",
        ],
        check=True,
    )


def build_data(env, customers, items):
    """One posted entry per customer: ``items`` receivable debits due over
    the last year, and a payment of a tenth of it dated after DATE_AT."""
    company = env.company
    if not env["account.account"].search_count(
        [("account_type", "=", "asset_receivable")]
    ):
        env["account.chart.template"].try_loading("generic_coa", company)
    receivable = env["account.account"].search(
        [("account_type", "=", "asset_receivable")], limit=1
    )
    income = env["account.account"].search([("account_type", "=", "income")], limit=1)
    journal = env["account.journal"].search([("type", "=", "general")], limit=1)
    rng = random.Random(42)
    partners = env["res.partner"].create(
        [{"name": f"Bench Customer {n:05d}"} for n in range(customers)]
    )
    for start in range(0, customers, 100):
        moves = env["account.move"].create(
            [
                {
                    "move_type": "entry",
                    "journal_id": journal.id,
                    "date": DATE_AT - timedelta(days=200),
                    "line_ids": [
                        (
                            0,
                            0,
                            {
                                "account_id": receivable.id,
                                "partner_id": partner.id,
                                "debit": amount,
                                "date_maturity": DATE_AT
                                - timedelta(days=rng.randint(-30, 365)),
                                "name": f"Item {i}",
                            },
                        )
                        for i, amount in enumerate(amounts)
                    ]
                    + [(0, 0, {"account_id": income.id, "credit": sum(amounts)})],
                }
                for partner in partners[start : start + 100]
                for amounts in [[rng.randint(100, 10000) for _ in range(items)]]
            ]
        )
        moves.action_post()
        pay_partially_after_the_date(moves, receivable, income, journal)
        env.cr.commit()
        say(f"{min(start + 100, customers)} customers")
    return partners


def pay_partially_after_the_date(moves, receivable, income, journal):
    """Half of each entry's first item, paid and reconciled after DATE_AT."""
    firsts = [move.line_ids.filtered("partner_id")[:1] for move in moves]
    payments = moves.create(
        [
            {
                "move_type": "entry",
                "journal_id": journal.id,
                "date": DATE_AT + timedelta(days=10),
                "line_ids": [
                    (
                        0,
                        0,
                        {
                            "account_id": receivable.id,
                            "partner_id": first.partner_id.id,
                            "credit": first.debit / 2,
                        },
                    ),
                    (0, 0, {"account_id": income.id, "debit": first.debit / 2}),
                ],
            }
            for first in firsts
        ]
    )
    payments.action_post()
    for first, payment in zip(firsts, payments, strict=True):
        (first | payment.line_ids.filtered("partner_id")).reconcile()


def scale_up(env, factor):
    """Copy every partner's receivable lines ``factor - 1`` times by SQL,
    each copy for a new partner (benchmark data: the copies' moves do not
    balance, which the aged balance does not read)."""
    from odoo.tools import SQL

    cr = env.cr
    cr.execute(
        """SELECT column_name FROM information_schema.columns
            WHERE table_name = 'account_move_line' AND column_name != 'id'"""
    )
    names = [name for (name,) in cr.fetchall()]
    columns = SQL(", ").join(SQL.identifier(name) for name in names)
    select = SQL(", ").join(
        SQL.identifier("new_partner", "id")
        if name == "partner_id"
        else SQL.identifier("line", name)
        for name in names
    )
    for copy in range(1, factor):
        cr.execute(
            """
            CREATE TEMP TABLE partner_map ON COMMIT DROP AS
            SELECT id AS old_id, nextval('res_partner_id_seq') AS new_id
              FROM res_partner WHERE name LIKE 'Bench Customer %%'
               AND name NOT LIKE '%%copy%%'
            """
        )
        cr.execute(
            """
            INSERT INTO res_partner (id, name, active, type, autopost_bills,
                                     statement_frequency, create_date, write_date)
            SELECT map.new_id, partner.name || ' copy ' || %s, true, 'contact',
                   'ask', 'company', now(), now()
              FROM partner_map map JOIN res_partner partner ON partner.id = map.old_id
            """,
            [copy],
        )
        cr.execute(
            SQL(
                """
                INSERT INTO account_move_line (%s)
                SELECT %s
                  FROM account_move_line line
                  JOIN partner_map map ON map.old_id = line.partner_id
                  JOIN res_partner new_partner ON new_partner.id = map.new_id
                """,
                columns,
                select,
            )
        )
        env.cr.commit()
    cr.execute("ANALYZE account_move_line")


def timed(label, function, repeat=3):
    best = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        elapsed = time.perf_counter() - start
        best = elapsed if best is None else min(best, elapsed)
    say(f"{label}: {best * 1000:.0f} ms (best of {repeat})")
    return result, best


def oca_aged_partner_balance(env):
    """The values of OCA's Aged Partner Balance at DATE_AT on the receivable
    accounts, as its PDF/HTML report computes them: the wizard's report
    data, through JSON as the report action sends it, then the report
    model's ``_get_report_values`` (the ORM cache emptied before each
    run: its reads would otherwise come from the previous run's cache)."""
    wizard = env["aged.partner.balance.report.wizard"].create(
        {
            "date_at": DATE_AT,
            "receivable_accounts_only": True,
            "account_ids": [
                (
                    6,
                    0,
                    env["account.account"]
                    .search(
                        [
                            ("account_type", "=", "asset_receivable"),
                            ("company_ids", "in", env.company.ids),
                        ]
                    )
                    .ids,
                )
            ],
        }
    )
    data = json.loads(json.dumps(wizard._prepare_report_data(), default=str))
    report = env["report.account_financial_report.aged_partner_balance"]

    def compute():
        env.invalidate_all()  # a cold ORM cache, as in a report request
        return report._get_report_values(wizard.ids, data)

    return compute


def measure(env, title, oca=False):
    partners = env["res.partner"]
    env.cr.execute(
        """SELECT count(*) FROM account_move_line line
             JOIN account_account account ON account.id = line.account_id
            WHERE account.account_type = 'asset_receivable'"""
    )
    say(f"{title}: {env.cr.fetchone()[0]} receivable lines")
    result, ours = timed(
        "_get_aged_receivable, every customer",
        lambda: partners._get_aged_receivable(DATE_AT),
    )
    say(f"  {len(result)} customers in the result")
    if oca:
        values, theirs = timed(
            "OCA aged partner balance (_get_report_values)",
            oca_aged_partner_balance(env),
        )
        accounts = values["aged_partner_balance"]
        say(f"  {sum(len(a['partners']) for a in accounts)} partners in OCA's result")
        say(f"ratio ours / OCA: {ours / theirs:.2f}x")
        compare_totals(env, result, accounts)
    measure_options(env, result)
    sample = partners.browse(list(result)[:100])
    timed(
        "_get_aged_receivable, 100 customers",
        lambda: sample._get_aged_receivable(DATE_AT),
    )
    timed(
        "_get_aged_receivable_items, 100 customers",
        lambda: sample._get_aged_receivable_items(DATE_AT),
    )


def measure_options(env, result):
    """The issue #14 options on: amounts in the partner's currency, the
    screen (wizard rows, every customer, by currency) and its aged balance
    printout's values, payables (no vendor data: the query's cost alone)."""
    partners = env["res.partner"]
    by_currency, _seconds = timed(
        "_get_aged_balance_by_currency (partner's currency), every customer",
        lambda: partners._get_aged_balance_by_currency(DATE_AT, 30, by_currency=True),
    )
    totals = sum(
        a["total"] for amounts in by_currency.values() for a in amounts.values()
    )
    same = not env.company.currency_id.compare_amounts(
        totals, sum(r["total"] for r in result.values())
    )
    say(f"  by currency total {totals:,.2f} {'agrees' if same else 'DIFFERS'}")
    if not same:
        raise SystemExit("the by-currency total differs from the company's")
    wizard = env["account.aged.receivable.wizard"].create(
        {"date_at": DATE_AT, "interval_days": 30, "by_currency": True}
    )
    timed(
        "screen: wizard.action_list() by currency, every customer", wizard.action_list
    )
    say(f"  {len(wizard.line_ids)} rows on screen")
    report = env["report.account_document_email.report_aged_balance"]
    timed(
        "aged balance printout values (_get_report_values)",
        lambda: report._get_report_values(wizard.ids),
    )
    timed(
        "_get_aged_balance payables, every vendor",
        lambda: partners._get_aged_balance(DATE_AT, 30, "liability_payable"),
    )


def compare_totals(env, result, accounts):
    """Grand total and per-bucket totals of both (OCA: current, 1-30,
    31-60, 61-90, 91-120, older days overdue, the same as ours at 30)."""
    currency = env.company.currency_id
    oca_keys = ("current", "30_days", "60_days", "90_days", "120_days", "older")
    ours = [sum(r[bucket] for r in result.values()) for bucket in AGED_BUCKETS]
    theirs = [sum(a[key] for a in accounts) for key in oca_keys]
    ours_total = sum(r["total"] for r in result.values())
    theirs_total = sum(a["residual"] for a in accounts)
    say(f"grand total ours: {ours_total:,.2f}")
    say(f"grand total OCA : {theirs_total:,.2f}")
    agree = not currency.compare_amounts(ours_total, theirs_total) and all(
        not currency.compare_amounts(a, b) for a, b in zip(ours, theirs, strict=True)
    )
    if agree:
        say("totals agree (grand total and each age bucket)")
    else:
        say("TOTALS DIFFER by bucket:")
        for bucket, a, b in zip(AGED_BUCKETS, ours, theirs, strict=True):
            say(f"  {bucket:9}: ours {a:,.2f}  OCA {b:,.2f}")
        raise SystemExit("ours and OCA's totals differ")


def main():
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))
    sys.path.insert(0, ODOO_SRC)
    import odoo
    from odoo import SUPERUSER_ID, api

    try:
        install(args)
        odoo.tools.config.parse_config(
            [
                f"--addons-path={addons_path(args)}",
                f"--data-dir={DATA_DIR}",
                "-d",
                args.db,
                "--log-level=warn",
            ]
        )
        registry = odoo.modules.registry.Registry(args.db)
        with registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            start = time.perf_counter()
            build_data(env, args.customers, args.items)
            say(f"data built in {time.perf_counter() - start:.0f} s")
            title = f"{args.customers} customers x {args.items} items"
            measure(env, title, oca=bool(args.oca))
            scale_up(env, args.scale)
            measure(env, f"x{args.scale}", oca=bool(args.oca))
    finally:
        if not args.keep:
            odoo.sql_db.close_all()
            subprocess.run(["dropdb", "--if-exists", args.db], check=False)
            shutil.rmtree(f"{DATA_DIR}/filestore/{args.db}", ignore_errors=True)
            say(f"dropped {args.db}")


if __name__ == "__main__":
    main()
