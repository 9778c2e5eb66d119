import uuid
from contextlib import contextmanager

from odoo import fields, models
from odoo.exceptions import AccessError
from odoo.tools import SQL, sql


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


# what _document_email_write may write on a document
DOCUMENT_EMAIL_OWN_FIELDS = {
    "access_token",
    "document_email_mail_id",
    "document_email_state",
}


class DocumentEmailMixin(models.AbstractModel):
    """A document the "Send by email" wizard can send.

    A document type plugs in by overriding the small ``_get_document_email_*``
    hooks; the engine (``document.email.send``) does everything else, for
    the dialog (``document.email.wizard``) and every background path."""

    _name = "document.email.mixin"
    _description = "Document Sendable by Email"

    document_email_mail_id = fields.Many2one(
        "mail.mail",
        string="Last Email",
        readonly=True,
        copy=False,
        index="btree_not_null",
        ondelete="set null",
    )
    # stored: list views and filters read it without a query per record.
    # Written by the add-on's own emails (mail.mail), never computed from
    # them: a computed field depending on the email's state made every state
    # change (or deletion) of any email look for documents in each model
    document_email_state = fields.Selection(
        [
            ("queued", "Queued"),
            ("sent", "Sent"),
            ("bounced", "Bounced"),
            ("failed", "Failed"),
            ("uncertain", "Uncertain"),
            ("cancelled", "Cancelled"),
        ],
        string="Email Delivery",
        readonly=True,
        copy=False,
        help="What became of the last email sent by Send by Email: queued, "
        "sent (taken by the server), bounced (returned by the recipient's "
        "server), failed, or uncertain (the connection broke while sending).",
    )

    def _auto_init(self):
        # on tables that exist (e.g. account_move at install) the new columns
        # start empty, nothing sent yet, instead of computed for every row
        if sql.table_exists(self.env.cr, self._table):
            for name, column_type in (
                ("document_email_mail_id", "int4"),
                ("document_email_state", "varchar"),
            ):
                if not sql.column_exists(self.env.cr, self._table, name):
                    sql.create_column(self.env.cr, self._table, name, column_type)
        return super()._auto_init()

    def _document_email_undelivered(self):
        """The documents whose last email did not reach (or may not have
        reached) its recipient: bounced, failed or uncertain."""
        return self.filtered(
            lambda document: (
                document.document_email_state in ("bounced", "failed", "uncertain")
            )
        )

    def _get_document_email_group(self):
        """The group (xmlid) whose members may email these documents."""
        return "account.group_account_invoice"

    def _get_document_email_refusal(self):
        """Why this document cannot be emailed from here, or False."""
        self.ensure_one()
        return False

    def _has_document_email_group(self):
        """The user may email documents of this type (the scheduled jobs'
        superuser may)."""
        user = self.env.user
        return (
            self.env.su
            or user._is_superuser()
            or user.has_group(self._get_document_email_group())
        )

    def _check_document_email_access(self):
        """Raise AccessError unless the user may email (or print the
        statement of) these documents: the group of the document type and
        read access on each document."""
        if not self._has_document_email_group():
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
        pdfs = self.env["document.email.send"]._render_pdfs(report, self)
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

    def _get_document_email_message_body(self, body):
        """The body the chatter keeps of an email whose body is ``body``."""
        self.ensure_one()
        return body

    def _document_email_before_render(self):
        """Before the templates render these documents in one go: portal
        documents get their access token here, not one by one from the
        template's portal link while it renders."""
        if "access_token" not in self._fields:
            return
        for document in self.filtered(lambda document: not document.access_token):
            document._document_email_write({"access_token": str(uuid.uuid4())})

    def _document_email_write(self, values):
        """Write the add-on's own fields (the portal token, the last email
        and its state) on these documents, and nothing else; a document type
        may skip what its write re-computes that these fields do not change."""
        if not set(values) <= DOCUMENT_EMAIL_OWN_FIELDS:
            raise ValueError(f"not the add-on's own fields: {sorted(values)}")
        return self.sudo().write(dict(values))

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

    def _get_document_email_rendering_options(self):
        """The context keys of the request these documents read when a batch
        renders them later (e.g. the date of an aged statement): only those
        are kept, never the rest of a client's context."""
        keys = self._get_document_email_context_keys()
        return {key: self.env.context[key] for key in keys if key in self.env.context}

    def _get_document_email_context_keys(self):
        return ()

    def _get_document_email_thread(self):
        """The record the email (its message, files and chatter trace) is
        kept on: the document itself, unless it must not show on it."""
        self.ensure_one()
        return self

    def _get_document_email_message_link(self):
        """SQL linking emails' messages to these documents, for the
        duplicate guard: the document id, the joins, the condition."""
        return {
            "document": SQL("msg.res_id"),
            "join": SQL(""),
            "where": SQL(
                "msg.model = %s AND msg.res_id = ANY(%s)", self._name, self.ids
            ),
        }

    def _get_document_email_kind(self):
        """(singular, plural) name of this document's kind, as the user
        reads it in a batch's name ("3 invoices")."""
        self.ensure_one()
        name = self.env["ir.model"]._get(self._name).name
        return name, name

    def _get_document_email_batch_name(self):
        """What the user sent: "3 invoices", "12 statements", or "5
        documents" when the kinds differ."""
        kinds = {document._get_document_email_kind() for document in self}
        if len(kinds) == 1:
            [(singular, plural)] = kinds
            kind = singular if len(self) == 1 else plural
        else:
            kind = self.env._("documents")
        return self.env._("%(count)s %(kind)s", count=len(self), kind=kind)

    def _document_email_after_send(self):
        """The emails of these documents are queued: mark them as sent."""
        return

    def action_send_document_email(self):
        """Open the "Send by email" dialog on these documents."""
        return self._get_document_email_action()

    def _get_document_email_action(self, context=None):
        """The dialog on these documents, refused before anything renders;
        ``context`` adds keys the documents read when rendered (e.g. the
        date of a statement)."""
        self.env["document.email.send"].with_context(
            **(context or {})
        )._browse_documents(self._name, self.ids)
        return {
            "type": "ir.actions.act_window",
            "name": self.env._("Send by email"),
            "res_model": "document.email.wizard",
            "view_mode": "form",
            "views": [(False, "form")],
            "target": "new",
            "context": {
                **(context or {}),
                "active_model": self._name,
                "active_ids": self.ids,
                "dialog_size": "large",
            },
        }

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

    def _get_document_email_summary(self):
        """What an email listing several documents says of this one (one
        email per customer): its name, and where the document has them its
        amount (with ``currency``), ``due_date`` and portal ``url``."""
        self.ensure_one()
        values = {"name": self.display_name}
        if "amount_total" in self._fields and "currency_id" in self._fields:
            values.update(amount=self.amount_total, currency=self.currency_id)
        if isinstance(self, self.env.registry["portal.mixin"]):
            values["url"] = self.get_base_url() + self.get_portal_url()
        return values

    def _get_document_email_sent_state(self):
        """{document id: its sent state}, to restore on the documents whose
        email is not sent after all (making a file may mark it sent)."""
        return {}

    def _restore_document_email_sent_state(self, states):
        return

    def _document_email_groupable(self):
        """These documents may go one email per customer: opt-in, only the
        document types that say so (customer invoices, quotations)."""
        return False
