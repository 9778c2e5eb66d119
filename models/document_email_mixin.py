import uuid
from contextlib import contextmanager

from odoo import models
from odoo.exceptions import AccessError


@contextmanager
def rendering_together(records):
    """``records`` in an environment where the documents rendered together
    share the figures of :meth:`_get_document_email_render_values`; the
    figures are forgotten when the rendering ends."""
    render = uuid.uuid4().hex
    try:
        yield records.with_context(document_email_render=render)
    finally:
        records.env.cr.cache.pop(("document_email_render", render), None)


class DocumentEmailMixin(models.AbstractModel):
    """A document the "Send by email" wizard can send.

    A document type plugs in by overriding the small ``_get_document_email_*``
    hooks; the wizard (``document.email.wizard``) does everything else."""

    _name = "document.email.mixin"
    _description = "Document Sendable by Email"

    def _get_document_email_group(self):
        """The group (xmlid) whose members may email these documents."""
        return "account.group_account_invoice"

    def _get_document_email_refusal(self):
        """Why this document cannot be emailed from here, or False."""
        self.ensure_one()
        return False

    def _check_document_email_access(self):
        """Raise AccessError unless the user may email (or print the
        statement of) these documents: the group of the document type and
        read access on each document."""
        if not self.env.su and not self.env.user.has_group(
            self._get_document_email_group()
        ):
            raise AccessError(
                self.env._(
                    "You are not allowed to send %(documents)s by email.",
                    # the type's name only, shown to whoever asks
                    documents=self.env["ir.model"].sudo()._get(self._name).name,
                )
            )
        self.check_access("read")

    def _get_document_email_partners(self):
        """Who gets the email by default."""
        self.ensure_one()
        return self.partner_id

    def _get_document_email_template_xmlid(self):
        """The mail.template giving subject and body."""
        self.ensure_one()
        return False

    def _get_document_email_report_xmlids(self):
        """The reports the user may attach, the default first."""
        self.ensure_one()
        return []

    def _get_document_email_company(self):
        self.ensure_one()
        return self.company_id

    def _get_document_email_template(self):
        xmlid = self._get_document_email_template_xmlid()
        return (xmlid and self.env.ref(xmlid, raise_if_not_found=False)) or self.env[
            "mail.template"
        ]

    def _get_document_email_reports(self):
        reports = self.env["ir.actions.report"]
        for xmlid in self._get_document_email_report_xmlids():
            reports |= self.env.ref(xmlid, raise_if_not_found=False) or reports
        return reports

    def _get_document_email_files(self, report):
        """{document id: [attachment values (name, raw, mimetype)]}: the
        files each document's email carries when ``report`` is the chosen
        PDF; may raise a UserError before anything is sent."""
        pdfs = self.env["document.email.wizard"]._render_pdfs(report, self)
        return {
            res_id: [{"name": name, "raw": raw, "mimetype": "application/pdf"}]
            for res_id, (name, raw) in pdfs.items()
        }

    def _get_document_email_files_made_when_sent(self, report):
        """Names of the files this document only makes when it is sent (the
        dialog lists them instead of showing a rendered PDF)."""
        self.ensure_one()
        return []

    def _get_document_email_alerts(self, report):
        """Messages the dialog shows before sending (e.g. what is missing to
        make an e-invoice)."""
        return []

    def _document_email_before_render(self):
        """Before the templates render these documents in one go: portal
        documents get their access token here, not one by one from the
        template's portal link while it renders."""
        if "access_token" not in self._fields:
            return
        for document in self.filtered(lambda document: not document.access_token):
            document.sudo().write({"access_token": str(uuid.uuid4())})

    def _get_document_email_render_values(self, key, compute):
        """``compute(documents)`` -> ``{id: value}``, computed once for all
        the documents a batch renders together (every template field of
        each), not once per document and field; outside such a rendering,
        for these documents only. ``key`` names the values (with whatever
        they depend on, e.g. a date)."""
        render = self.env.context.get("document_email_render")
        if not render:
            return compute(self)
        values = self.env.cr.cache.setdefault(("document_email_render", render), {})
        cached = values.setdefault(key, {})
        if not set(self.ids) <= cached.keys():
            # the documents rendered together are the records' prefetch set
            together = self.browse(self._prefetch_ids)._filtered_access("read")
            missing = (together | self).filtered(lambda d: d.id not in cached)
            cached.update(compute(missing))
        return {res_id: cached[res_id] for res_id in self.ids}

    def _document_email_after_send(self):
        """The emails of these documents are queued: mark them as sent."""
        return

    def action_send_document_email(self):
        """Open the "Send by email" wizard on these documents."""
        return self.env["document.email.wizard"]._action_open(self)

    def _get_document_email_files_apart(self, report):
        """The documents whose files are made in a transaction of their own
        before their batch chunk renders, because making them may commit
        (e.g. an invoice a localisation submits to its government)."""
        return self.browse()

    def _make_document_email_files_apart(self, report):
        """Make the files of this document, one of those made apart (the
        transaction may be committed on the way); raise a UserError when they
        cannot be made."""
        self.ensure_one()
