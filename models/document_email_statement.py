from markupsafe import Markup

from odoo import api, fields, models


class DocumentEmailStatement(models.Model):
    """A statement or balance letter emailed to a partner: the email, its
    PDF and its figures live here, where record rules limit them to the
    company's billing users; the partner's chatter only gets a note linking
    here (every internal user, and other companies' users when the partner
    is shared, can read a partner's chatter)."""

    _name = "document.email.statement"
    _inherit = ["mail.thread"]
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
        by_state = {"outgoing": "queued", "sent": "sent", "received": "sent"}
        state_of = {mail.res_id: by_state.get(mail.state, "failed") for mail in mails}
        for log in self:
            log.mail_state = state_of.get(log.id, "queued")

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
