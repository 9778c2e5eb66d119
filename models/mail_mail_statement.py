from odoo import api, fields, models


class MailMail(models.Model):
    """A scheduled statement's email moves its customer's next statement
    date on once it is sent, and only then."""

    _inherit = "mail.mail"

    document_statement_date = fields.Date(
        "Statement Date", readonly=True, index="btree_not_null"
    )
    document_statement_company_id = fields.Many2one("res.company", readonly=True)

    @api.model_create_multi
    def create(self, vals_list):
        # set only by res.partner._send_statements, for its own emails
        statement_date = self.env.context.get("document_statement_date")
        for vals in vals_list if statement_date else []:
            if vals.get("model") == "document.email.statement":
                vals["document_statement_date"] = statement_date
                vals["document_statement_company_id"] = self.env.company.id
        return super().create(vals_list)

    def _get_statement_partners(self):
        """The customers of these statement emails: kept on a statement
        record, or on the customer itself for emails queued before that."""
        logs = self.env["document.email.statement"].sudo()
        partners = self.env["res.partner"]
        for mail in self.filtered("document_statement_date"):
            if mail.model == logs._name:
                partners |= logs.browse(mail.res_id).exists().partner_id
            elif mail.model == "res.partner":
                partners |= partners.browse(mail.res_id).exists()
        return partners

    def _flag_uncertain(self):
        """Uncertain statement emails: their statement records ask a person
        to check (customers of older emails, kept on the partner, just wait)."""
        logs = self.env["document.email.statement"].sudo()
        statement_mails = self.filtered(lambda mail: mail.model == logs._name)
        logs.browse(statement_mails.mapped("res_id")).exists()._flag_uncertain()

    def _postprocess_sent_message(
        self, success_pids, failure_reason=False, failure_type=None
    ):
        for mail in self.filtered(
            lambda m: m.document_statement_date and m.state == "sent"
        ):
            mail._get_statement_partners().with_company(
                mail.document_statement_company_id
            )._statement_sent(mail.document_statement_date)
        return super()._postprocess_sent_message(
            success_pids, failure_reason=failure_reason, failure_type=failure_type
        )
