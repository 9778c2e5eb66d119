from markupsafe import Markup

from odoo import api, fields, models

from .res_partner import RECEIVABLE

STATEMENT_REPORT = "account_document_email.action_report_aged_statement"


class DocumentEmailStatement(models.Model):
    """A payment reminder is kept as a statement is, away from the partner's
    chatter: it is the document the engine sends (one email listing the
    customer's overdue invoices, with the level's template and files) and
    the history entry that says which level of which invoices was given."""

    _name = "document.email.statement"
    _inherit = ["document.email.statement", "document.email.mixin"]

    document = fields.Selection(
        selection_add=[("reminder", "Payment reminder")],
        ondelete={"reminder": "cascade"},
    )
    reminder_level_id = fields.Many2one(
        "account.reminder.level", string="Level", readonly=True, ondelete="restrict"
    )
    reminder_move_ids = fields.Many2many(
        "account.move",
        "document_email_statement_reminder_move_rel",
        "statement_id",
        "move_id",
        string="Invoices",
        readonly=True,
    )

    def _compute_mail_state(self):
        """A reminder without an email yet is queued while its batch line
        waits, failed once its batch skipped or failed it; a bounced email
        is failed too: neither counts as given."""
        super()._compute_mail_state()
        reminders = self.filtered(lambda log: log.document == "reminder" and log.id)
        if not reminders:
            return
        mails = (
            self.env["mail.mail"]
            .sudo()
            .search([("model", "=", self._name), ("res_id", "in", reminders.ids)])
        )
        pending = (
            self.env["document.email.batch.line"]
            .sudo()
            .search(
                [
                    ("batch_id.res_model", "=", self._name),
                    ("batch_id.state", "=", "processing"),
                    ("stage", "=", "pending"),
                    ("res_id", "in", reminders.ids),
                ]
            )
        )
        bounced = mails.notification_ids.filtered(
            lambda n: n.notification_status == "bounce"
        ).mail_mail_id
        waiting = set(pending.mapped("res_id"))
        mailed = set(mails.mapped("res_id"))
        for reminder in reminders.filtered(lambda r: r.id not in mailed):
            reminder.mail_state = "queued" if reminder.id in waiting else "failed"
        for reminder in reminders.browse(bounced.mapped("res_id")):
            reminder.mail_state = "failed"

    @api.model
    def _create_reminders(self, due, today):
        """The reminders of ``today``, one per customer of ``due`` ({partner:
        {level: invoices}}), at the highest level reached and listing all
        those invoices, with a note on each partner that shows no figure
        (created together: a run may remind thousands of customers)."""
        if not due:
            return self.browse()
        reminders = self.sudo().create(
            [
                self._prepare_reminder_values(partner, reached, today)
                for partner, reached in due.items()
            ]
        )
        reminders.partner_id._message_log_batch(
            bodies={
                reminder.partner_id.id: Markup("%s %s")
                % (
                    self.env._(
                        "Payment reminder (%(level)s) queued for email; its "
                        "delivery, invoices and amounts are on",
                        level=reminder.reminder_level_id.name,
                    ),
                    reminder._get_html_link(),
                )
                for reminder in reminders
            }
        )
        return reminders.with_env(self.env)

    @api.model
    def _prepare_reminder_values(self, partner, reached, today):
        level = max(reached, key=lambda level: level.days)
        invoices = self.env["account.move"].union(*reached.values())
        return {
            "name": f"{level.name} {partner.display_name} "
            f"{fields.Date.to_string(today)}",
            "partner_id": partner.id,
            "company_id": self.env.company.id,
            "document": "reminder",
            "date_at": today,
            "reminder_level_id": level.id,
            "reminder_move_ids": [fields.Command.set(invoices.ids)],
        }

    # ------------------------------------------------------------------
    # Send by email: a payment reminder (document.email.mixin)
    # ------------------------------------------------------------------

    def _get_document_email_partners(self):
        self.ensure_one()
        if self.document != "reminder":
            return super()._get_document_email_partners()
        return self.partner_id._get_reminder_recipients()

    def _get_document_email_template(self):
        if self.document == "reminder":
            return self.reminder_level_id.mail_template_id
        return super()._get_document_email_template()

    def _get_document_email_kind(self):
        self.ensure_one()
        if self.document != "reminder":
            return super()._get_document_email_kind()
        return self.env._("payment reminder"), self.env._("payment reminders")

    def _get_document_email_reports(self):
        """The statement stands for the level's files (invoices' PDFs, the
        statement, or both): a reminder with none has no report."""
        level = self.reminder_level_id
        if self.document != "reminder" or not (
            level.attach_invoices or level.attach_statement
        ):
            return super()._get_document_email_reports()
        return self.env.ref(STATEMENT_REPORT)

    def _get_document_email_files(self, report):
        reminders = self.filtered(lambda log: log.document == "reminder")
        others = self - reminders
        files = super(DocumentEmailStatement, others)._get_document_email_files(report)
        invoice_files = reminders.filtered(
            "reminder_level_id.attach_invoices"
        ).reminder_move_ids._get_reminder_pdf_files()
        statement_files = reminders.filtered(
            "reminder_level_id.attach_statement"
        )._get_reminder_statement_files()
        for reminder in reminders:
            invoices = reminder.reminder_move_ids.sorted("invoice_date_due")
            if not reminder.reminder_level_id.attach_invoices:
                invoices = invoices.browse()
            files[reminder.id] = [
                *(file for invoice in invoices for file in invoice_files[invoice.id]),
                *statement_files.get(reminder.id, []),
            ]
        return files

    def _get_reminder_statement_files(self):
        """{reminder id: [the customer's statement of account at the
        reminder's date]}, rendered together for each date."""
        report = self.env.ref(STATEMENT_REPORT)
        result = {}
        for date_at, reminders in self.grouped("date_at").items():
            engine = self.env["document.email.send"].with_context(
                aged_date_at=fields.Date.to_string(date_at),
                aged_interval_days=30,
                aged_account_type=RECEIVABLE,
                aged_by_currency=True,
                aged_document="statement",
            )
            pdfs = engine._render_pdfs(
                report, reminders.partner_id.with_env(engine.env)
            )
            for reminder in reminders:
                name, raw = pdfs[reminder.partner_id.id]
                result[reminder.id] = [
                    {"name": name, "raw": raw, "mimetype": "application/pdf"}
                ]
        return result

    def _document_email_before_render(self):
        # the invoices' pay-now links need their access token
        self.reminder_move_ids._document_email_before_render()
        return super()._document_email_before_render()
