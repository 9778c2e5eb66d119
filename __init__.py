from . import controllers
from . import models
from . import wizards
from . import report


def uninstall_hook(env):
    """Remove the outgoing and incoming servers this add-on created for
    companies, so that Odoo never chooses or reads them once the add-on is
    gone; hand-made servers stay. Emails still queued for them are failed with
    a reason (the user may retry them through Odoo's own server); sent emails
    only lose the link."""
    env["fetchmail.server"].sudo().with_context(active_test=False).search(
        [("document_company_id", "!=", False)]
    ).unlink()
    servers = (
        env["ir.mail_server"]
        .sudo()
        .with_context(active_test=False)
        .search([("document_company_id", "!=", False)])
    )
    if not servers:
        return
    mails = env["mail.mail"].sudo().search([("mail_server_id", "in", servers.ids)])
    queued = mails.filtered(lambda mail: mail.state == "outgoing")
    reason = env._(
        "Not sent: the outgoing server of the company's documents was removed "
        "when the add-on Send Documents by Email was uninstalled. Retry to send "
        "it through Odoo's outgoing mail server."
    )
    queued.write({"state": "exception", "failure_reason": reason})
    queued.notification_ids.filtered(
        lambda notification: notification.notification_status in ("ready", "process")
    ).write(
        {
            "notification_status": "exception",
            "failure_type": "mail_smtp",
            "failure_reason": reason,
        }
    )
    env["mail.message"].sudo().search([("mail_server_id", "in", servers.ids)]).write(
        {"mail_server_id": False}
    )
    servers.unlink()
