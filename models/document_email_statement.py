from markupsafe import Markup

from odoo import api, fields, models


class DocumentEmailStatement(models.Model):
    """A statement or balance letter emailed to a partner: the email, its
    PDF and its figures live here, where record rules limit them to the
    company's billing users; the partner's chatter only gets a note linking
    here (every internal user, and other companies' users when the partner
    is shared, can read a partner's chatter)."""

    _name = "document.email.statement"
    _inherit = ["mail.thread", "mail.activity.mixin"]
    _description = "Statement Sent by Email"
    _order = "id desc"
    _check_company_auto = True

    name = fields.Char(required=True, readonly=True)
    partner_id = fields.Many2one(
        "res.partner", required=True, readonly=True, index=True, ondelete="cascade"
    )
    company_id = fields.Many2one("res.company", required=True, readonly=True)
    document = fields.Selection(
        [("statement", "Statement"), ("letter", "Confirmation letter")],
        required=True,
        readonly=True,
    )
    date_at = fields.Date("At Date", readonly=True)
    mail_state = fields.Selection(
        [
            ("queued", "Queued"),
            ("sent", "Sent"),
            ("failed", "Failed"),
            ("bounced", "Bounced"),
            ("uncertain", "Uncertain"),
            ("handled", "Checked with the customer"),
        ],
        string="Delivery",
        compute="_compute_mail_state",
    )

    @api.depends("message_ids")
    def _compute_mail_state(self):
        mails = (
            self.env["mail.mail"]
            .sudo()
            .search([("model", "=", self._name), ("res_id", "in", self.ids)])
        )
        by_state = {
            "outgoing": "queued",
            "sent": "sent",
            "received": "sent",
            "cancel": "handled",
        }
        state_of = {
            mail.res_id: "bounced"
            if mail.document_bounced
            else "uncertain"
            if mail.state == "exception" and mail.document_uncertain
            else by_state.get(mail.state, "failed")
            for mail in mails
        }
        for log in self:
            log.mail_state = state_of.get(log.id, "queued")

    def _get_uncertain_mails(self):
        return (
            self.env["mail.mail"]
            .sudo()
            .search(
                [
                    ("model", "=", self._name),
                    ("res_id", "in", self.ids),
                    ("state", "=", "exception"),
                    ("document_uncertain", "=", True),
                ]
            )
        )

    def action_mark_delivered(self):
        """A person checked with the customer that the uncertain email
        arrived: it is not sent again, and the customer's next scheduled
        statement date moves on as if it had been sent. Billing users read
        these records only: what they may do here is done as superuser."""
        self.check_access("read")
        logs = self.sudo()
        for mail in logs._get_uncertain_mails():
            mail.write({"state": "cancel", "document_uncertain": False})
            mail.notification_ids.notification_status = "canceled"
            if mail.document_statement_date:
                mail._get_statement_partners().with_company(
                    mail.document_statement_company_id
                )._statement_sent(mail.document_statement_date)
        logs.activity_feedback(
            ["mail.mail_activity_data_todo"],
            feedback=self.env._("Checked with the customer: delivered."),
        )
        logs.message_post(
            body=self.env._("Marked as delivered after checking with the customer.")
        )
        return True

    def _flag_uncertain(self):
        """Ask the billing team to check an uncertain email, once: an
        activity on this record, where the figures may be read."""
        for log in self.filtered(lambda log: not log.activity_ids):
            log.activity_schedule(
                "mail.mail_activity_data_todo",
                summary=self.env._("Check whether the statement arrived"),
                note=self.env._(
                    "The connection broke while the server was taking this "
                    "email: it may have been delivered, so it is not sent again "
                    "automatically. Check with the customer, then retry the "
                    "email from the chatter or mark it as delivered."
                ),
                user_id=log._get_flag_user().id,
            )

    def _get_flag_user(self):
        """Who launched the statement run, if a person; else the current user."""
        user = self.create_uid
        if user.active and not user.share:
            return user
        return self.env.user

    @api.model
    def _log_for(self, partner):
        """The record a partner's statement (or letter) email is kept on,
        with a note on the partner that shows no figure."""
        document = partner._get_aged_document()
        date_at, _interval = partner._get_aged_receivable_options()
        kind = dict(self._fields["document"]._description_selection(self.env))
        log = self.sudo().create(
            {
                "name": f"{kind[document]} {partner.display_name} "
                f"{fields.Date.to_string(date_at)}",
                "partner_id": partner.id,
                "company_id": partner._get_document_email_company().id,
                "document": document,
                "date_at": date_at,
            }
        )
        partner.sudo()._message_log(
            body=Markup("%s %s")
            % (
                self.env._(
                    "%(document)s queued for email; its delivery, figures and "
                    "file are on",
                    document=kind[document],
                ),
                log._get_html_link(),
            )
        )
        return log
