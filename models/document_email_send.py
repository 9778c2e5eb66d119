import json
import re
import smtplib

from odoo import Command, api, fields, models
from odoo.exceptions import UserError
from odoo.tools import SQL, email_normalize, email_split, formataddr
from odoo.tools.safe_eval import safe_eval, time

from .document_email_mixin import rendering_together
from .document_mail_send_mark import SEND_NOW_ORIGIN
from .mail_mail_claim import SENDING_NOW

# context keys set by the server for a statement run (they tag its emails and
# move customers' statement dates): never taken from a client's context
SERVER_CONTEXT_KEYS = ("document_statement_run", "document_statement_date")


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


def one_line(text):
    """Header values on a single line: a rendered reference or partner name
    can never add a header (nor a recipient)."""
    return " ".join((text or "").split())


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


class DocumentEmailSend(models.AbstractModel):
    """The one engine behind every "Send by email" path (the dialog, batch
    chunks, scheduled statements, confirmation campaigns, sends after
    printing), as core's ``account.move.send`` is behind its wizards.

    It is called with plain settings (a dict):

    - ``template``: the mail.template the user chose instead of each
      document's own, or an empty recordset;
    - ``report``: the ir.actions.report chosen instead of each document's
      own, an empty recordset for no PDF, or None for each document's own;
    - ``subject``, ``body``: final text typed (or accepted) by the user for
      one document, sent as it is and never rendered; None to render the
      template's own subject and body for each document;
    - ``partners``: the recipients of one document, or None for each
      document's own;
    - ``email_cc``, ``email_bcc``: addresses (text);
    - ``attachments``: the files the user added (ir.attachment).

    Subject and body are either the template's, rendered here once per
    document, or final text: text rendered once is never rendered again,
    and text a partner typed (a name, a reference) is never template code.
    """

    _name = "document.email.send"
    _description = "Send Documents by Email: Engine"

    # ------------------------------------------------------------------
    # Documents and settings
    # ------------------------------------------------------------------

    @api.model
    def _browse_documents(self, model, res_ids):
        """The documents, checked sendable by the current user (group, read
        access, no refusal) before anything is rendered."""
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

    @api.model
    def _get_default_settings(self, **values):
        """Each document's own template, report and recipients."""
        settings = {
            "template": self.env["mail.template"],
            "report": None,
            "subject": None,
            "body": None,
            "partners": None,
            "email_cc": False,
            "email_bcc": False,
            "attachments": self.env["ir.attachment"],
        }
        settings.update(values)
        return settings

    @api.model
    def _get_template(self, document, settings):
        return settings["template"] or document._get_document_email_template()

    @api.model
    def _get_reports(self, documents, settings):
        """{report: documents}: the report the user chose, or each
        document's own default one (a receipt for one payment, an advice for
        the next)."""
        if settings["report"] is not None:
            return {settings["report"]: documents}
        return documents.grouped(lambda d: d._get_document_email_reports()[:1])

    @api.model
    def _get_partners(self, document, settings):
        if settings["partners"] is not None:
            return settings["partners"]
        return document._get_document_email_partners().filtered("email")

    # ------------------------------------------------------------------
    # Templates: the template's own content, rendered once per document
    # ------------------------------------------------------------------

    @api.model
    def _render_templates(self, documents, settings):
        """{document id: (subject, body, sender)}, rendered from each
        document's template (or the one chosen) in its company, one
        rendering per template and company; figures the templates read
        (e.g. a statement's balance) are computed once for all documents."""
        documents._document_email_before_render()
        with rendering_together(self) as engine:
            documents = documents.with_env(engine.env)
            result = {}
            groups = documents.grouped(
                lambda d: (
                    engine._get_template(d, settings),
                    d._get_document_email_company(),
                )
            )
            for (template, company), group in groups.items():
                result.update(engine._render_template(template, company, group))
            return result

    @api.model
    def _render_template(self, template, company, documents):
        # only the template's own fields: never text a user or partner typed
        template = template.with_company(company)
        if not template:
            empty = ("", "", False)
            return dict.fromkeys(documents.ids, empty)
        subjects = template._render_field("subject", documents.ids, compute_lang=True)
        bodies = template._render_field(
            "body_html",
            documents.ids,
            compute_lang=True,
            options={"post_process": True},
        )
        senders = template._render_email_from(documents)
        return {
            res_id: (one_line(subjects[res_id]), bodies[res_id], senders[res_id])
            for res_id in documents.ids
        }

    # ------------------------------------------------------------------
    # PDF and files
    # ------------------------------------------------------------------

    @api.model
    def _render_pdfs(self, report, documents):
        """{document id: (file name, PDF bytes)}, rendered in a few calls
        when the report can be split per document, with the user's rights
        and each document's company (its letterhead)."""
        result = {}
        by_company = documents.grouped(lambda d: d._get_document_email_company())
        for company, group in by_company.items():
            # the report's figures once for the documents of each call
            with rendering_together(self.with_company(company)) as engine:
                result.update(engine._render_company_pdfs(report, group))
        return result

    @api.model
    def _render_company_pdfs(self, report, documents):
        reports = self.env["ir.actions.report"]
        documents = documents.with_env(self.env)
        per_document = reports._document_email_split_pdfs(report.id, documents.ids)
        for document in documents.filtered(lambda d: d.id not in per_document):
            content, report_type = reports._pre_render_qweb_pdf(report.id, document.ids)
            per_document.update(
                reports._get_splitted_report(report.id, content, report_type)
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

    @api.model
    def _get_files(self, documents, report):
        """The documents' files for ``report`` (their PDF, an invoice's
        e-invoice), or the UserError of the first one missing."""
        files = documents._get_document_email_files(report)
        for document in documents:
            if error := self._missing_file_error(document, report, files):
                raise error
        return files

    @api.model
    def _missing_file_error(self, document, report, files):
        """A UserError when one of the document's files came out empty or
        not at all (e.g. a stored PDF missing from the filestore, which Odoo
        reads as empty and mail then silently leaves out): a document is
        never sent without them. None when they are all there."""
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

    @api.model
    def _create_file_attachments(self, thread, files):
        """The document's files as attachments of the record its email is
        kept on, like a message posted there."""
        owner = self._owner(thread)
        return (
            self.env["ir.attachment"]
            .sudo()
            .create([dict(values, **owner) for values in files or []])
        )

    # ------------------------------------------------------------------
    # Addresses
    # ------------------------------------------------------------------

    @api.model
    def _check_addresses(self, text, label):
        """The addresses in a comma-separated field, or a clear error."""
        if text and ("\r" in text or "\n" in text):
            raise UserError(self.env._("%(field)s must be on one line.", field=label))
        addresses = [(raw, valid_address(raw)) for raw in email_split(text or "")]
        bad = [raw for raw, address in addresses if not address]
        if bad or (text and text.strip() and not addresses):
            raise UserError(
                self.env._(
                    "%(field)s: %(address)s is not a valid email address.",
                    field=label,
                    address=bad[0] if bad else text,
                )
            )
        return [address for _raw, address in addresses]

    @api.model
    def _invalid_recipients(self, partners):
        """Partners whose email field holds no address, or one not valid."""
        return partners.filtered(
            lambda p: not split_addresses(p.email) or not all(split_addresses(p.email))
        )

    @api.model
    def _recipient_addresses(self, partners):
        """Formatted To addresses, every address of each partner's email
        field; every partner must have only valid ones."""
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

    @api.model
    def _check_settings(self, settings, documents):
        """Typed input refused before anything is created."""
        self._check_choices(settings, documents)
        subject = settings["subject"]
        if subject is not None and ("\r" in subject or "\n" in subject):
            raise UserError(self.env._("The subject must be on one line."))
        if subject is not None and not subject.strip():
            raise UserError(self.env._("Enter a subject."))
        if settings["partners"] is not None:
            if not settings["partners"]:
                raise UserError(self.env._("Add at least one recipient (To)."))
            self._recipient_addresses(settings["partners"])
        # files picked by the user: only those they may read themselves
        settings["attachments"].check("read")
        self._check_addresses(settings["email_cc"], self.env._("Cc"))
        self._check_addresses(settings["email_bcc"], self.env._("Bcc"))

    @api.model
    def _check_choices(self, settings, documents):
        """A template or PDF chosen by the user belongs to these documents'
        model (another model's would render another record by its id)."""
        template, report = settings["template"], settings["report"]
        if template and template.model != documents._name:
            raise UserError(self.env._("This template is not for these documents."))
        if report and (
            report.model != documents._name or report.report_type != "qweb-pdf"
        ):
            raise UserError(self.env._("This PDF is not for these documents."))

    @api.model
    def _get_skip_reason(self, partners):
        """Why a document of a batch is skipped (named on the result), or
        False."""
        if not partners:
            return self.env._("no recipient with an email address")
        invalid = self._invalid_recipients(partners)
        if invalid:
            return self.env._(
                "not a valid email address for %(names)s",
                names=", ".join(invalid.mapped("display_name")),
            )
        return False

    # ------------------------------------------------------------------
    # The duplicate guard
    # ------------------------------------------------------------------

    @api.model
    def _recently_sent(self, documents, settings):
        """Documents already emailed to the same recipients within the
        duplicate window (minutes, system parameter, default 10), or
        recorded in a batch still pending: one query for the whole batch."""
        sent_to = self._recent_recipients(documents)
        pending = self._in_pending_batches(documents)
        if not (sent_to or pending):
            return documents.browse()
        return documents.filtered(
            lambda document: (
                document.id in pending
                or (document.id, self._recipients_key(document, settings)) in sent_to
            )
        )

    @api.model
    def _recipients_key(self, document, settings):
        return tuple(sorted(self._get_partners(document, settings).ids))

    @api.model
    def _recent_recipients(self, documents):
        """{(document id, sorted recipient ids)} of the emails queued or
        sent within the duplicate window."""
        window = int(
            self.env["ir.config_parameter"]
            .sudo()
            .get_param("account_document_email.duplicate_window_minutes", 10)
        )
        since = fields.Datetime.subtract(fields.Datetime.now(), minutes=window)
        self.env["mail.mail"].flush_model(["state", "mail_message_id"])
        self.env["mail.message"].flush_model(["model", "res_id", "partner_ids"])
        link = documents._get_document_email_message_link()
        self.env.cr.execute(
            SQL(
                """SELECT DISTINCT %(document)s,
                          ARRAY(SELECT rel.res_partner_id
                                  FROM mail_message_res_partner_rel rel
                                 WHERE rel.mail_message_id = msg.id
                                 ORDER BY rel.res_partner_id)
                     FROM mail_mail mail
                     JOIN mail_message msg ON msg.id = mail.mail_message_id
                          %(join)s
                    WHERE %(where)s
                      AND mail.state IN ('outgoing', 'sent')
                      AND mail.create_date >= %(since)s
                   %(others)s""",
                document=link["document"],
                join=link["join"],
                where=link["where"],
                since=since,
                others=self._recent_recipients_elsewhere(documents, since),
            )
        )
        return {(res_id, tuple(ids)) for res_id, ids in self.env.cr.fetchall()}

    @api.model
    def _recent_recipients_elsewhere(self, documents, since):
        """SQL added to the duplicate guard's query (``UNION SELECT``
        document id, sorted recipient ids) for emails of these documents
        kept on another record."""
        return SQL("")

    @api.model
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

    # ------------------------------------------------------------------
    # Mail values and queueing
    # ------------------------------------------------------------------

    @api.model
    def _prepare_document_values(self, document, settings, rendered, files):
        """The email of one document: the final text when the user typed or
        accepted it for this document, else the template's rendering."""
        subject, body, email_from = rendered
        if settings["subject"] is not None:
            subject = settings["subject"]
        if settings["body"] is not None:
            body = settings["body"]
        thread = document._get_document_email_thread()
        # each email owns copies of the user's files, as a message would
        attachments = settings["attachments"].sudo().copy(self._owner(thread))
        attachments |= self._create_file_attachments(thread, files)
        return self._prepare_mail_values(
            document,
            thread,
            self._get_partners(document, settings),
            subject,
            body,
            attachments,
            email_from,
            settings,
        )

    @api.model
    def _owner(self, thread):
        return {"res_model": thread._name, "res_id": thread.id}

    @api.model
    def _prepare_mail_values(
        self,
        document,
        thread,
        partners,
        subject,
        body,
        attachments,
        email_from,
        settings,
    ):
        company = document._get_document_email_company()
        email_cc = self._check_addresses(settings["email_cc"], "Cc")
        email_bcc = self._check_addresses(settings["email_bcc"], "Bcc")
        return {
            "model": thread._name,
            "res_id": thread.id,
            "record_name": thread.display_name,
            "subject": one_line(subject),
            "body_html": body,
            # the chatter's copy may differ (e.g. without a personal link)
            "body": document._get_document_email_message_body(body),
            "email_from": email_from
            or self.env.user.email_formatted
            or company.email_formatted,
            "author_id": self.env.user.partner_id.id,
            "email_to": ", ".join(self._recipient_addresses(partners)),
            "email_cc": ", ".join(email_cc) or False,
            "email_bcc": ", ".join(email_bcc) or False,
            "partner_ids": [Command.set(partners.ids)],
            "attachment_ids": [Command.set(attachments.ids)],
            "mail_server_id": company._get_document_mail_server().id,
            "message_type": "comment",
            "subtype_id": self.env.ref("mail.mt_comment").id,
            "is_notification": True,
            "auto_delete": False,
            # its bounces are matched to it (mail.thread)
            "document_email": True,
        }

    @api.model
    def _prepare_documents_values(self, documents, settings):
        """{document: mail values, the reason (str) it is skipped, or the
        UserError it fails with}: a batch chunk, rendered in one go."""
        rendered = self._render_templates(documents, settings)
        partners_of = {doc: self._get_partners(doc, settings) for doc in documents}
        result = {
            doc: reason
            for doc in documents
            if (reason := self._get_skip_reason(partners_of[doc]))
        }
        # files only for what is sent (an invoice's official PDF marks it sent)
        for report, group in self._get_reports(documents, settings).items():
            sent = group.filtered(lambda doc: doc not in result)
            files = sent._get_document_email_files(report) if report and sent else {}
            for document in sent:
                error = report and self._missing_file_error(document, report, files)
                result[document] = error or self._prepare_document_values(
                    document, settings, rendered[document.id], files.get(document.id)
                )
        return {document: result[document] for document in documents}

    @api.model
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
        mixin = self.env.registry["document.email.mixin"]
        for model, group in mails.grouped("model").items():
            documents = self.env[model].browse(group.mapped("res_id"))
            if isinstance(documents, mixin):
                for mail in group:
                    documents.browse(mail.res_id)._document_email_write(
                        {
                            "document_email_mail_id": mail.id,
                            "document_email_state": mail._get_document_delivery_state(),
                        }
                    )
                documents._document_email_after_send()
        return mails

    @api.model
    def _queue_one(self, document, settings, own_uploads):
        """The email of one document with the user's final text, queued.
        The files the user uploaded for it (``own_uploads``) move onto the
        record the email is kept on; any other file is copied."""
        self._check_settings(settings, document)
        thread = document._get_document_email_thread()
        own_uploads.sudo().write(self._owner(thread))
        others = settings["attachments"].sudo() - own_uploads.sudo()
        attachments = own_uploads.sudo() | others.copy(self._owner(thread))
        company = document._get_document_email_company()
        template = self._get_template(document, settings).with_company(company)
        email_from = template._render_email_from(document)[document.id]
        report = settings["report"]
        if report and document._get_document_email_files_made_when_sent(report):
            files = self._get_files(document, report)[document.id]
            attachments |= self._create_file_attachments(thread, files)
        values = self._prepare_mail_values(
            document,
            thread,
            settings["partners"],
            settings["subject"],
            settings["body"],
            attachments,
            email_from,
            settings,
        )
        # keys a statement run sets on the server, never taken from a request
        server_keys = dict.fromkeys(SERVER_CONTEXT_KEYS, False)
        return self.with_context(**server_keys)._create_mails([values])

    @api.model
    def _queue_batch(self, documents, settings, name=None, options=None):
        """Record a batch of these documents (nothing rendered in the
        request): scheduled jobs render and queue one email per document
        with the templates' own content."""
        self._check_settings(settings, documents)
        if settings["subject"] is not None or settings["body"] is not None:
            raise UserError(
                self.env._(
                    "Several documents are sent with their template: each one "
                    "gets its own subject and body."
                )
            )
        return self.env["document.email.batch"]._create_batch(
            documents, settings, name=name, options=options
        )

    @api.model
    def _queue_documents(self, documents, options=None):
        """Queue one email per document with its own defaults, without the
        dialog (e.g. right after printing cheques, scheduled statements,
        confirmation requests), and tell the user how it went. ``options``:
        context keys the server sets for the rendering."""
        documents = self._browse_documents(documents._name, documents.ids)
        settings = self._get_default_settings()
        batch = self._queue_batch(documents, settings, options=options)
        self.env.user._bus_send(
            "simple_notification",
            {
                "title": self.env._("Send by email"),
                "message": self.env._(
                    "%(count)s emails are being prepared in the background; "
                    "you will be notified when they are queued.",
                    count=len(documents),
                ),
                "type": "info",
            },
        )
        return batch

    @api.model
    def _queue_to_send_now(self, document, settings, own_uploads):
        """_queue_one for an email this request sends itself (Send now): no
        delivery worker is woken for it."""
        token = SENDING_NOW.set(True)
        try:
            return self._queue_one(document, settings, own_uploads)
        finally:
            SENDING_NOW.reset(token)

    @api.model
    def _send_now(self, document, mail, dialog=None):
        """Send one queued email at once: (what the user is told, its kind).
        A replay of the request finds the email sent or in flight (document.
        mail.send.mark, by dialog, document and recipients) instead of
        sending it again."""
        # a concurrent update of the document fails here, before the SMTP
        # call, not at commit after it
        self.env.flush_all()
        origin = f"{dialog._name},{dialog.id}|" if dialog else ""
        token = SEND_NOW_ORIGIN.set(f"{origin}{document._name},{document.id}")
        try:
            mail.send(raise_exception=False)
        except smtplib.SMTPException as error:
            # Odoo re-raises a broken session; the email stays, failed
            if mail.state != "exception":
                mail.write({"state": "exception", "failure_reason": str(error)})
            mail.notification_ids.sudo().write({"notification_status": "exception"})
        finally:
            SEND_NOW_ORIGIN.reset(token)
        return self._describe_outcome(document, mail)

    @api.model
    def _describe_outcome(self, document, mail):
        outcomes = {
            ("sent", False): (
                self.env._("%(document)s was sent to %(recipients)s."),
                "success",
            ),
            ("sent", True): (
                self.env._("%(document)s was sent, but not to everyone: %(reason)s"),
                "warning",
            ),
            ("outgoing", True): (
                self.env._("%(document)s was not sent yet: %(reason)s"),
                "warning",
            ),
        }
        failed = (
            self.env._(
                "%(document)s could not be sent: %(reason)s The email is kept "
                "and can be retried from the document's chatter."
            ),
            "danger",
        )
        message, kind = outcomes.get((mail.state, bool(mail.failure_reason)), failed)
        values = {
            "document": document.display_name,
            "recipients": ", ".join(mail.partner_ids.mapped("email")),
            "reason": mail.failure_reason or self.env._("unknown error."),
        }
        return message % values, kind
