from markupsafe import Markup

from odoo import api, models
from odoo.exceptions import UserError
from odoo.tools import SQL, format_amount

CUSTOMER_TEMPLATE = "account_document_email.mail_template_customer_documents"
# room left for the headers Odoo adds when it builds the message
HEADERS_MARGIN = 4 * 1024


class DocumentEmailSend(models.AbstractModel):
    """One email per customer: the documents of a batch sent to the same
    recipients go together, their files attached and a body listing them
    (the customer template, rendered once per email from the documents'
    own values, never from text a partner typed)."""

    _inherit = "document.email.send"

    @api.model
    def _get_default_settings(self, **values):
        values.setdefault("per_customer", False)
        return super()._get_default_settings(**values)

    @api.model
    def _get_customer_key(self, document, settings):
        """The email a document goes in: its company and its recipients
        (the same To rule as when it is sent alone)."""
        partners = self._get_partners(document, settings)
        company = document._get_document_email_company()
        return "%s:%s" % (company.id, ",".join(map(str, sorted(partners.ids))))

    # ------------------------------------------------------------------
    # Mail values
    # ------------------------------------------------------------------

    @api.model
    def _prepare_documents_values(self, documents, settings):
        if not (settings.get("per_customer") and documents._document_email_groupable()):
            return super()._prepare_documents_values(documents, settings)
        return self._prepare_customers_values(documents, settings)

    @api.model
    def _prepare_customers_values(self, documents, settings):
        """{document: the values of the email carrying it (one dict shared
        by the documents of one email), the reason it is skipped, or the
        UserError it fails with}."""
        result = {
            doc: reason
            for doc in documents
            if (reason := self._get_skip_reason(self._get_partners(doc, settings)))
        }
        files = {}
        # making an invoice's official PDF marks it sent (core's Send)
        sent_before = documents._get_document_email_sent_state()
        for report, group in self._get_reports(documents, settings).items():
            sent = group.filtered(lambda doc: doc not in result)
            made = sent._get_document_email_files(report) if report and sent else {}
            for document in sent:
                error = report and self._missing_file_error(document, report, made)
                if error:
                    result[document] = error
                else:
                    files[document] = made.get(document.id) or []
        sent = documents.filtered(lambda doc: doc not in result)
        sent._document_email_before_render()
        groups = sent.grouped(lambda doc: self._get_customer_key(doc, settings))
        for group in groups.values():
            result.update(self._prepare_customer_values(group, files, settings))
        failed = [doc.id for doc, val in result.items() if not isinstance(val, dict)]
        documents.browse(failed)._restore_document_email_sent_state(sent_before)
        return {document: result[document] for document in documents}

    @api.model
    def _prepare_customer_values(self, documents, files, settings):
        """The emails of one customer: as few as the server's size limit
        allows, each under it, numbered "1 of 2"; a document whose files
        alone exceed it fails (never sent without them)."""
        first = documents[:1]
        company = first._get_document_email_company()
        partners = self._get_partners(first, settings)
        rendered = self._render_customer_email(partners[:1], company, documents)
        limit = self._get_max_email_bytes(company)
        parts, too_big = self._split_by_size(
            documents, files, rendered[1], limit, settings
        )
        result = {doc: self._too_big_error(doc, limit) for doc in too_big}
        for index, part in enumerate(parts, 1):
            if len(parts) > 1 or too_big:
                rendered = self._render_customer_email(partners[:1], company, part)
            subject = rendered[0]
            if len(parts) > 1:
                subject = self._number_part(subject, index, len(parts), partners[:1])
            values = self._prepare_customer_mail_values(
                part, partners, (subject, *rendered[1:]), files, settings
            )
            result.update(dict.fromkeys(part, values))
        return result

    @api.model
    def _prepare_customer_mail_values(
        self, documents, partners, rendered, files, settings
    ):
        """One email of a customer, kept on its first document; each
        document's files are kept on that document."""
        subject, body, email_from = rendered
        thread = documents[:1]._get_document_email_thread()
        attachments = settings["attachments"].sudo().copy(self._owner(thread))
        for document in documents:
            attachments |= self._create_file_attachments(
                document._get_document_email_thread(), files.get(document)
            )
        return self._prepare_mail_values(
            documents[:1],
            thread,
            partners,
            subject,
            body,
            attachments,
            email_from,
            settings,
        )

    @api.model
    def _number_part(self, subject, index, count, partner):
        """The subject of one of a customer's emails: "... (1 of 2)"."""
        env = self.with_context(lang=partner.lang or self.env.lang).env
        return env._(
            "%(subject)s (%(index)s of %(count)s)",
            subject=subject,
            index=index,
            count=count,
        )

    # ------------------------------------------------------------------
    # The body listing the documents
    # ------------------------------------------------------------------

    @api.model
    def _get_customer_template(self):
        return (
            self.env.ref(CUSTOMER_TEMPLATE, raise_if_not_found=False)
            or self.env["mail.template"]
        )

    @api.model
    def _render_customer_email(self, partner, company, documents):
        """(subject, body, sender) of the customer template rendered once on
        the customer, with the list of documents as plain values (escaped
        where the template prints them)."""
        template = self._get_customer_template().with_company(company)
        if not template:
            raise UserError(self.env._("The template of customer emails is missing."))
        template = template.with_context(
            document_email_company_name=company.name,
            document_email_company_email=company.email_formatted,
            document_email_documents=self._get_customer_rows(documents, partner),
        )
        subject = template._render_field("subject", partner.ids, compute_lang=True)
        body = template._render_field(
            "body_html",
            partner.ids,
            compute_lang=True,
            options={"post_process": True},
        )
        sender = template._render_email_from(partner)[partner.id]
        return subject[partner.id], body[partner.id], sender

    @api.model
    def _get_customer_rows(self, documents, partner):
        """What the body lists of each document, as text in the customer's
        language: name, amount, due date and portal link where there is one."""
        lang = partner.lang or self.env.lang
        rows = []
        for document in documents.with_context(lang=lang):
            values = document._get_document_email_summary()
            amount = values.get("amount")
            rows.append(
                {
                    "name": values["name"],
                    "amount": amount is not None
                    and format_amount(self.env, amount, values["currency"], lang),
                    "due_date": values.get("due_date"),
                    "url": values.get("url") or "",
                }
            )
        return rows

    # ------------------------------------------------------------------
    # The server's size limit
    # ------------------------------------------------------------------

    @api.model
    def _get_max_email_bytes(self, company):
        """The largest email the company's server accepts (its Max Email
        Size, read from its SIZE by Odoo, else Odoo's default): above it
        Odoo's queue would turn the files into download links."""
        server = company._get_document_mail_server() or self.env["ir.mail_server"]
        return server.sudo()._get_max_email_size() * 1024 * 1024

    @api.model
    def _estimate_size(self, body, sizes):
        return (
            self.env["mail.mail"]._estimate_email_size({}, body, sizes) + HEADERS_MARGIN
        )

    @api.model
    def _split_by_size(self, documents, files, body, limit, settings):
        """([documents of each email], documents too big for any email),
        the documents kept in their order."""
        extra = [len(a.raw or b"") for a in settings["attachments"].sudo()]
        parts, too_big, current, sizes = [], documents.browse(), documents.browse(), []
        for document in documents:
            own = [len(values.get("raw") or b"") for values in files.get(document, [])]
            if self._estimate_size(body, extra + own) > limit:
                too_big |= document
                continue
            if current and self._estimate_size(body, extra + sizes + own) > limit:
                parts.append(current)
                current, sizes = documents.browse(), []
            current |= document
            sizes += own
        if current:
            parts.append(current)
        return parts, too_big

    @api.model
    def _too_big_error(self, document, limit):
        return UserError(
            self.env._(
                "%(document)s was not sent: its files are larger than the "
                "largest email the server accepts (%(size)s MB).",
                document=document.display_name,
                size=round(limit / 1024 / 1024, 2),
            )
        )

    # ------------------------------------------------------------------
    # After queueing: each document as if sent alone
    # ------------------------------------------------------------------

    @api.model
    def _trace_customer_mails(self, mail_of):
        """{document: its email}: the documents an email carries besides
        the one it is kept on get a note pointing to it, with their own
        files, and every document counts as sent."""
        note = self.env.ref("mail.mt_note")
        for document, mail in mail_of.items():
            thread = document._get_document_email_thread()
            if (thread._name, thread.id) == (mail.model, mail.res_id):
                continue
            owner = self.env[mail.model].browse(mail.res_id)
            self.env["mail.message"].sudo().create(
                {
                    "model": thread._name,
                    "res_id": thread.id,
                    "body": self._customer_note(owner, mail),
                    "message_type": "comment",
                    "subtype_id": note.id,
                    "author_id": self.env.user.partner_id.id,
                    "attachment_ids": mail.attachment_ids.filtered(
                        lambda a, t=thread: (a.res_model, a.res_id) == (t._name, t.id)
                    ).ids,
                }
            )
        mixin = self.env.registry["document.email.mixin"]
        documents = list(mail_of)
        for model in {document._name for document in documents}:
            group = self.env[model].browse(d.id for d in documents if d._name == model)
            if isinstance(group, mixin):
                group._document_email_after_send()

    @api.model
    def _customer_note(self, owner, mail):
        return (
            Markup("<p>%s</p>")
            % Markup(
                self.env._(
                    "Sent in one email with %(document)s to %(recipients)s: %(subject)s"
                )
            )
            % {
                "document": owner._get_html_link(),
                "recipients": ", ".join(mail.partner_ids.mapped("display_name")),
                "subject": mail.subject,
            }
        )

    # ------------------------------------------------------------------
    # The duplicate guard
    # ------------------------------------------------------------------

    @api.model
    def _recent_recipients_elsewhere(self, documents, since):
        """The documents carried by a customer's email kept on another of
        its documents: their batch line names the email."""
        self.env["document.email.batch.line"].flush_model(["mail_id", "res_id"])
        self.env["document.email.batch"].flush_model(["per_customer", "res_model"])
        return SQL(
            """%(others)s
               UNION
               SELECT line.res_id,
                      ARRAY(SELECT rel.res_partner_id
                              FROM mail_message_res_partner_rel rel
                             WHERE rel.mail_message_id = mail.mail_message_id
                             ORDER BY rel.res_partner_id)
                 FROM document_email_batch_line line
                 JOIN document_email_batch batch ON batch.id = line.batch_id
                 JOIN mail_mail mail ON mail.id = line.mail_id
                WHERE batch.per_customer
                  AND batch.res_model = %(model)s
                  AND line.res_id = ANY(%(ids)s)
                  AND mail.state IN ('outgoing', 'sent')
                  AND mail.create_date >= %(since)s""",
            others=super()._recent_recipients_elsewhere(documents, since),
            model=documents._name,
            ids=documents.ids,
            since=since,
        )
