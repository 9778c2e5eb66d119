from datetime import timedelta

from odoo import api, fields, models
from odoo.tools import SQL

AGED_BUCKETS = ("not_due", "period_1", "period_2", "period_3", "period_4", "older")
RECEIVABLE = "asset_receivable"
PAYABLE = "liability_payable"
# open amounts are shown positive: what customers owe, what is owed to vendors
AGED_SIGN = {RECEIVABLE: 1, PAYABLE: -1}
# the kind of a statement line by its move's type; payments are told apart
ACTIVITY_KINDS = {
    "out_invoice": "invoice",
    "in_invoice": "invoice",
    "out_refund": "credit_note",
    "in_refund": "credit_note",
}


class ResPartner(models.Model):
    _name = "res.partner"
    _inherit = ["res.partner", "document.email.mixin"]

    statement_frequency = fields.Selection(
        [
            ("company", "As the company"),
            ("monthly", "Monthly"),
            ("weekly", "Weekly"),
            ("never", "Never"),
        ],
        string="Scheduled Statements",
        default="company",
        required=True,
        help="How often this customer receives a statement of account by email.",
    )
    statement_next_date = fields.Date(
        "Next Statement",
        company_dependent=True,
        copy=False,
        groups="account.group_account_invoice",
        help="Moves on only once the statement of this date has been sent.",
    )
    statement_contact = fields.Boolean(
        "Receives Statements",
        # who receives a customer's figures: decided by accounting only
        groups="account.group_account_invoice",
        help="Scheduled statements of the company go to the contacts marked "
        "so, instead of its invoice addresses.",
    )

    # ------------------------------------------------------------------
    # Send by email: customer statement or receivables confirmation letter
    # ------------------------------------------------------------------

    def _get_document_email_partners(self):
        """The customer, or its invoice address when only that has an email;
        a scheduled statement's recipients in a statement run."""
        self.ensure_one()
        if self.env.context.get("document_statement_run"):
            return self._get_statement_recipients()
        if self.email:
            return self
        invoice_contacts = self.child_ids.filtered(
            lambda c: c.type == "invoice" and c.email
        )
        return invoice_contacts[:1] or self

    def _get_document_email_company(self):
        self.ensure_one()
        return self.env.company

    def _get_aged_document(self):
        """``statement`` or ``letter``, chosen by the Aged Receivables wizard."""
        return (
            "letter"
            if self.env.context.get("aged_document") == "letter"
            else ("statement")
        )

    def _get_document_email_template_xmlid(self):
        self.ensure_one()
        return f"account_document_email.mail_template_aged_{self._get_aged_document()}"

    def _get_document_email_context_keys(self):
        # what the aged balance screen chose; a statement run's own keys are
        # set by the server (``_send_statements``), never taken from a request
        return (
            "aged_date_at",
            "aged_interval_days",
            "aged_account_type",
            "aged_by_currency",
            "aged_document",
            "aged_activity_from",
        )

    def _document_email_groupable(self):
        # a statement already is one email per customer
        return False

    def _get_document_email_thread(self):
        """A statement or letter shows figures: its email is kept on a
        record of the company's billing users, not on the partner."""
        self.ensure_one()
        return self.env["document.email.statement"]._log_for(self)

    def _get_document_email_message_link(self):
        self.env["document.email.statement"].flush_model(["partner_id"])
        return {
            "document": SQL("log.partner_id"),
            "join": SQL("JOIN document_email_statement log ON log.id = msg.res_id"),
            # the same kind of document of the same company only: another
            # company's statement of a shared partner is none of this one's
            "where": SQL(
                "msg.model = 'document.email.statement' AND log.partner_id = ANY(%s)"
                " AND log.company_id = %s AND log.document = %s",
                self.ids,
                self.env.company.id,
                self._get_aged_document(),
            ),
        }

    def _get_document_email_kind(self):
        self.ensure_one()
        if self._get_aged_document() == "letter":
            return self.env._("confirmation letter"), self.env._("confirmation letters")
        return self.env._("statement"), self.env._("statements")

    def _get_document_email_report_xmlids(self):
        self.ensure_one()
        statement = "account_document_email.action_report_aged_statement"
        letter = "account_document_email.action_report_aged_letter"
        if self._get_aged_document() == "letter":
            return [letter, statement]
        return [statement, letter]

    # ------------------------------------------------------------------
    # Aged balances: receivables (customers) and payables (vendors)
    # ------------------------------------------------------------------

    def _get_aged_receivable_options(self):
        """(date, interval in days) carried by the context (keys
        ``aged_date_at`` and ``aged_interval_days``), today and 30 by default."""
        context = self.env.context
        date_at = fields.Date.to_date(context.get("aged_date_at"))
        return (
            date_at or fields.Date.context_today(self),
            int(context.get("aged_interval_days") or 30),
        )

    def _get_aged_account_type(self):
        """Receivables unless the context (``aged_account_type``) says payables."""
        account_type = self.env.context.get("aged_account_type")
        return account_type if account_type in AGED_SIGN else RECEIVABLE

    @api.model
    def _get_aged_bucket_labels(self, interval_days):
        """[(bucket, column title)] in the order of the columns: "Not due",
        "1-30", "31-60", "61-90", "91-120", "Over 120" with 30 days."""
        periods = [
            (f"period_{k}", f"{(k - 1) * interval_days + 1}-{k * interval_days}")
            for k in range(1, 5)
        ]
        return [
            ("not_due", self.env._("Not due")),
            *periods,
            ("older", self.env._("Over %(days)s", days=4 * interval_days)),
        ]

    def _get_aged_receivable_summary(self):
        """This customer's aged balance at the context's date, with the date,
        company and currency: what the statement and letter emails show."""
        self.ensure_one()
        date_at, interval_days = self._get_aged_receivable_options()
        account_type = self._get_aged_account_type()
        company = self.env.company
        # subject and body of every partner of a batch: one query for all
        balances = self._get_document_email_render_values(
            ("aged_balance", company.id, date_at, interval_days, account_type),
            lambda partners: partners._get_aged_balance(
                date_at, interval_days, account_type
            ),
        )
        return dict(
            balances[self.id],
            date_at=date_at,
            company=company,
            currency=company.currency_id,
        )

    def _get_open_balance_query(self, date_at, account_type=RECEIVABLE):
        """SQL selecting the current company's posted lines of ``account_type``
        open at ``date_at`` (of these partners' commercial entities, or of all
        when empty), with their open amount at that date, in company currency
        and in the line's currency: the residual today plus the
        reconciliations (partials) dated after ``date_at``. Amounts are signed
        so that what the partner owes (receivable) or is owed (payable) is
        positive; with a tuple of account types (a confirmation of both), as
        booked: positive when the partner owes us."""
        account_types = (
            account_type if isinstance(account_type, tuple) else (account_type,)
        )
        partner_filter = (
            SQL("AND line.partner_id IN %s", tuple(self.commercial_partner_id.ids))
            if self
            else SQL()
        )
        return SQL(
            """
            WITH late_partial AS (
                SELECT debit_move_id AS line_id, amount,
                       debit_amount_currency AS amount_currency
                  FROM account_partial_reconcile
                 WHERE max_date > %(date_at)s
                 UNION ALL
                SELECT credit_move_id AS line_id, -amount,
                       -credit_amount_currency
                  FROM account_partial_reconcile
                 WHERE max_date > %(date_at)s
            ), late AS (
                SELECT line_id, SUM(amount) AS amount,
                       SUM(amount_currency) AS amount_currency
                  FROM late_partial
                 GROUP BY line_id
            )
            SELECT line.id,
                   line.partner_id,
                   line.move_name,
                   line.date,
                   COALESCE(line.date_maturity, line.date) AS due_date,
                   %(date_at)s - COALESCE(line.date_maturity, line.date)
                       AS days_overdue,
                   line.currency_id,
                   %(sign)s * line.balance AS balance,
                   %(sign)s * line.amount_currency AS amount_currency,
                   %(sign)s * (line.amount_residual + COALESCE(late.amount, 0))
                       AS open_amount,
                   %(sign)s * (line.amount_residual_currency
                               + COALESCE(late.amount_currency, 0))
                       AS open_amount_currency
              FROM account_move_line line
              JOIN account_account account ON account.id = line.account_id
              LEFT JOIN late ON late.line_id = line.id
             WHERE line.company_id = %(company_id)s
               AND line.parent_state = 'posted'
               AND line.date <= %(date_at)s
               AND account.account_type IN %(account_types)s
               AND line.partner_id IS NOT NULL
               AND (line.amount_residual != 0 OR line.amount_residual_currency != 0
                    OR late.line_id IS NOT NULL)
               %(partner_filter)s
            """,
            date_at=fields.Date.to_date(date_at),
            company_id=self.env.company.id,
            account_types=account_types,
            sign=1 if isinstance(account_type, tuple) else AGED_SIGN[account_type],
            partner_filter=partner_filter,
        )

    def _get_open_receivable_query(self, date_at):
        return self._get_open_balance_query(date_at, RECEIVABLE)

    def _fetch_aged_amounts(self, date_at, interval_days, account_type, by_currency):
        """[(partner id, currency id, bucket index, amount)] of the open lines;
        the currency is the company's unless ``by_currency``."""
        self.env["account.move.line"].flush_model()
        self.env["account.partial.reconcile"].flush_model()
        amount = "open_amount_currency" if by_currency else "open_amount"
        currency = (
            SQL("open_line.currency_id")
            if by_currency
            else SQL("%s", self.env.company.currency_id.id)
        )
        self.env.cr.execute(
            SQL(
                """
                SELECT open_line.partner_id,
                       %(currency)s,
                       CASE WHEN open_line.days_overdue <= 0 THEN 0
                            ELSE LEAST((open_line.days_overdue - 1)
                                       / %(interval_days)s + 1, 5)
                       END AS bucket,
                       SUM(open_line.%(amount)s)
                  FROM (%(open_lines)s) open_line
                 WHERE open_line.%(amount)s != 0
                 GROUP BY 1, 2, 3
                """,
                currency=currency,
                amount=SQL.identifier(amount),
                interval_days=int(interval_days),
                open_lines=self._get_open_balance_query(date_at, account_type),
            )
        )
        return self.env.cr.fetchall()

    def _get_aged_balance_by_currency(
        self, date_at, interval_days=30, account_type=RECEIVABLE, by_currency=True
    ):
        """Open balances at ``date_at`` by age and currency: ``{partner id:
        {currency: {"not_due": x, "period_1": x, ..., "older": x, "total": x}}}``
        in each document's currency (in company currency when not
        ``by_currency``). See :meth:`_get_aged_balance` for the buckets and
        partners; a partner without open items has no currency."""
        result = {}
        for partner_id, currency_id, bucket, amount in self._fetch_aged_amounts(
            date_at, interval_days, account_type, by_currency
        ):
            currency = self.env["res.currency"].browse(currency_id)
            amounts = result.setdefault(partner_id, {}).setdefault(
                currency, dict.fromkeys(AGED_BUCKETS, 0.0)
            )
            amounts[AGED_BUCKETS[bucket]] = currency.round(float(amount))
        for by_currency_amounts in result.values():
            for currency, amounts in by_currency_amounts.items():
                amounts["total"] = currency.round(sum(amounts.values()))
        if not self:
            return result
        return {
            partner.id: result.get(partner.commercial_partner_id.id, {})
            for partner in self
        }

    def _get_aged_balance(self, date_at, interval_days=30, account_type=RECEIVABLE):
        """Open balances at ``date_at`` by age, in company currency:
        ``{partner id: {"not_due": x, "period_1": x, ..., "period_4": x,
        "older": x, "total": x}}`` where ``period_k`` is overdue by
        ((k-1) * interval_days, k * interval_days] days. ``account_type`` is
        ``"asset_receivable"`` (what customers owe) or ``"liability_payable"``
        (what is owed to vendors), both positive. Every partner of the
        recordset is in the result, a contact with its company's figures; an
        empty recordset means every partner with an open line."""
        currency = self.env.company.currency_id
        by_currency = self._get_aged_balance_by_currency(
            date_at, interval_days, account_type, by_currency=False
        )
        empty = dict(dict.fromkeys(AGED_BUCKETS, 0.0), total=0.0)
        result = {partner.id: dict(empty) for partner in self}
        for partner_id, amounts in by_currency.items():
            result[partner_id] = dict(amounts.get(currency, empty))
        return result

    def _get_aged_receivable(self, date_at, interval_days=30):
        """:meth:`_get_aged_balance` of the receivables."""
        return self._get_aged_balance(date_at, interval_days, RECEIVABLE)

    def _get_aged_balance_items(
        self, date_at, account_type=RECEIVABLE, by_currency=False
    ):
        """The open items behind :meth:`_get_aged_balance`, oldest due first:
        ``{partner id: [{"id", "name", "date", "due_date", "days_overdue",
        "currency", "amount", "open_amount"}]}``, amounts in company currency
        or, ``by_currency``, in the item's currency."""
        self.env["account.move.line"].flush_model()
        self.env["account.partial.reconcile"].flush_model()
        self.env.cr.execute(
            SQL(
                """
                SELECT open_line.partner_id, open_line.id, open_line.move_name,
                       open_line.date, open_line.due_date, open_line.days_overdue,
                       open_line.currency_id, open_line.balance,
                       open_line.amount_currency, open_line.open_amount,
                       open_line.open_amount_currency
                  FROM (%(open_lines)s) open_line
                 WHERE open_line.%(amount)s != 0
                 ORDER BY open_line.due_date, open_line.move_name, open_line.id
                """,
                amount=SQL.identifier(
                    "open_amount_currency" if by_currency else "open_amount"
                ),
                open_lines=self._get_open_balance_query(date_at, account_type),
            )
        )
        items = {}
        for row in self.env.cr.dictfetchall():
            items.setdefault(row["partner_id"], []).append(
                self._get_aged_balance_item(row, by_currency)
            )
        if not self:
            return items
        return {
            partner.id: items.get(partner.commercial_partner_id.id, [])
            for partner in self
        }

    @api.model
    def _get_aged_balance_item(self, row, by_currency):
        """An open item of :meth:`_get_aged_balance_items` from its row."""
        if by_currency:
            currency = self.env["res.currency"].browse(row["currency_id"])
            amount, open_amount = row["amount_currency"], row["open_amount_currency"]
        else:
            currency = self.env.company.currency_id
            amount, open_amount = row["balance"], row["open_amount"]
        return {
            "id": row["id"],
            "name": row["move_name"],
            "date": row["date"],
            "due_date": row["due_date"],
            "days_overdue": max(row["days_overdue"], 0),
            "currency": currency,
            "amount": float(amount),
            "open_amount": float(open_amount),
        }

    def _get_aged_receivable_items(self, date_at):
        """:meth:`_get_aged_balance_items` of the receivables."""
        return self._get_aged_balance_items(date_at, RECEIVABLE)

    def _get_balance_activity(
        self, date_from, date_to, account_type=RECEIVABLE, by_currency=False
    ):
        """The period's activity on these partners' ``account_type`` lines:
        ``{partner id: {currency: {"opening": x, "lines": [{"name", "date",
        "kind", "amount"}], "closing": x}}}``, opening balance the day before
        ``date_from``, lines dated ``date_from`` to ``date_to``; in company
        currency or, ``by_currency``, in each line's currency. ``kind`` is
        "invoice", "credit_note", "payment" or "other"."""
        self.env["account.move.line"].flush_model()
        company_currency = self.env.company.currency_id
        self.env.cr.execute(
            SQL(
                """
                SELECT line.partner_id, %(currency)s AS currency_id,
                       line.date < %(date_from)s AS before,
                       line.move_name, line.date, move.move_type,
                       line.payment_id IS NOT NULL AS is_payment,
                       %(sign)s * line.%(amount)s AS amount
                  FROM account_move_line line
                  JOIN account_account account ON account.id = line.account_id
                  JOIN account_move move ON move.id = line.move_id
                 WHERE line.company_id = %(company_id)s
                   AND line.parent_state = 'posted'
                   AND line.date <= %(date_to)s
                   AND account.account_type = %(account_type)s
                   AND line.partner_id IN %(partners)s
                 ORDER BY line.date, line.move_name, line.id
                """,
                currency=SQL("line.currency_id")
                if by_currency
                else SQL("%s", company_currency.id),
                amount=SQL.identifier("amount_currency" if by_currency else "balance"),
                sign=AGED_SIGN[account_type],
                date_from=date_from,
                date_to=date_to,
                company_id=self.env.company.id,
                account_type=account_type,
                partners=tuple(self.commercial_partner_id.ids) or (0,),
            )
        )
        result = {}
        for row in self.env.cr.dictfetchall():
            currency = self.env["res.currency"].browse(row["currency_id"])
            activity = result.setdefault(row["partner_id"], {}).setdefault(
                currency, {"opening": 0.0, "lines": [], "closing": 0.0}
            )
            self._add_balance_activity_row(activity, row, currency)
        return {
            partner.id: result.get(partner.commercial_partner_id.id, {})
            for partner in self
        }

    @api.model
    def _add_balance_activity_row(self, activity, row, currency):
        """Add a row of :meth:`_get_balance_activity` to its currency's
        activity: to the opening balance if it is older than the period, else
        as a line of the period."""
        amount = float(row["amount"])
        activity["closing"] = currency.round(activity["closing"] + amount)
        if row["before"]:
            activity["opening"] = activity["closing"]
            return
        kind = "payment" if row["is_payment"] else ACTIVITY_KINDS.get(row["move_type"])
        activity["lines"].append(
            {
                "name": row["move_name"],
                "date": row["date"],
                "kind": kind or "other",
                "amount": amount,
            }
        )

    # ------------------------------------------------------------------
    # Scheduled statements
    # ------------------------------------------------------------------

    def _get_statement_recipients(self):
        """The contacts marked for statements, else the invoice addresses,
        else the customer; only those with an email."""
        self.ensure_one()
        contacts = self.child_ids.filtered("email")
        return (
            contacts.filtered("statement_contact")
            or contacts.filtered(lambda c: c.type == "invoice")
            or self.filtered("email")
        )

    def _get_statement_frequency(self):
        """ "monthly", "weekly" or False (no statements) in the current
        company: the company's schedule turns statements on, the customer
        may opt out or choose their own frequency."""
        self.ensure_one()
        schedule = self.env.company.statement_schedule
        if schedule == "off" or self.statement_frequency == "never":
            return False
        if self.statement_frequency in ("monthly", "weekly"):
            return self.statement_frequency
        return schedule

    def _get_statement_due_date(self, today):
        """This customer's next statement date: the one kept on the partner
        (not moved on until a statement is sent), or the first scheduled
        date from ``today``."""
        self.ensure_one()
        frequency = self._get_statement_frequency()
        if not frequency:
            return False
        return self.statement_next_date or self.env.company._get_statement_date_after(
            today - timedelta(days=1), frequency
        )

    def _statement_sent(self, statement_date):
        """The statement of ``statement_date`` was sent (or rightly skipped):
        the next one is due at the following scheduled date."""
        for partner in self:
            frequency = partner._get_statement_frequency()
            if not frequency or (
                partner.statement_next_date
                and partner.statement_next_date > statement_date
            ):
                continue
            partner.statement_next_date = self.env.company._get_statement_date_after(
                statement_date, frequency
            )

    def _statement_bounced(self, statement_date):
        """The statement of ``statement_date`` bounced: not done, due again
        from that date, held back until the customer's address changes."""
        for partner in self:
            if (
                not partner.statement_next_date
                or partner.statement_next_date > statement_date
            ):
                partner.statement_next_date = statement_date

    @api.model
    def _get_statements_bounced(self, company):
        """Customers whose scheduled statement bounced at an address they
        still have: not sent again until a person changes it."""
        mails = self.env["mail.mail"].search(
            [
                ("document_statement_company_id", "=", company.id),
                ("document_bounced", "=", True),
            ]
        )
        held = set()
        for mail in mails:
            bounced = set((mail.document_bounced_emails or "").split(","))
            for partner in mail._get_statement_partners():
                addresses = partner._get_statement_recipients().mapped(
                    "email_normalized"
                )
                if bounced & set(addresses):
                    held.add(partner.id)
        return held

    @api.model
    def _get_statement_customers(self):
        """The customers of the current company who receive statements: the
        partners of its posted receivable items, not opted out."""
        groups = self.env["account.move.line"]._read_group(
            [
                ("company_id", "=", self.env.company.id),
                ("account_type", "=", RECEIVABLE),
                ("parent_state", "=", "posted"),
                ("partner_id", "!=", False),
            ],
            ["partner_id"],
        )
        customers = self.browse([partner.id for [partner] in groups])
        return customers.commercial_partner_id.filtered(
            lambda p: p.statement_frequency != "never"
        )

    @api.model
    def _cron_send_statements(self):
        today = fields.Date.context_today(self)
        companies = self.env["res.company"].search(
            [("statement_schedule", "!=", "off")]
        )
        for company in companies:
            self.with_company(company)._send_due_statements(today)

    @api.model
    def _send_due_statements(self, today):
        """Queue the statements due on or before ``today`` in the current
        company: customers whose statement email is still waiting (or ended
        uncertain, or bounced at the address they still have) are left
        alone, those with nothing owed are skipped (their date moves on)
        unless the company asks for them, those without a
        usable address are named on the run's result, the others are sent,
        grouped by statement date. A customer's date moves on only when the
        email is sent; a failed one is due again at the next run."""
        company = self.env.company
        waiting_ids = (
            self._get_statements_waiting(company)
            | self._get_statements_to_render(company)
            | self._get_statements_bounced(company)
        )
        due = self._get_due_statement_groups(today)
        for (statement_date, frequency), partners in sorted(due.items()):
            partners = partners.filtered(lambda p: p.id not in waiting_ids)
            if not company.statement_include_zero:
                partners -= partners._skip_statements_owing_nothing(statement_date)
            # pinned: a failed send (or a missing address) is due again at
            # the next run
            partners.filtered(
                lambda p: not p.statement_next_date
            ).statement_next_date = statement_date
            unreachable = partners._get_statement_unreachable()
            if partners:
                (partners - unreachable)._send_statements(
                    statement_date, frequency, unreachable
                )

    @api.model
    def _get_due_statement_groups(self, today):
        """{(statement date, frequency): customers} due on or before ``today``."""
        due = {}
        for partner in self._get_statement_customers():
            statement_date = partner._get_statement_due_date(today)
            if statement_date and statement_date <= today:
                key = (statement_date, partner._get_statement_frequency())
                due[key] = due.get(key, self.browse()) | partner
        return due

    def _skip_statements_owing_nothing(self, statement_date):
        """These customers owing nothing at ``statement_date``: rightly
        skipped, their date moves on."""
        balances = self._get_aged_balance_by_currency(statement_date)
        owing_nothing = self.browse(
            partner_id
            for partner_id, amounts in balances.items()
            if not any(a["total"] for a in amounts.values())
        )
        owing_nothing._statement_sent(statement_date)
        return owing_nothing

    def _get_statement_unreachable(self):
        """These customers with no usable address for their statement: left
        out of the run (no batch line every day), named on its result, and
        still due once an address is added."""
        engine = self.env["document.email.send"]
        return self.filtered(
            lambda p: engine._get_skip_reason(p._get_statement_recipients())
        )

    @api.model
    def _get_statements_waiting(self, company):
        """Customers whose scheduled statement email is still queued, or
        ended uncertain (it may have been delivered): never sent again
        automatically, they wait for a person, who is asked to check."""
        waiting = self.env["mail.mail"].search(
            [
                ("document_statement_company_id", "=", company.id),
                "|",
                ("state", "=", "outgoing"),
                "&",
                ("state", "=", "exception"),
                ("document_uncertain", "=", True),
            ]
        )
        waiting.filtered(lambda m: m.state == "exception")._flag_uncertain()
        return set(waiting._get_statement_partners().ids)

    @api.model
    def _get_statements_to_render(self, company):
        """Customers whose scheduled statement is recorded in a batch still
        being processed (no email yet): not to be queued again."""
        lines = (
            self.env["document.email.batch.line"]
            .sudo()
            .search(
                [
                    ("stage", "=", "pending"),
                    ("batch_id.state", "=", "processing"),
                    ("batch_id.res_model", "=", "res.partner"),
                    ("batch_id.company_id", "=", company.id),
                ]
            )
        )
        return set(
            lines.filtered(
                lambda line: (line.batch_id.options or {}).get("document_statement_run")
            ).mapped("res_id")
        )

    def _get_statement_context(self, statement_date, frequency):
        """What the statement's report and template read: the date, the
        amounts by currency, the period's activity when the company asks."""
        company = self.env.company
        context = {
            "aged_date_at": fields.Date.to_string(statement_date),
            "aged_interval_days": 30,
            "aged_account_type": RECEIVABLE,
            "aged_by_currency": True,
            "aged_document": "statement",
            "document_statement_run": True,
            "document_statement_date": fields.Date.to_string(statement_date),
        }
        if company.statement_include_activity:
            context["aged_activity_from"] = fields.Date.to_string(
                company._get_statement_period_start(statement_date, frequency)
            )
        return context

    def _send_statements(self, statement_date, frequency, unreachable=None):
        """Queue one statement email per customer. The one place the run
        hands its emails over (to move to the batch model); the run's batch
        names the customers left out for want of an address."""
        context = self._get_statement_context(statement_date, frequency)
        engine = self.env["document.email.send"].with_context(**context)
        if self:
            batch = engine._queue_documents(self, options=context)
        else:
            batch = (
                self.env["document.email.batch"]
                .with_context(**context)
                ._create_batch(
                    self,
                    engine._get_default_settings(),
                    name=self.env._(
                        "Statements of %(date)s: none to send",
                        date=fields.Date.to_string(statement_date),
                    ),
                    options=context,
                )
            )
        batch.sudo().statement_unreachable_ids = unreachable or self.browse()
        return batch
