from odoo import api, models


class ReportAgedStatement(models.AbstractModel):
    """Values of the customer statement: the aged balance and open items of
    each customer at the date and interval carried by the context."""

    _name = "report.account_document_email.report_aged_statement"
    _description = "Customer Statement"

    @api.model
    def _get_report_values(self, docids, data=None):
        partners = self.env["res.partner"].browse(docids)
        # the figures come from SQL: only those allowed to send statements
        partners._check_document_email_access()
        date_at, interval_days = partners._get_aged_receivable_options()
        return {
            "doc_ids": docids,
            "doc_model": "res.partner",
            "docs": partners,
            "company": self.env.company,
            "currency": self.env.company.currency_id,
            "date_at": date_at,
            "interval_days": interval_days,
            "bucket_labels": self._get_bucket_labels(interval_days),
            "aged": partners._get_aged_receivable(date_at, interval_days),
            "items": partners._get_aged_receivable_items(date_at),
        }

    @api.model
    def _get_bucket_labels(self, interval_days):
        """[(bucket, column title)] in the order of the columns."""
        periods = [
            (f"period_{k}", f"{(k - 1) * interval_days + 1}-{k * interval_days}")
            for k in range(1, 5)
        ]
        return [
            ("not_due", self.env._("Not due")),
            *periods,
            ("older", self.env._("Over %(days)s", days=4 * interval_days)),
        ]


class ReportAgedLetter(models.AbstractModel):
    """The receivables confirmation letter shows the same figures."""

    _name = "report.account_document_email.report_aged_letter"
    _inherit = "report.account_document_email.report_aged_statement"
    _description = "Receivables Confirmation Letter"
