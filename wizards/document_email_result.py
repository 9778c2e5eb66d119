from markupsafe import Markup, escape

from odoo import api, fields, models


class DocumentEmailResult(models.TransientModel):
    """What became of a batch: sent, waiting, failed and skipped documents,
    with the failed ones retried in one click."""

    _name = "document.email.result"
    _description = "Send by Email: Batch Result"

    mail_ids = fields.Many2many("mail.mail", string="Emails", readonly=True)
    skipped_names = fields.Text("Skipped (no email)", readonly=True)
    sent_count = fields.Integer(compute="_compute_counts", compute_sudo=True)
    pending_count = fields.Integer(compute="_compute_counts", compute_sudo=True)
    failed_count = fields.Integer(compute="_compute_counts", compute_sudo=True)
    skipped_count = fields.Integer(compute="_compute_counts", compute_sudo=True)
    summary = fields.Html(compute="_compute_counts", compute_sudo=True, sanitize=False)

    @api.depends("mail_ids.state", "skipped_names")
    def _compute_counts(self):
        for result in self:
            mails = result.mail_ids
            result.sent_count = len(mails.filtered(lambda m: m.state == "sent"))
            result.pending_count = len(mails.filtered(lambda m: m.state == "outgoing"))
            result.failed_count = len(
                mails.filtered(lambda m: m.state in ("exception", "cancel"))
            )
            skipped = [n for n in (result.skipped_names or "").split("\n") if n]
            result.skipped_count = len(skipped)
            result.summary = result._summary_html(mails, skipped)

    def _summary_html(self, mails, skipped):
        labels = {
            "sent": self.env._("Sent"),
            "outgoing": self.env._("Waiting"),
            "exception": self.env._("Failed"),
            "cancel": self.env._("Cancelled"),
        }
        rows = [
            Markup("<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>")
            % (
                mail.record_name,
                mail.email_to,
                labels.get(mail.state, mail.state),
                mail.failure_reason or "",
            )
            for mail in mails
        ] + [
            Markup("<tr><td>%s</td><td></td><td>%s</td><td></td></tr>")
            % (name, self.env._("Skipped: no recipient with an email"))
            for name in skipped
        ]
        head = Markup("<tr><th>%s</th><th>%s</th><th>%s</th><th>%s</th></tr>") % (
            self.env._("Document"),
            self.env._("To"),
            self.env._("Status"),
            self.env._("Reason"),
        )
        return (
            (
                Markup(
                    '<table class="table table-sm"><thead>%s</thead><tbody>%s</tbody>'
                )
                % (head, Markup("").join(rows))
                + Markup("</table>")
            )
            if rows
            else escape("")
        )

    def action_retry_failed(self):
        """Send the failed emails of this batch again (the user's own batch)."""
        self.ensure_one()
        failed = self.sudo().mail_ids.filtered(lambda m: m.state == "exception")
        failed.action_retry()
        self.env.ref("mail.ir_cron_mail_scheduler_action")._trigger()
        return self.action_refresh()

    def action_refresh(self):
        self.ensure_one()
        return {
            "type": "ir.actions.act_window",
            "name": self.env._("Send by email: result"),
            "res_model": self._name,
            "res_id": self.id,
            "view_mode": "form",
            "target": "new",
        }
