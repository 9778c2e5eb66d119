from odoo import fields, models
from odoo.tools.mail import email_normalize_all, email_split_and_format


class MailMail(models.Model):
    _inherit = "mail.mail"

    email_bcc = fields.Char(
        "Bcc",
        help="Blind carbon copy recipients: they get the email, no header names them",
    )

    def _prepare_outgoing_list(
        self, mail_server=False, recipients_follower_status=None
    ):
        """Add the Bcc recipients to the SMTP envelope of the first email; Odoo
        drops the Bcc header before sending."""
        results = super()._prepare_outgoing_list(
            mail_server=mail_server,
            recipients_follower_status=recipients_follower_status,
        )
        if self.email_bcc and results:
            first = results[0]
            first["headers"] = dict(
                first["headers"], Bcc=", ".join(email_split_and_format(self.email_bcc))
            )
            first["email_to_normalized"] = first["email_to_normalized"] + (
                email_normalize_all(self.email_bcc)
            )
        return results
