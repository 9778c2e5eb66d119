import json
import re
import smtplib

from odoo import Command, api, fields, models
from odoo.exceptions import UserError
from odoo.tools import SQL, email_normalize, email_split, formataddr
from odoo.tools.safe_eval import safe_eval, time

from ..models.document_email_mixin import rendering_together


def valid_address(text):
    """The normalized address, or False: one @, a dotted domain, nothing
    that could break a header."""
    address = email_normalize(text or "", strict=True)
    if not address or address.count("@") != 1:
        return False
    local, domain = address.split("@")
    if not local or "." not in domain.strip(".") or any(c.isspace() for c in address):
        return False
    return address


def split_addresses(text):
    """Each address of an email field holding one or several ("a@x.com,
    b@x.com"), normalized; False for any that is not valid."""
    return [
        valid_address(part) for part in re.split(r"[,;]", text or "") if part.strip()
    ]


def safe_file_name(name):
    """A file name any mail client and file system accepts."""
    return (
        re.sub(r'[\\/:*?"<>|\x00-\x1f\x7f]', "_", one_line(name)).strip(" .")
        or "document"
    )


def ascii_domain(address):
    """local@domain with the domain in punycode, as SMTP needs it."""
    local, domain = address.rsplit("@", 1)
    return f"{local}@{domain.encode('idna').decode()}"


def one_line(text):
    """Header values on a single line: a rendered reference or partner name
    can never add a header (nor a recipient)."""
    return " ".join((text or "").split())


class DocumentEmailWizard(models.TransientModel):
    """Send one or several documents by email: one email per document, to its
    own partner, with its own PDF."""

    _name = "document.email.wizard"
    _inherit = "mail.composer.mixin"
    _description = "Send Documents by Email"

    res_model = fields.Char("Document Model", required=True, readonly=True)
    res_ids = fields.Char("Document IDs", required=True, readonly=True)
    document_count = fields.Integer(compute="_compute_document_count")
    document_names = fields.Char(compute="_compute_document_count")
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
    duplicate_warning = fields.Text(readonly=True)
    duplicate_confirmed = fields.Boolean()
    template_id = fields.Many2one(
        compute="_compute_template_id", store=True, readonly=False, precompute=True
    )

    # ------------------------------------------------------------------
    # Opening
    # ------------------------------------------------------------------

    @api.model
    def _action_open(self, records, context=None):
        """The wizard on these records; ``context`` adds keys the documents
        read when rendered (e.g. the date of a statement)."""
        self.with_context(**(context or {}))._browse_documents(
            records._name, records.ids
        )
        return {
            "type": "ir.actions.act_window",
            "name": self.env._("Send by email"),
            "res_model": self._name,
            "view_mode": "form",
            "views": [(False, "form")],
            "target": "new",
            "context": {
                **(context or {}),
                "active_model": records._name,
                "active_ids": records.ids,
                "dialog_size": "large",
            },
        }

    @api.model
    def _queue_for(self, records):
        """Queue one email per document with its defaults, without the dialog
        (e.g. right after printing cheques), and tell the user how it went."""
        wizard = self.with_context(
            active_model=records._name, active_ids=records.ids
        ).create({"attachment_ids": [Command.clear()]})
        wizard._send_batch(records)
        self.env.user._bus_send(
            "simple_notification",
            {
                "title": self.env._("Send by email"),
                "message": self.env._(
                    "%(count)s emails are being prepared in the background; "
                    "you will be notified when they are queued.",
                    count=len(records),
                ),
                "type": "info",
            },
        )
        return wizard

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
            self._browse_documents(values.get("res_model"), values["res_ids"])
        return values

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            if not vals.get("res_ids"):
                vals.update(self._documents_from_context())
            # refuse documents the user may not send before anything exists
            self._browse_documents(vals.get("res_model"), vals.get("res_ids"))
        wizards = super().create(vals_list)
        for wizard in wizards:
            # the files of the dialog (its PDF, the user's uploads) live and
            # die with it
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
        """Files of dialogs closed before being saved (rendered or uploaded
        while the dialog was open), once older than a day, as core does for
        the composer's."""
        limit = fields.Datetime.subtract(fields.Datetime.now(), days=1)
        self.env["ir.attachment"].sudo().search(
            [
                ("res_model", "=", self._name),
                ("res_id", "=", 0),
                ("create_date", "<", limit),
            ]
        ).unlink()

    def _get_own_uploads(self):
        """Files this user uploaded (or the dialog rendered) in this dialog:
        sending moves them onto the document, as core's composer does; any
        other file is copied."""
        self.ensure_one()
        uid = self.env.uid
        return self.attachment_ids.sudo().filtered(
            lambda a: (
                a.res_model == self._name
                and a.res_id in (0, self._origin.id or 0)
                and a.create_uid.id == uid
            )
        )

    @api.model
    def _browse_documents(self, model, res_ids):
        """The documents, checked readable by the current user."""
        if not model or not res_ids:
            raise UserError(self.env._("Select at least one document to send."))
        if model not in self.env or not isinstance(
            self.env[model], self.env.registry["document.email.mixin"]
        ):
            raise UserError(
                self.env._("Documents of type %(model)s cannot be sent.", model=model)
            )
        ids = json.loads(res_ids) if isinstance(res_ids, str) else list(res_ids)
        records = self.env[model].browse(ids).exists()
        records._check_document_email_access()
        refusals = list(
            filter(None, map(type(records)._get_document_email_refusal, records))
        )
        if refusals:
            raise UserError("\n".join(refusals))
        return records

    def _get_documents(self):
        self.ensure_one()
        return self._browse_documents(self.res_model, self.res_ids)

    # ------------------------------------------------------------------
    # Computes
    # ------------------------------------------------------------------

    def _compute_render_model(self):
        for wizard in self:
            wizard.render_model = wizard.res_model

    @api.depends("res_model", "res_ids")
    def _compute_document_count(self):
        for wizard in self:
            documents = wizard._get_documents()
            wizard.document_count = len(documents)
            wizard.document_names = ", ".join(documents[:20].mapped("display_name"))

    @api.depends("res_model", "res_ids")
    def _compute_template_id(self):
        for wizard in self:
            wizard.template_id = wizard._get_documents()[
                :1
            ]._get_document_email_template()

    @api.depends("res_model", "res_ids")
    def _compute_report_id(self):
        for wizard in self:
            wizard.report_id = wizard._get_documents()[
                :1
            ]._get_document_email_reports()[:1]

    @api.depends("res_model", "res_ids")
    def _compute_partner_ids(self):
        for wizard in self:
            documents = wizard._get_documents()
            wizard.partner_ids = (
                documents._get_document_email_partners().filtered("email")
                if len(documents) == 1
                else False
            )

    @api.depends("template_id", "res_ids")
    def _compute_subject(self):
        single = self.filtered(lambda w: w.template_id and w.document_count == 1)
        for wizard in single:
            document = wizard._get_documents()
            template = wizard.template_id.with_company(
                document._get_document_email_company()
            )
            wizard.subject = one_line(
                template._render_field("subject", document.ids, compute_lang=True)[
                    document.id
                ]
            )
        return super(DocumentEmailWizard, self - single)._compute_subject()

    @api.depends("template_id", "res_ids")
    def _compute_body(self):
        single = self.filtered(lambda w: w.template_id and w.document_count == 1)
        for wizard in single:
            document = wizard._get_documents()
            template = wizard.template_id.with_company(
                document._get_document_email_company()
            )
            wizard.body = template._render_field(
                "body_html",
                document.ids,
                compute_lang=True,
                options={"post_process": True},
            )[document.id]
        return super(DocumentEmailWizard, self - single)._compute_body()

    @api.depends("report_id", "res_ids")
    def _compute_document_files(self):
        for wizard in self:
            documents = wizard._get_documents()
            names = (
                documents._get_document_email_files_made_when_sent(wizard.report_id)
                if len(documents) == 1
                else []
            )
            wizard.document_files = ", ".join(names)
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
            added = wizard.attachment_ids - previous
            # the PDF it replaces was rendered for this dialog only
            (previous & wizard._get_own_uploads()).unlink()
            documents = wizard._get_documents()
            pdf = self.env["ir.attachment"]
            if (
                len(documents) == 1
                and wizard.report_id
                and not documents._get_document_email_files_made_when_sent(
                    wizard.report_id
                )
            ):
                files = wizard._get_files(documents, wizard.report_id)
                pdf = self.env["ir.attachment"].create(
                    [
                        dict(
                            values,
                            res_model=self._name,
                            res_id=wizard._origin.id or 0,
                            description="document_email_pdf",
                        )
                        for values in files[documents.id]
                    ]
                )
            wizard.attachment_ids = added | pdf

    # ------------------------------------------------------------------
    # PDF
    # ------------------------------------------------------------------

    @api.model
    def _render_pdfs(self, report, documents):
        """{document id: (file name, PDF bytes)}, rendered in a few calls
        (in parallel on several cores) when the report can be split per
        document, with the user's rights and each document's company (its
        letterhead)."""
        result = {}
        by_company = documents.grouped(lambda d: d._get_document_email_company())
        for company, group in by_company.items():
            # the report's figures once for the documents of each call
            with rendering_together(self.with_company(company)) as wizard:
                result.update(wizard._render_company_pdfs(report, group))
        return result

    @api.model
    def _render_company_pdfs(self, report, documents):
        report_ref = report.id
        reports = self.env["ir.actions.report"]
        documents = documents.with_env(self.env)
        per_document = reports._document_email_split_pdfs(report_ref, documents.ids)
        missing = [doc for doc in documents if doc.id not in per_document]
        for document in missing:
            content, report_type = reports._pre_render_qweb_pdf(
                report_ref, document.ids
            )
            per_document.update(
                reports._get_splitted_report(report_ref, content, report_type)
            )
        langs = self._document_langs(documents)
        return {
            document.id: (
                self._pdf_name(report, document, langs[document.id]),
                per_document[document.id],
            )
            for document in documents
        }

    @api.model
    def _document_langs(self, documents):
        """{document id: the language its email is written in}."""
        result = dict.fromkeys(documents.ids, self.env.lang)
        by_template = documents.grouped(lambda d: d._get_document_email_template())
        for template, group in by_template.items():
            if template:
                langs = template._render_lang(group.ids)
                result.update(
                    {res_id: langs[res_id] or self.env.lang for res_id in group.ids}
                )
        return result

    @api.model
    def _pdf_name(self, report, document, lang=None):
        """The report's file name in the recipient's language ("Estado de
        cuenta - ..."), safe as a file name."""
        report = report.with_context(lang=lang or self.env.lang)
        document = document.with_context(lang=lang or self.env.lang)
        name = "%s - %s" % (report.name, document.display_name)
        if report.print_report_name:
            name = safe_eval(
                report.print_report_name, {"object": document, "time": time}
            )
        return "%s.pdf" % safe_file_name(name)

    def _get_files(self, documents, report):
        """The documents' files for ``report`` (their PDF, an invoice's
        e-invoice), or the UserError of the first one missing."""
        files = documents._get_document_email_files(report)
        for document in documents:
            if error := self._missing_file_error(document, report, files):
                raise error
        return files

    def _missing_file_error(self, document, report, files):
        """A UserError when one of the document's files came out empty or
        not at all (e.g. a stored PDF missing from the filestore, which Odoo
        reads as empty and mail then silently leaves out): a document is never
        sent without them. None when they are all there."""
        document_files = files.get(document.id) or [{"name": report.name}]
        empty = [values["name"] for values in document_files if not values.get("raw")]
        if not empty:
            return None
        return UserError(
            self.env._(
                "%(document)s was not sent: its file %(file)s could not be made "
                "or read. If a stored PDF is missing from the file store, delete "
                "that attachment from the document so that it is made again.",
                document=document.display_name,
                file=", ".join(empty),
            )
        )

    # ------------------------------------------------------------------
    # Checks
    # ------------------------------------------------------------------

    @api.model
    def _check_addresses(self, text, label):
        """The addresses in a comma-separated field, or a clear error."""
        if text and ("\r" in text or "\n" in text):
            raise UserError(self.env._("%(field)s must be on one line.", field=label))
        addresses = []
        for raw in email_split(text) if text else []:
            address = valid_address(raw)
            if not address:
                raise UserError(
                    self.env._(
                        "%(field)s: %(address)s is not a valid email address.",
                        field=label,
                        address=raw,
                    )
                )
            addresses.append(address)
        if text and not addresses and text.strip():
            raise UserError(
                self.env._(
                    "%(field)s: %(address)s is not a valid email address.",
                    field=label,
                    address=text,
                )
            )
        return addresses

    @api.model
    def _invalid_recipients(self, partners):
        """Partners whose email field holds no address, or one not valid."""
        return partners.filtered(
            lambda p: not split_addresses(p.email) or not all(split_addresses(p.email))
        )

    def _recipient_addresses(self, partners):
        """Formatted To addresses, every address of each partner's email field;
        every partner must have only valid ones."""
        invalid = self._invalid_recipients(partners)
        if invalid:
            raise UserError(
                self.env._(
                    "These recipients have no valid email address: %(names)s",
                    names=", ".join(invalid.mapped("display_name")),
                )
            )
        return [
            formataddr((one_line(partner.name), ascii_domain(address)))
            for partner in partners
            for address in split_addresses(partner.email)
        ]

    def _check_send_input(self):
        self.ensure_one()
        if self.document_count == 1 and not self.partner_ids:
            raise UserError(self.env._("Add at least one recipient (To)."))
        if self.subject and ("\r" in self.subject or "\n" in self.subject):
            raise UserError(self.env._("The subject must be on one line."))
        if self.document_count == 1 and not (self.subject or "").strip():
            raise UserError(self.env._("Enter a subject."))
        self._recipient_addresses(self.partner_ids)
        # files picked by the user: only those they may read themselves
        self.attachment_ids.check("read")
        self._check_addresses(self.email_cc, self.env._("Cc"))
        self._check_addresses(self.email_bcc, self.env._("Bcc"))

    # ------------------------------------------------------------------
    # Sending
    # ------------------------------------------------------------------

    def action_send(self):
        self.ensure_one()
        self._check_send_input()
        documents = self._get_documents()
        if not self.duplicate_confirmed:
            repeated = self._recently_sent(documents)
            if repeated:
                return self._ask_duplicate_confirmation(repeated)
        if len(documents) == 1:
            return self._send_single(documents)
        return self._send_batch(documents)

    def action_send_again(self):
        """The user confirmed sending again what was just sent."""
        self.duplicate_confirmed = True
        return self.action_send()

    def _recently_sent(self, documents):
        """Documents already emailed to the same recipients within the
        duplicate window (minutes, system parameter, default 10): one query
        for the whole batch."""
        window = int(
            self.env["ir.config_parameter"]
            .sudo()
            .get_param("account_document_email.duplicate_window_minutes", 10)
        )
        since = fields.Datetime.subtract(fields.Datetime.now(), minutes=window)
        self.env["mail.mail"].flush_model(["state", "mail_message_id"])
        self.env["mail.message"].flush_model(["model", "res_id", "partner_ids"])
        self.env.cr.execute(
            SQL(
                """SELECT DISTINCT msg.res_id,
                          ARRAY(SELECT rel.res_partner_id
                                  FROM mail_message_res_partner_rel rel
                                 WHERE rel.mail_message_id = msg.id
                                 ORDER BY rel.res_partner_id)
                     FROM mail_mail mail
                     JOIN mail_message msg ON msg.id = mail.mail_message_id
                    WHERE msg.model = %(model)s
                      AND msg.res_id = ANY(%(ids)s)
                      AND mail.state IN ('outgoing', 'sent')
                      AND mail.create_date >= %(since)s""",
                model=documents._name,
                ids=documents.ids,
                since=since,
            )
        )
        sent_to = {
            (res_id, tuple(partners)) for res_id, partners in self.env.cr.fetchall()
        }
        pending = self._in_pending_batches(documents)
        if not (sent_to or pending):
            return documents.browse()
        return documents.filtered(
            lambda document: (
                document.id in pending
                or self._recipients_key(document, documents) in sent_to
            )
        )

    def _in_pending_batches(self, documents):
        """Ids of these documents already recorded in a batch still being
        processed (no email yet): sending them again would send twice."""
        self.env["document.email.batch.line"].flush_model(["stage", "batch_id"])
        self.env["document.email.batch"].flush_model(["state", "res_model"])
        self.env.cr.execute(
            SQL(
                """SELECT line.res_id
                     FROM document_email_batch_line line
                     JOIN document_email_batch batch ON batch.id = line.batch_id
                    WHERE batch.res_model = %(model)s
                      AND batch.state = 'processing'
                      AND line.stage = 'pending'
                      AND line.res_id = ANY(%(ids)s)""",
                model=documents._name,
                ids=documents.ids,
            )
        )
        return {res_id for (res_id,) in self.env.cr.fetchall()}

    def _recipients_key(self, document, documents):
        """(document id, its default recipients' ids, sorted)."""
        if len(documents) == 1:
            partners = self.partner_ids
        else:
            partners = document._get_document_email_partners().filtered("email")
        return document.id, tuple(sorted(partners.ids))

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

    def _send_single(self, document):
        mail = self._create_mails([self._prepare_single_values(document)])
        # a concurrent update of the document fails here, before the SMTP
        # call, not at commit after it (a replayed request would send twice)
        self.env.flush_all()
        try:
            mail.send(raise_exception=False)
        except smtplib.SMTPException as error:
            # Odoo re-raises a broken session; the email stays, failed
            if mail.state != "exception":
                mail.write({"state": "exception", "failure_reason": str(error)})
            mail.notification_ids.sudo().write({"notification_status": "exception"})
        names = {"document": document.display_name}
        if mail.state == "sent" and not mail.failure_reason:
            recipients = ", ".join(self.partner_ids.mapped("email"))
            message = self.env._(
                "%(document)s was sent to %(recipients)s.",
                recipients=recipients,
                **names,
            )
            return self._notify(message, "success")
        if mail.state == "sent":
            message = self.env._(
                "%(document)s was sent, but not to everyone: %(reason)s",
                reason=mail.failure_reason,
                **names,
            )
            return self._notify(message, "warning")
        if mail.state == "outgoing":
            message = self.env._(
                "%(document)s was not sent yet: %(reason)s",
                reason=mail.failure_reason,
                **names,
            )
            return self._notify(message, "warning")
        message = self.env._(
            "%(document)s could not be sent: %(reason)s The email is kept and "
            "can be retried from the document's chatter.",
            reason=mail.failure_reason or self.env._("unknown error."),
            **names,
        )
        return self._notify(message, "danger")

    def _send_batch(self, documents):
        """Record the batch and return at once: scheduled jobs render and
        queue one email per document (``document.email.batch``)."""
        batch = self.env["document.email.batch"]._create_from_wizard(self, documents)
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

    def _prepare_single_values(self, document):
        # the files now belong to the document, like a message posted on it:
        # those uploaded in this dialog move, any other is copied
        owner = {"res_model": document._name, "res_id": document.id}
        own = self._get_own_uploads()
        own.write(owner)
        attachments = own | (self.attachment_ids.sudo() - own).copy(owner)
        if document._get_document_email_files_made_when_sent(self.report_id):
            files = self._get_files(document, self.report_id)[document.id]
            attachments |= (
                self.env["ir.attachment"]
                .sudo()
                .create([dict(values, **owner) for values in files])
            )
        company = document._get_document_email_company()
        return self._prepare_mail_values(
            document,
            self.partner_ids,
            self.subject,
            self.body,
            attachments,
            self.template_id.with_company(company)._render_email_from(document)[
                document.id
            ],
        )

    def _get_batch_skip_reason(self, document, partners):
        """Why the batch skips this document (named with this reason on the
        result), or False."""
        if not partners:
            return self.env._("no recipient with an email address")
        invalid = self._invalid_recipients(partners)
        if invalid:
            return self.env._(
                "not a valid email address for %(names)s",
                names=", ".join(invalid.mapped("display_name")),
            )
        return False

    def _prepare_batch_values(self, documents):
        """{document: mail values, the reason (str) it is skipped, or the
        UserError it fails with}."""
        # the documents render with what this wizard carries (e.g. the date
        # of a statement), whichever environment they were browsed in
        documents = documents.with_env(self.env)
        rendered = self._render_batch(documents)
        partners_of = {
            document: document._get_document_email_partners().filtered("email")
            for document in documents
        }
        reasons = {
            document: self._get_batch_skip_reason(document, partners_of[document])
            for document in documents
        }
        # files only for what is sent (an invoice's official PDF marks it sent)
        sent = documents.filtered(lambda document: not reasons[document])
        files, report_of = {}, {}
        for report, group in self._batch_reports(documents).items():
            report_of.update(dict.fromkeys(group, report))
            if report and group & sent:
                files.update((group & sent)._get_document_email_files(report))
        result = {}
        for document in documents:
            partners = partners_of[document]
            if reasons[document]:
                result[document] = reasons[document]
                continue
            report = report_of[document]
            if report and (error := self._missing_file_error(document, report, files)):
                result[document] = error  # this one fails, the others go on
                continue
            subject, body, email_from = rendered[document.id]
            owner = {"res_model": document._name, "res_id": document.id}
            # each email owns its files, like a message posted on the document
            attachments = self.attachment_ids.sudo().copy(owner)
            if files.get(document.id):
                attachments |= (
                    self.env["ir.attachment"]
                    .sudo()
                    .create([dict(values, **owner) for values in files[document.id]])
                )
            result[document] = self._prepare_mail_values(
                document, partners, subject, body, attachments, email_from
            )
        return result

    def _batch_reports(self, documents):
        """{report: documents}: the report the user chose, or each document's
        own default one (a receipt for one payment, an advice for the next)."""
        if self.report_id != documents[:1]._get_document_email_reports()[:1]:
            return {self.report_id: documents}
        return documents.grouped(lambda d: d._get_document_email_reports()[:1])

    def _render_batch(self, documents):
        """{document id: (subject, body, sender)} from the wizard's (possibly
        edited) template, or each document's own template when it differs;
        one rendering per template, not per document."""
        documents._document_email_before_render()
        # figures the templates read (e.g. a statement's balance) are
        # computed once for all the documents, not per document and field
        with rendering_together(self) as wizard:
            return wizard._render_templates(documents.with_env(wizard.env))

    def _render_templates(self, documents):
        result = {}
        by_template = documents.grouped(
            lambda d: (
                d._get_document_email_template(),
                d._get_document_email_company(),
            )
        )
        for (template, company), group in by_template.items():
            edited = template == self.template_id
            body_field = "body" if edited else "body_html"
            # the document's company: its name, its server, its letterhead
            template = template.with_company(company)
            source = self.with_company(company) if edited else template
            subjects = source._render_field("subject", group.ids, compute_lang=True)
            bodies = source._render_field(
                body_field, group.ids, compute_lang=True, options={"post_process": True}
            )
            senders = template._render_email_from(group)
            for res_id in group.ids:
                result[res_id] = (
                    one_line(subjects[res_id]),
                    bodies[res_id],
                    senders[res_id],
                )
        return result

    def _prepare_mail_values(
        self, document, partners, subject, body, attachments, email_from
    ):
        company = document._get_document_email_company()
        return {
            "model": document._name,
            "res_id": document.id,
            "record_name": document.display_name,
            "subject": one_line(subject),
            "body_html": body,
            "body": body,
            "email_from": email_from
            or self.env.user.email_formatted
            or company.email_formatted,
            "author_id": self.env.user.partner_id.id,
            "email_to": ", ".join(self._recipient_addresses(partners)),
            "email_cc": ", ".join(self._check_addresses(self.email_cc, "Cc")) or False,
            "email_bcc": ", ".join(self._check_addresses(self.email_bcc, "Bcc"))
            or False,
            "partner_ids": [Command.set(partners.ids)],
            "attachment_ids": [Command.set(attachments.ids)],
            "mail_server_id": company._get_document_mail_server().id,
            "message_type": "comment",
            "subtype_id": self.env.ref("mail.mt_comment").id,
            "is_notification": True,
            "auto_delete": False,
        }

    def _create_mails(self, values_list):
        """mail.mail records shown in each document's chatter, with one
        notification per partner so the chatter shows sent or failed."""
        mails = self.env["mail.mail"].sudo().create(values_list)
        self.env["mail.notification"].sudo().create(
            [
                {
                    "mail_message_id": mail.mail_message_id.id,
                    "mail_mail_id": mail.id,
                    "res_partner_id": partner.id,
                    "notification_type": "email",
                    "notification_status": "ready",
                    "is_read": True,
                }
                for mail in mails
                for partner in mail.partner_ids
            ]
        )
        # as core's Send once the email is queued (e.g. the move counts as sent)
        for model, group in mails.grouped("model").items():
            self.env[model].browse(group.mapped("res_id"))._document_email_after_send()
        return mails
