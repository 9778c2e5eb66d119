from odoo import fields, models
from odoo.tools import SQL

AGED_BUCKETS = ("not_due", "period_1", "period_2", "period_3", "period_4", "older")


class ResPartner(models.Model):
    _name = "res.partner"
    _inherit = ["res.partner", "document.email.mixin"]

    # ------------------------------------------------------------------
    # Send by email: customer statement or receivables confirmation letter
    # ------------------------------------------------------------------

    def _get_document_email_partners(self):
        """The customer, or its invoice address when only that has an email."""
        self.ensure_one()
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

    def _get_document_email_report_xmlids(self):
        self.ensure_one()
        statement = "account_document_email.action_report_aged_statement"
        letter = "account_document_email.action_report_aged_letter"
        if self._get_aged_document() == "letter":
            return [letter, statement]
        return [statement, letter]

    # ------------------------------------------------------------------
    # Aged receivables
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

    def _get_aged_receivable_summary(self):
        """This customer's aged balance at the context's date, with the date,
        company and currency: what the statement and letter emails show."""
        self.ensure_one()
        date_at, interval_days = self._get_aged_receivable_options()
        company = self.env.company
        return dict(
            self._get_aged_receivable(date_at, interval_days)[self.id],
            date_at=date_at,
            company=company,
            currency=company.currency_id,
        )

    def _get_open_receivable_query(self, date_at):
        """SQL selecting the current company's posted receivable lines open at
        ``date_at`` (of these partners, or of all when empty), with their open
        amount at that date in company currency: the residual today plus the
        reconciliations (partials) dated after ``date_at``."""
        partner_filter = (
            SQL("AND line.partner_id IN %s", tuple(self.ids)) if self else SQL()
        )
        return SQL(
            """
            WITH late_partial AS (
                SELECT debit_move_id AS line_id, amount
                  FROM account_partial_reconcile
                 WHERE max_date > %(date_at)s
                 UNION ALL
                SELECT credit_move_id AS line_id, -amount
                  FROM account_partial_reconcile
                 WHERE max_date > %(date_at)s
            ), late AS (
                SELECT line_id, SUM(amount) AS amount
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
                   line.balance,
                   line.amount_residual + COALESCE(late.amount, 0) AS open_amount
              FROM account_move_line line
              JOIN account_account account ON account.id = line.account_id
              LEFT JOIN late ON late.line_id = line.id
             WHERE line.company_id = %(company_id)s
               AND line.parent_state = 'posted'
               AND line.date <= %(date_at)s
               AND account.account_type = 'asset_receivable'
               AND line.partner_id IS NOT NULL
               AND (line.amount_residual != 0 OR late.line_id IS NOT NULL)
               %(partner_filter)s
            """,
            date_at=fields.Date.to_date(date_at),
            company_id=self.env.company.id,
            partner_filter=partner_filter,
        )

    def _get_aged_receivable(self, date_at, interval_days=30):
        """Open receivables at ``date_at`` by age, in company currency:
        ``{partner id: {"not_due": x, "period_1": x, ..., "period_4": x,
        "older": x, "total": x}}`` where ``period_k`` is overdue by
        ((k-1) * interval_days, k * interval_days] days. Every partner of the
        recordset is in the result; an empty recordset means every partner
        with an open receivable line."""
        self.env["account.move.line"].flush_model()
        self.env["account.partial.reconcile"].flush_model()
        self.env.cr.execute(
            SQL(
                """
                SELECT open_line.partner_id,
                       CASE WHEN open_line.days_overdue <= 0 THEN 0
                            ELSE LEAST((open_line.days_overdue - 1)
                                       / %(interval_days)s + 1, 5)
                       END AS bucket,
                       SUM(open_line.open_amount)
                  FROM (%(open_lines)s) open_line
                 WHERE open_line.open_amount != 0
                 GROUP BY 1, 2
                """,
                interval_days=int(interval_days),
                open_lines=self._get_open_receivable_query(date_at),
            )
        )
        rows = self.env.cr.fetchall()
        currency = self.env.company.currency_id
        result = {
            partner_id: dict.fromkeys(AGED_BUCKETS, 0.0) for partner_id in self.ids
        }
        for partner_id, bucket, amount in rows:
            amounts = result.setdefault(partner_id, dict.fromkeys(AGED_BUCKETS, 0.0))
            amounts[AGED_BUCKETS[bucket]] = currency.round(float(amount))
        for amounts in result.values():
            amounts["total"] = currency.round(sum(amounts.values()))
        return result

    def _get_aged_receivable_items(self, date_at):
        """The open items behind :meth:`_get_aged_receivable`, oldest due
        first: ``{partner id: [{"name", "date", "due_date", "days_overdue",
        "amount", "open_amount"}]}``."""
        self.env["account.move.line"].flush_model()
        self.env["account.partial.reconcile"].flush_model()
        self.env.cr.execute(
            SQL(
                """
                SELECT open_line.partner_id, open_line.move_name, open_line.date,
                       open_line.due_date, open_line.days_overdue,
                       open_line.balance, open_line.open_amount
                  FROM (%(open_lines)s) open_line
                 WHERE open_line.open_amount != 0
                 ORDER BY open_line.due_date, open_line.move_name, open_line.id
                """,
                open_lines=self._get_open_receivable_query(date_at),
            )
        )
        result = {partner_id: [] for partner_id in self.ids}
        for (
            partner_id,
            name,
            date,
            due,
            days,
            amount,
            open_amount,
        ) in self.env.cr.fetchall():
            result.setdefault(partner_id, []).append(
                {
                    "name": name,
                    "date": date,
                    "due_date": due,
                    "days_overdue": max(days, 0),
                    "amount": float(amount),
                    "open_amount": float(open_amount),
                }
            )
        return result
