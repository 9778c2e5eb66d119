from odoo import models


class MailTemplate(models.Model):
    _inherit = "mail.template"

    def _render_email_from(self, records):
        """{record id: the template's sender on one line, or False}, in one
        rendering for all records."""
        if not self.email_from:
            return dict.fromkeys(records.ids, False)
        rendered = self._render_field("email_from", records.ids)
        return {
            res_id: " ".join(text.split()) or False for res_id, text in rendered.items()
        }
