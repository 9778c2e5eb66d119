import contextvars
import os
from concurrent.futures import ThreadPoolExecutor

from odoo import api, models, modules

# documents per wkhtmltopdf call when emailing a batch (Odoo's own batch
# sending uses 80; smaller calls keep both cores busy until the end)
PDF_BATCH_SIZE = 50
PDF_STATE_KEY = "document_email_pdf_state"


class _Deferred(BaseException):
    """Leaves Odoo's rendering once the HTML is ready and wkhtmltopdf has
    started in the background (a BaseException: no ``except Exception`` in
    between may take it for a rendering error)."""


class _ParallelPdfState:
    """HTML already rendered and wkhtmltopdf runs started, for one batch."""

    def __init__(self, pool):
        self.pool = pool
        self.html = {}
        self.jobs = {}


def _run_wkhtmltopdf_apart(dbname, uid, context, kwargs):
    """Odoo's wkhtmltopdf call, in a worker thread with a cursor of its own:
    it only reads the report and its paper format, the documents are
    already rendered to HTML by the caller's transaction."""
    registry = modules.registry.Registry(dbname)
    with registry.cursor() as cr:
        env = api.Environment(cr, uid, context)
        return env["ir.actions.report"]._run_wkhtmltopdf(**kwargs)


class IrActionsReport(models.Model):
    _inherit = "ir.actions.report"

    @api.model
    def _document_email_split_pdfs(self, report_ref, res_ids):
        """{res_id: the document's own PDF} (or HTML in test mode), as
        ``_pre_render_qweb_pdf`` + ``_get_splitted_report`` give them, in
        calls of PDF_BATCH_SIZE documents, two wkhtmltopdf processes at a time
        on a multi-core machine (the HTML is still rendered here, in this
        transaction, so it shows exactly what it did before)."""
        param = self.env["ir.config_parameter"].sudo().get_param
        size = int(param("account_document_email.pdf_batch_size", PDF_BATCH_SIZE))
        workers = int(
            param("account_document_email.pdf_workers", min(2, os.cpu_count() or 1))
        )
        batches = [res_ids[i : i + size] for i in range(0, len(res_ids), size)]
        result = {}
        if len(batches) < 2 or workers < 2 or modules.module.current_test:
            for batch in batches:
                content, report_type = self._pre_render_qweb_pdf(report_ref, batch)
                result.update(
                    self._get_splitted_report(report_ref, content, report_type)
                )
            return result
        with ThreadPoolExecutor(workers) as pool:
            this = self.with_context(**{PDF_STATE_KEY: _ParallelPdfState(pool)})
            deferred = []
            # HTML here and wkhtmltopdf in the background, batch after batch
            for batch in batches:
                try:
                    content, report_type = this._pre_render_qweb_pdf(report_ref, batch)
                except _Deferred:
                    deferred.append(batch)
                    continue
                result.update(
                    self._get_splitted_report(report_ref, content, report_type)
                )
            # the same calls again take the finished PDFs and split them
            for batch in deferred:
                content, report_type = this._pre_render_qweb_pdf(report_ref, batch)
                result.update(
                    self._get_splitted_report(report_ref, content, report_type)
                )
        return result

    @api.model
    def _render_qweb_html(self, report_ref, docids, data=None):
        state = self.env.context.get(PDF_STATE_KEY)
        if not state:
            return super()._render_qweb_html(report_ref, docids, data=data)
        key = (str(report_ref), tuple(docids or ()))
        if key not in state.html:
            state.html[key] = super()._render_qweb_html(report_ref, docids, data=data)
        return state.html[key]

    def _run_wkhtmltopdf(
        self,
        bodies,
        report_ref=False,
        header=None,
        footer=None,
        landscape=False,
        specific_paperformat_args=None,
        set_viewport_size=False,
    ):
        arguments = {
            "bodies": bodies,
            "report_ref": report_ref,
            "header": header,
            "footer": footer,
            "landscape": landscape,
            "specific_paperformat_args": specific_paperformat_args,
            "set_viewport_size": set_viewport_size,
        }
        state = self.env.context.get(PDF_STATE_KEY)
        if not state:
            return super()._run_wkhtmltopdf(**arguments)
        key = (tuple(bodies), header, footer)
        if key in state.jobs:
            return state.jobs[key].result()
        if isinstance(report_ref, models.BaseModel):
            arguments["report_ref"] = report_ref.id
        context = dict(self.env.context)
        del context[PDF_STATE_KEY]
        # the worker sees the HTTP request too (the session cookie Odoo gives
        # wkhtmltopdf for the report's links)
        state.jobs[key] = state.pool.submit(
            contextvars.copy_context().run,
            _run_wkhtmltopdf_apart,
            self.env.cr.dbname,
            self.env.uid,
            context,
            arguments,
        )
        raise _Deferred()
