from odoo import api, fields, models
from odoo.tools import SQL


class AccountReminderLevel(models.Model):
    """A step of a company's payment reminders: once an open invoice is
    ``days`` past its due date (before it when negative), its customer gets
    this level's email, with the level's files."""

    _name = "account.reminder.level"
    _description = "Payment Reminder Level"
    _order = "company_id, days, id"
    _check_company_auto = True

    name = fields.Char(required=True, translate=True)
    company_id = fields.Many2one(
        "res.company", required=True, default=lambda self: self.env.company
    )
    days = fields.Integer(
        "Days After Due Date",
        required=True,
        help="Days after the invoice's due date when this reminder is sent; "
        "negative for a reminder before the due date.",
    )
    mail_template_id = fields.Many2one(
        "mail.template",
        string="Email Template",
        required=True,
        domain=[("model", "=", "document.email.statement")],
    )
    attach_invoices = fields.Boolean(
        "Attach Invoices", default=True, help="The overdue invoices' official PDFs."
    )
    attach_statement = fields.Boolean(
        "Attach Statement", help="The customer's statement of account with ageing."
    )
    currency_id = fields.Many2one(related="company_id.currency_id")
    min_amount = fields.Monetary(
        "Minimum Amount",
        help="Sent only when the customer's invoices reaching this level add "
        "up to at least this amount (company currency); 0 for any amount.",
    )
    active = fields.Boolean(default=True)

    _sql_constraints = [
        (
            "days_company_unique",
            "UNIQUE(company_id, days)",
            "Two reminder levels of a company cannot have the same number of days.",
        ),
    ]

    # ------------------------------------------------------------------
    # The daily job
    # ------------------------------------------------------------------

    @api.model
    def _cron_send_payment_reminders(self):
        today = fields.Date.context_today(self)
        for company in self.search([]).company_id:
            self.with_company(company)._send_due_reminders(today)

    @api.model
    def _send_due_reminders(self, today):
        """Queue the current company's reminders due ``today``: one email per
        customer, for the highest level its open invoices reached, unless
        each of those invoices already had that level (or a higher one) in a
        reminder that did not fail."""
        levels = self.search([("company_id", "=", self.env.company.id)])
        if not levels:
            return self.env["document.email.statement"]
        levels._lock_run()
        invoices = levels._get_remindable_invoices(today)
        given = levels._get_levels_given(invoices)
        # the latest reminder bounced at an address the customer still has
        held = self.env["res.partner"]._get_statements_bounced(
            self.env.company, "reminder"
        )
        due = {}
        for partner, partner_invoices in invoices.grouped(
            "commercial_partner_id"
        ).items():
            if partner.id in held:
                continue
            reached = levels._get_levels_reached(partner_invoices, today)
            if any(
                level.days > given.get(invoice.id, float("-inf"))
                for level, level_invoices in reached.items()
                for invoice in level_invoices
            ):
                due[partner] = reached
        reminders = self.env["document.email.statement"]._create_reminders(due, today)
        if reminders:
            self.env["document.email.send"]._queue_documents(reminders)
        return reminders

    def _lock_run(self):
        """Two runs of the same company at once: the second waits, then
        fails on commit (serialization) instead of reminding again."""
        self.env.cr.execute(
            SQL(
                "UPDATE account_reminder_level SET write_date = write_date "
                "WHERE id IN %s",
                tuple(self.ids),
            )
        )

    def _get_remindable_invoices(self, today):
        """The company's open customer invoices reaching the first level,
        without those flagged "No reminder" or "In dispute" and those of
        customers who receive no reminders."""
        first_due = fields.Date.subtract(today, days=min(self.mapped("days")))
        invoices = self.env["account.move"].search(
            [
                ("company_id", "=", self.env.company.id),
                ("move_type", "=", "out_invoice"),
                ("state", "=", "posted"),
                ("payment_state", "in", ("not_paid", "partial")),
                ("amount_residual", ">", 0),
                ("invoice_date_due", "<=", first_due),
                ("reminder_excluded", "=", False),
                ("reminder_dispute", "=", False),
            ]
        )
        return invoices.filtered(
            lambda invoice: (
                not invoice.commercial_partner_id.payment_reminder_excluded
                and invoice.commercial_partner_id._get_reminder_recipients()
            )
        )

    def _get_levels_reached(self, invoices, today):
        """{level: its invoices} of the levels these invoices of one
        customer reached (days past due, minimum amount), lowest first."""
        reached = {}
        for level in self.sorted("days"):
            level_invoices = invoices.filtered(
                lambda invoice, level=level: (
                    (today - invoice.invoice_date_due).days >= level.days
                )
            )
            total = sum(level_invoices.mapped("amount_residual_signed"))
            if level_invoices and total >= level.min_amount:
                reached[level] = level_invoices
        return reached

    def _get_levels_given(self, invoices):
        """{invoice id: the highest level's days it was reminded at}, from
        the reminders still queued, being rendered or sent: a failed one is
        not counted as given."""
        reminders = (
            self.env["document.email.statement"]
            .sudo()
            .search(
                [
                    ("document", "=", "reminder"),
                    ("company_id", "=", self.env.company.id),
                    ("reminder_move_ids", "in", invoices.ids),
                ]
            )
        )
        given = {}
        for reminder in reminders.filtered(lambda r: r.mail_state != "failed"):
            days = reminder.reminder_level_id.days
            for invoice in reminder.reminder_move_ids:
                given[invoice.id] = max(given.get(invoice.id, days), days)
        return given
