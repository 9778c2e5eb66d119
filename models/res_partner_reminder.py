from odoo import fields, models


class ResPartner(models.Model):
    """Payment reminders of a customer: opted out or not, and its history."""

    _inherit = "res.partner"

    payment_reminder_excluded = fields.Boolean(
        "No Payment Reminders",
        groups="account.group_account_invoice",
        help="This customer never receives payment reminders.",
    )
    payment_reminder_ids = fields.One2many(
        "document.email.statement",
        "partner_id",
        string="Payment Reminders",
        domain=[("document", "=", "reminder")],
        groups="account.group_account_invoice",
    )

    def _get_reminder_recipients(self):
        """Those of the customer's statements: its collections contact."""
        self.ensure_one()
        return self._get_statement_recipients()

    def _get_last_reminder_levels(self):
        """{partner id: the level of its last reminder in the current company
        that did not fail}."""
        reminders = (
            self.env["document.email.statement"]
            .sudo()
            .search(
                [
                    ("document", "=", "reminder"),
                    ("company_id", "=", self.env.company.id),
                    ("partner_id", "in", self.commercial_partner_id.ids),
                ],
                order="id desc",
            )
        )
        levels = {}
        for reminder in reminders.filtered(
            lambda r: r.mail_state not in ("failed", "bounced")
        ):
            levels.setdefault(reminder.partner_id.id, reminder.reminder_level_id)
        return levels
