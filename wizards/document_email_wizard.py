import json

from odoo import api, fields, models


class DocumentEmailWizard(models.TransientModel):
    """Send one or several documents by email: the dialog only collects the
    user's choices; the engine (``document.email.send``) renders and queues.

    One document: the subject and body shown are its template rendered once
    for it, and whatever the user sends (typed or accepted) is final text,
    never rendered again. Several documents: each gets its own template
    rendered by the engine; the dialog shows a preview on the first one."""

    _name = "document.email.wizard"
    _inherit = "mail.composer.mixin"
    _description = "Send Documents by Email"

    res_model = fields.Char("Document Model", required=True, readonly=True)
    res_ids = fields.Char("Document IDs", required=True, readonly=True)
    document_count = fields.Integer(compute="_compute_document_count")
    groupable = fields.Boolean(compute="_compute_document_count")
    document_names = fields.Char(compute="_compute_document_count")
    preview_label = fields.Char(compute="_compute_document_count")
    partner_ids = fields.Many2many(
        "res.partner",
        "document_email_wizard_res_partner_rel",
        "wizard_id",
        "partner_id",
        string="To",
        compute="_compute_partner_ids",
        store=True,
        readonly=False,
    )
    email_cc = fields.Char("Cc", help="Comma-separated addresses in copy")
    email_bcc = fields.Char("Bcc", help="Comma-separated addresses in blind copy")
    report_id = fields.Many2one(
        "ir.actions.report",
        string="Document PDF",
        compute="_compute_report_id",
        store=True,
        readonly=False,
        domain="[('model', '=', res_model), ('report_type', '=', 'qweb-pdf')]",
    )
    attachment_ids = fields.Many2many(
        "ir.attachment",
        "document_email_wizard_ir_attachment_rel",
        "wizard_id",
        "attachment_id",
        string="Attachments",
        compute="_compute_attachment_ids",
        store=True,
        readonly=False,
    )
    document_files = fields.Char(
        "Files made when sent",
        compute="_compute_document_files",
        help="The document's own files (e.g. an invoice's official PDF and "
        "e-invoice), made the first time it is sent and attached to each email.",
    )
    document_alerts = fields.Text(compute="_compute_document_files")
    per_customer = fields.Boolean(
        "One email per customer",
        help="Several documents: each customer gets one email with all its "
        "documents' files and a body listing them, instead of one email per "
        "document.",
    )
    duplicate_warning = fields.Text(readonly=True)
    duplicate_confirmed = fields.Boolean()
    template_id = fields.Many2one(
        compute="_compute_template_id", store=True, readonly=False, precompute=True
    )

    @api.model
    def _documents_from_context(self):
        context = self.env.context
        ids = context.get("active_ids") or (
            context.get("active_id") and [context["active_id"]]
        )
        if not (context.get("active_model") and ids):
            return {}
        return {"res_model": context["active_model"], "res_ids": json.dumps(list(ids))}

    @api.model
    def default_get(self, fields_list):
        values = super().default_get(fields_list)
        if not values.get("res_ids"):
            values.update(self._documents_from_context())
        if values.get("res_ids"):
            # refuse before the dialog renders anything
            self.env["document.email.send"]._browse_documents(
                values.get("res_model"), values["res_ids"]
            )
        return values

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            if not vals.get("res_ids"):
                vals.update(self._documents_from_context())
            # refuse documents the user may not send before anything exists
            self.env["document.email.send"]._browse_documents(
                vals.get("res_model"), vals.get("res_ids")
            )
        wizards = super().create(vals_list)
        for wizard in wizards:
            # the dialog's files (its PDF, the user's uploads) live with it
            wizard._get_own_uploads().filtered(lambda a: not a.res_id).write(
                {"res_id": wizard.id}
            )
        return wizards

    def unlink(self):
        """Cancelled or vacuumed: the files still on the dialog go too."""
        self.env["ir.attachment"].sudo().search(
            [("res_model", "=", self._name), ("res_id", "in", self.ids)]
        ).unlink()
        return super().unlink()

    @api.autovacuum
    def _gc_document_email_attachments(self):
        """Files of dialogs closed before being saved, once older than a
        day, as core does for the composer's."""
        limit = fields.Datetime.subtract(fields.Datetime.now(), days=1)
        self.env["ir.attachment"].sudo().search(
            [
                ("res_model", "=", self._name),
                ("res_id", "=", 0),
                ("create_date", "<", limit),
            ]
        ).unlink()

    def _get_own_uploads(self):
        """Files this user uploaded (or the dialog rendered) here: sending
        moves them onto the document, as core's composer does; any other
        file is copied."""
        self.ensure_one()
        return self.attachment_ids.sudo().filtered(
            lambda a: (
                a.res_model == self._name
                and a.res_id in (0, self._origin.id or 0)
                and a.create_uid.id == self.env.uid
            )
        )

    def _get_documents(self):
        self.ensure_one()
        return self.env["document.email.send"]._browse_documents(
            self.res_model, self.res_ids
        )

    def _compute_render_model(self):
        for wizard in self:
            wizard.render_model = wizard.res_model

    @api.depends("res_model", "res_ids")
    def _compute_document_count(self):
        for wizard in self:
            documents = wizard._get_documents()
            wizard.document_count = len(documents)
            wizard.groupable = documents._document_email_groupable()
            wizard.document_names = ", ".join(documents[:20].mapped("display_name"))
            wizard.preview_label = len(documents) > 1 and self.env._(
                "Preview for %(document)s; each document gets its own.",
                document=documents[:1].display_name,
            )

    @api.depends("res_model", "res_ids")
    def _compute_template_id(self):
        for wizard in self:
            documents = wizard._get_documents()
            wizard.template_id = documents[:1]._get_document_email_template()

    @api.depends("res_model", "res_ids")
    def _compute_report_id(self):
        for wizard in self:
            documents = wizard._get_documents()
            wizard.report_id = documents[:1]._get_document_email_reports()[:1]

    # one method per field: a default given for one would stop the others
    @api.depends("res_model", "res_ids")
    def _compute_partner_ids(self):
        for wizard in self:
            documents = wizard._get_documents()
            wizard.partner_ids = len(documents) == 1 and (
                documents._get_document_email_partners().filtered("email")
            )

    @api.depends("template_id", "res_ids")
    def _compute_subject(self):
        for wizard in self:
            wizard.subject = wizard._render_preview()[0]

    @api.depends("template_id", "res_ids")
    def _compute_body(self):
        for wizard in self:
            wizard.body = wizard._render_preview()[1]

    @api.depends("res_ids")
    def _compute_can_edit_body(self):
        # one document: final text, sent as typed; several: a preview
        for wizard in self:
            wizard.can_edit_body = wizard.document_count == 1

    def _render_preview(self):
        """(subject, body) of the template rendered once, on the first
        document: final text for one document, a preview for several."""
        document = self._get_documents()[:1]
        engine = self.env["document.email.send"]
        settings = engine._get_default_settings(template=self.template_id)
        engine._check_choices(settings, document)
        return engine._render_templates(document, settings)[document.id][:2]

    @api.depends("report_id", "res_ids")
    def _compute_document_files(self):
        for wizard in self:
            documents = wizard._get_documents()
            names = len(documents) == 1 and (
                documents._get_document_email_files_made_when_sent(wizard.report_id)
            )
            wizard.document_files = ", ".join(names or [])
            alerts = documents._get_document_email_alerts(wizard.report_id)
            wizard.document_alerts = "\n".join(alerts)

    @api.depends("report_id", "res_ids")
    def _compute_attachment_ids(self):
        """The document's PDF, rendered now so the user sees it; other files
        the user added stay. Several documents get their own PDF when sent."""
        for wizard in self:
            previous = wizard.attachment_ids.filtered(
                lambda a: a.description == "document_email_pdf"
            )
            # the PDF it replaces was rendered for this dialog only
            (previous & wizard._get_own_uploads()).unlink()
            wizard.attachment_ids = (
                wizard.attachment_ids - previous
            ) | wizard._render_dialog_pdf()

    def _render_dialog_pdf(self):
        documents = self._get_documents()
        if len(documents) != 1 or not self.report_id:
            return self.env["ir.attachment"]
        if documents._get_document_email_files_made_when_sent(self.report_id):
            return self.env["ir.attachment"]
        engine = self.env["document.email.send"]
        engine._check_choices(
            engine._get_default_settings(report=self.report_id), documents
        )
        files = engine._get_files(documents, self.report_id)
        return self.env["ir.attachment"].create(
            [
                dict(
                    values,
                    res_model=self._name,
                    res_id=self._origin.id or 0,
                    description="document_email_pdf",
                )
                for values in files[documents.id]
            ]
        )

    def _get_settings(self, documents):
        """The engine's settings from what the user chose."""
        engine = self.env["document.email.send"]
        first = documents[:1]
        values = {
            "email_cc": self.email_cc,
            "email_bcc": self.email_bcc,
            "attachments": self.attachment_ids,
        }
        if len(documents) == 1:
            values.update(
                template=self.template_id,
                report=self.report_id,
                subject=self.subject or "",
                body=self.body or "",
                partners=self.partner_ids,
            )
        elif self.per_customer:
            values["per_customer"] = True
        # for several, a choice other than the first document's default
        elif self.template_id != first._get_document_email_template():
            values["template"] = self.template_id
        if (
            len(documents) > 1
            and self.report_id != (first._get_document_email_reports()[:1])
        ):
            values["report"] = self.report_id
        return engine._get_default_settings(**values)

    def action_send(self):
        self.ensure_one()
        documents = self._get_documents()
        settings = self._get_settings(documents)
        engine = self.env["document.email.send"]
        engine._check_settings(settings, documents)
        if not self.duplicate_confirmed:
            repeated = engine._recently_sent(documents, settings)
            if repeated:
                return self._ask_duplicate_confirmation(repeated)
        if len(documents) == 1:
            return self._send_single(documents, settings)
        return self._send_batch(documents, settings)

    def action_send_again(self):
        """The user confirmed sending again what was just sent."""
        self.duplicate_confirmed = True
        return self.action_send()

    def _ask_duplicate_confirmation(self, repeated):
        self.duplicate_warning = self.env._(
            "Already sent to the same recipients in the last minutes: %(names)s. "
            "Send again?",
            names=", ".join(repeated.mapped("display_name")),
        )
        return {
            "type": "ir.actions.act_window",
            "name": self.env._("Send by email"),
            "res_model": self._name,
            "res_id": self.id,
            "view_mode": "form",
            "target": "new",
            "context": self.env.context,
        }

    def _send_single(self, document, settings):
        # the files uploaded in this dialog move to the email, others are copied
        engine = self.env["document.email.send"]
        mail = engine._queue_to_send_now(document, settings, self._get_own_uploads())
        message, kind = engine._send_now(document, mail, dialog=self)
        return self._notify(message, kind)

    def _send_batch(self, documents, settings):
        """Record the batch and return at once: scheduled jobs render and
        queue one email per document (``document.email.batch``)."""
        batch = self.env["document.email.send"]._queue_batch(documents, settings)
        return {
            "type": "ir.actions.act_window",
            "name": self.env._("Send by email"),
            "res_model": batch._name,
            "res_id": batch.id,
            "view_mode": "form",
            "views": [(False, "form")],
            "target": "new",
        }

    def _notify(self, message, kind):
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {
                "title": self.env._("Send by email"),
                "message": message,
                "type": kind,
                "sticky": kind != "success",
                "next": {"type": "ir.actions.act_window_close"},
            },
        }
