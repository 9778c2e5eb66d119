from odoo import api, models

# documents per wkhtmltopdf call when emailing a batch (Odoo's own batch
# sending uses 80); the scheduled jobs render chunks on both cores
PDF_BATCH_SIZE = 50


class IrActionsReport(models.Model):
    _inherit = "ir.actions.report"

    @api.model
    def _document_email_split_pdfs(self, report_ref, res_ids):
        """{res_id: the document's own PDF} (or HTML in test mode), as
        ``_pre_render_qweb_pdf`` + ``_get_splitted_report`` give them, in
        calls of PDF_BATCH_SIZE documents."""
        param = self.env["ir.config_parameter"].sudo().get_param
        size = int(param("account_document_email.pdf_batch_size", PDF_BATCH_SIZE))
        result = {}
        for start in range(0, len(res_ids), size):
            batch = res_ids[start : start + size]
            content, report_type = self._pre_render_qweb_pdf(report_ref, batch)
            result.update(self._get_splitted_report(report_ref, content, report_type))
        return result
