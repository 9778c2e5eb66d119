from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.tools import email_normalize

# settings field -> res.company field; written together so that validation
# sees the whole new configuration at once
SMTP_SETTINGS = {
    "smtp_use_default_service": "document_smtp_use_default",
    "smtp_host": "document_smtp_host",
    "smtp_port": "document_smtp_port",
    "smtp_authentication": "document_smtp_authentication",
    "smtp_user": "document_smtp_user",
    "smtp_pass": "document_smtp_pass",
    "smtp_encryption": "document_smtp_encryption",
    "smtp_verify_certificate": "document_smtp_verify_certificate",
    "smtp_max_per_connection": "document_smtp_max_per_connection",
    "smtp_max_per_minute": "document_smtp_max_per_minute",
}


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"

    smtp_use_default_service = fields.Boolean(
        string="Use the default outgoing mail service",
        default=True,
        groups="base.group_system",
    )
    smtp_host = fields.Char(string="SMTP Server", groups="base.group_system")
    smtp_port = fields.Integer(
        string="SMTP Port", default=587, groups="base.group_system"
    )
    smtp_authentication = fields.Boolean(
        string="Server requires authentication",
        default=True,
        groups="base.group_system",
    )
    smtp_user = fields.Char(string="SMTP Account", groups="base.group_system")
    smtp_pass = fields.Char(string="SMTP Password", groups="base.group_system")
    smtp_encryption = fields.Selection(
        [("none", "None"), ("starttls", "STARTTLS"), ("ssl", "SSL/TLS")],
        string="SMTP Encryption",
        default="starttls",
        groups="base.group_system",
    )
    smtp_verify_certificate = fields.Boolean(
        string="Verify the server's TLS certificate",
        default=True,
        groups="base.group_system",
    )
    smtp_max_per_connection = fields.Integer(
        string="Maximum emails per connection",
        groups="base.group_system",
        help="The queue opens a new SMTP connection after this many emails "
        "(some providers allow 20). 0: the queue's own, 20 emails by default.",
    )
    smtp_max_per_minute = fields.Integer(
        string="Maximum emails per minute",
        groups="base.group_system",
        help="Emails beyond this number wait in the queue for the next minute. "
        "0: no limit.",
    )
    smtp_test_email_to = fields.Char(
        string="Send a test email to", groups="base.group_system"
    )

    @api.model
    def get_values(self):
        res = super().get_values()
        if self.env.user.has_group("base.group_system"):
            company = self.env.company.sudo()
            res.update({name: company[field] for name, field in SMTP_SETTINGS.items()})
        return res

    def set_values(self):
        super().set_values()
        if not self.env.user.has_group("base.group_system"):
            return
        company = self.company_id.sudo()
        values = {field: self[name] for name, field in SMTP_SETTINGS.items()}
        changed = {
            field: value for field, value in values.items() if company[field] != value
        }
        if changed:
            company.write(changed)

    @api.onchange("smtp_encryption", "smtp_port")
    def _onchange_smtp_ssl_port_25(self):
        if self.smtp_encryption == "ssl" and self.smtp_port == 25:
            return {
                "warning": {
                    "title": self.env._("SSL/TLS on port 25"),
                    "message": self.env._(
                        "Port 25 rarely offers SSL/TLS: servers usually expect "
                        "SSL/TLS on port 465 and STARTTLS on port 587. The setting "
                        "is kept; use Test connection to check it."
                    ),
                }
            }

    @api.onchange("smtp_encryption")
    def _onchange_smtp_encryption_port(self):
        default_ports = {"ssl": 465, "starttls": 587, "none": 25}
        if self.smtp_port in default_ports.values():
            self.smtp_port = default_ports.get(self.smtp_encryption, self.smtp_port)

    def _smtp_notification(self, message, kind="success"):
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {"message": message, "type": kind, "sticky": kind != "success"},
        }

    def action_smtp_test_connection(self):
        """Test the saved settings of the current company."""
        self.ensure_one()
        self.company_id._document_smtp_test()
        return self._smtp_notification(
            self.env._("Connection test successful: the server accepted the settings.")
        )

    def action_smtp_send_test_email(self):
        self.ensure_one()
        email_to = email_normalize(self.smtp_test_email_to or "")
        if not email_to:
            raise UserError(
                self.env._("Enter a valid email address to send the test email to.")
            )
        self.company_id._document_smtp_test(email_to=email_to)
        return self._smtp_notification(
            self.env._("A test email was sent to %(email)s.", email=email_to)
        )
