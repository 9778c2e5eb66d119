from odoo import api, fields, models

# settings field -> res.company field, as for the outgoing side
INCOMING_SETTINGS = {
    "incoming_use": "document_incoming_use",
    "incoming_type": "document_incoming_type",
    "incoming_host": "document_incoming_host",
    "incoming_port": "document_incoming_port",
    "incoming_encryption": "document_incoming_encryption",
    "incoming_same_account": "document_incoming_same_account",
    "incoming_user": "document_incoming_user",
    "incoming_pass": "document_incoming_pass",
}
INCOMING_PORTS = {("imap", "ssl"): 993, ("imap", "none"): 143}
INCOMING_PORTS.update({("pop", "ssl"): 995, ("pop", "none"): 110})


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"

    incoming_use = fields.Boolean(
        "Read the account's mailbox (bounces and replies)",
        groups="base.group_system",
    )
    incoming_type = fields.Selection(
        [("imap", "IMAP"), ("pop", "POP")],
        "Incoming Server Type",
        default="imap",
        groups="base.group_system",
    )
    incoming_host = fields.Char("Incoming Server", groups="base.group_system")
    incoming_port = fields.Integer(
        "Incoming Port", default=993, groups="base.group_system"
    )
    incoming_encryption = fields.Selection(
        [("ssl", "SSL/TLS"), ("none", "None")],
        "Incoming Encryption",
        default="ssl",
        groups="base.group_system",
    )
    incoming_same_account = fields.Boolean(
        "Same account as the outgoing server",
        default=True,
        groups="base.group_system",
    )
    incoming_user = fields.Char("Incoming Account", groups="base.group_system")
    incoming_pass = fields.Char("Incoming Password", groups="base.group_system")

    @api.model
    def get_values(self):
        res = super().get_values()
        if self.env.user.has_group("base.group_system"):
            company = self.env.company.sudo()
            res.update(
                {name: company[field] for name, field in INCOMING_SETTINGS.items()}
            )
        return res

    def set_values(self):
        super().set_values()
        if not self.env.user.has_group("base.group_system"):
            return
        company = self.company_id.sudo()
        values = {field: self[name] for name, field in INCOMING_SETTINGS.items()}
        changed = {
            field: value for field, value in values.items() if company[field] != value
        }
        if changed:
            company.write(changed)

    @api.onchange("incoming_type", "incoming_encryption")
    def _onchange_incoming_port(self):
        if self.incoming_port in INCOMING_PORTS.values():
            self.incoming_port = INCOMING_PORTS.get(
                (self.incoming_type, self.incoming_encryption), self.incoming_port
            )

    def action_incoming_test_connection(self):
        """Test the saved incoming settings of the current company."""
        self.ensure_one()
        self.company_id._document_incoming_test()
        return self._smtp_notification(
            self.env._(
                "Incoming connection test successful: Odoo can read the mailbox."
            )
        )
