from odoo import api, fields, models

from ..models.res_partner import AGED_BUCKETS


class ReportAgedStatement(models.AbstractModel):
    """Values of the statement: the aged balance and open items of each
    partner at the date, interval, balance (receivable or payable) and
    currency option carried by the context; with ``aged_activity_from``, the
    activity of the period from that date too."""

    _name = "report.account_document_email.report_aged_statement"
    _description = "Customer Statement"

    @api.model
    def _get_report_values(self, docids, data=None):
        partners = self.env["res.partner"].browse(docids)
        # the figures come from SQL: only those allowed to send statements
        partners._check_document_email_access()
        date_at, interval_days = partners._get_aged_receivable_options()
        account_type = partners._get_aged_account_type()
        return {
            "doc_ids": docids,
            "doc_model": "res.partner",
            "docs": partners,
            "company": self.env.company,
            "currency": self.env.company.currency_id,
            "date_at": date_at,
            "interval_days": interval_days,
            "account_type": account_type,
            "bucket_labels": self._get_bucket_labels(interval_days),
            "sections": self._get_sections(partners, date_at, interval_days),
            "activity_from": fields.Date.to_date(
                self.env.context.get("aged_activity_from")
            ),
        }

    @api.model
    def _get_sections(self, partners, date_at, interval_days):
        """{partner id: [{"currency", "aged", "items", "activity"}]}: one
        section in company currency, or one per currency of the partner's
        documents when the context's ``aged_by_currency`` is set."""
        context = self.env.context
        by_currency = bool(context.get("aged_by_currency"))
        account_type = partners._get_aged_account_type()
        aged = partners._get_aged_balance_by_currency(
            date_at, interval_days, account_type, by_currency
        )
        items = partners._get_aged_balance_items(date_at, account_type, by_currency)
        date_from = fields.Date.to_date(context.get("aged_activity_from"))
        activity = (
            partners._get_balance_activity(
                date_from, date_at, account_type, by_currency
            )
            if date_from
            else {}
        )
        return {
            partner.id: self._get_partner_sections(
                aged[partner.id], items[partner.id], activity.get(partner.id, {})
            )
            for partner in partners
        }

    @api.model
    def _get_partner_sections(self, aged, items, activity):
        """One partner's sections from its figures by currency: one per
        currency, the company's first (alone if the partner has none)."""
        company_currency = self.env.company.currency_id
        empty = dict.fromkeys(["not_due", "older", "total"], 0.0)
        currencies = sorted(
            set(aged) | set(activity) or {company_currency},
            key=lambda c: (c != company_currency, c.name),
        )
        return [
            {
                "currency": currency,
                "aged": aged.get(currency, empty),
                "items": [item for item in items if item["currency"] == currency],
                "activity": activity.get(currency),
            }
            for currency in currencies
        ]

    @api.model
    def _get_bucket_labels(self, interval_days):
        """[(bucket, column title)] in the order of the columns."""
        return self.env["res.partner"]._get_aged_bucket_labels(interval_days)


class ReportAgedLetter(models.AbstractModel):
    """The receivables confirmation letter shows the same figures."""

    _name = "report.account_document_email.report_aged_letter"
    _inherit = "report.account_document_email.report_aged_statement"
    _description = "Receivables Confirmation Letter"


class ReportAgedBalance(models.AbstractModel):
    """The aged balance of every partner listed by the wizard ("Cartera por
    edades"): one row per partner, totals per bucket, a table per currency."""

    _name = "report.account_document_email.report_aged_balance"
    _description = "Aged Balance"

    @api.model
    def _get_report_values(self, docids, data=None):
        wizards = self.env["account.aged.receivable.wizard"].browse(docids)
        return {
            "doc_ids": docids,
            "doc_model": "account.aged.receivable.wizard",
            "docs": wizards,
            "company": self.env.company,
            "tables": {
                wizard.id: self._get_tables(wizard.line_ids) for wizard in wizards
            },
            "bucket_labels": {
                wizard.id: self.env["res.partner"]._get_aged_bucket_labels(
                    wizard.interval_days
                )
                for wizard in wizards
            },
        }

    @api.model
    def _get_tables(self, lines):
        """[(currency, rows sorted by partner name, totals per bucket)]"""
        company_currency = self.env.company.currency_id
        tables = []
        for currency, rows in sorted(
            lines.grouped("currency_id").items(),
            key=lambda item: (item[0] != company_currency, item[0].name),
        ):
            rows = rows.sorted(lambda line: (line.partner_id.name or "").lower())
            totals = {
                bucket: currency.round(sum(rows.mapped(bucket)))
                for bucket in (*AGED_BUCKETS, "total")
            }
            tables.append((currency, rows, totals))
        return tables
