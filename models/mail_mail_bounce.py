from markupsafe import Markup

from odoo import fields, models
from odoo.tools import email_normalize, email_normalize_all

# what the delivery state shown on the document is made of
DELIVERY_FIELDS = {"state", "document_uncertain", "document_bounced"}


class MailMail(models.Model):
    """What became of the add-on's own emails once sent: a bounce that
    answers one of them (matched by ``mail.thread``) is kept here, shown on
    its document and counted by its batch."""

    _inherit = "mail.mail"

    document_email = fields.Boolean(
        "Sent by Send by Email",
        readonly=True,
        copy=False,
        index="btree_not_null",
        help="Created by the add-on: its bounces are matched to it.",
    )
    document_bounced = fields.Boolean("Bounced", readonly=True, copy=False)
    document_bounced_emails = fields.Char(
        "Bounced addresses",
        readonly=True,
        copy=False,
        help="The recipients' addresses a bounce named (normalized).",
    )

    def write(self, vals):
        result = super().write(vals)
        # a documents session writes its states once at its end
        # (mail.mail._document_email_states_changed)
        deferred = self.env.context.get("document_email_states_deferred")
        if DELIVERY_FIELDS.intersection(vals) and not deferred:
            self._document_write_delivery_state()
        return result

    def _document_write_delivery_state(self):
        """The documents whose last email this is show its delivery state:
        only for the add-on's emails (one indexed search per email). A
        deletion changes nothing: the document keeps its last state."""
        mixin = self.env.registry["document.email.mixin"]
        for mail in self.filtered("document_email"):
            if mail.model not in self.env or not isinstance(
                self.env[mail.model], mixin
            ):
                continue
            documents = (
                self.env[mail.model]
                .sudo()
                .search([("document_email_mail_id", "=", mail.id)])
            )
            state = mail._get_document_delivery_state()
            documents.filtered(
                lambda document, state=state: document.document_email_state != state
            )._document_email_write({"document_email_state": state})

    def _get_document_delivery_state(self):
        """queued, sent, bounced, failed, uncertain or cancelled: what
        reached the recipient, as far as Odoo knows."""
        self.ensure_one()
        if self.document_bounced:
            return "bounced"
        if self.state == "exception":
            return "uncertain" if self.document_uncertain else "failed"
        return {"sent": "sent", "received": "sent", "cancel": "cancelled"}.get(
            self.state, "queued"
        )

    def _get_document_recipient_emails(self):
        """Every address this email went to (partners, To, Cc, Bcc)."""
        self.ensure_one()
        emails = set(self.partner_ids.mapped("email_normalized"))
        for text in (self.email_to, self.email_cc, self.email_bcc):
            emails.update(email_normalize_all(text or ""))
        return emails - {False}

    def _get_document_to_emails(self):
        """The addresses this email was meant for (partners and To), not
        its Cc and Bcc."""
        self.ensure_one()
        emails = set(self.partner_ids.mapped("email_normalized"))
        emails.update(email_normalize_all(self.email_to or ""))
        return emails - {False}

    def _document_receive_bounce(self, failures, sender=""):
        """A bounce from ``sender`` answered this email: ``failures`` is
        {address: reason} (the DSN's status and diagnostic, or the bounce's
        own line when it has no DSN; "" when it names no recipient). The
        email and its notifications say so; its document and the scheduled
        statement it carried only once every To recipient failed (or the
        bounce named none): a Cc that bounced leaves the email delivered."""
        self.ensure_one()
        line = self._get_document_bounce_line(failures, sender)
        known = set((self.document_bounced_emails or "").split(","))
        addresses = sorted(filter(None, known | set(failures)))
        bounced = (
            self.document_bounced
            or "" in failures
            or self._get_document_to_emails() <= set(addresses)
        )
        self.sudo().write(
            {
                "document_bounced": bounced,
                "document_bounced_emails": ",".join(addresses),
                # each bounce's addresses and reasons, one line each
                "failure_reason": "\n".join(
                    filter(
                        None,
                        [self.document_bounced_emails and self.failure_reason, line],
                    )
                ),
            }
        )
        self._document_bounce_notifications(failures)
        self._document_bounce_activity(line)
        if bounced and self.document_statement_date:
            self._get_statement_partners().with_company(
                self.document_statement_company_id
            )._statement_bounced(self.document_statement_date, self)

    def _document_bounce_notifications(self, failures):
        """The notifications of the addresses that failed: bounced."""
        for notification in self.sudo().notification_ids:
            address = email_normalize(notification.res_partner_id.email or "")
            if address in failures:
                notification.write(
                    {
                        "notification_status": "bounce",
                        "failure_type": "mail_bounce",
                        "failure_reason": failures[address],
                    }
                )

    def _get_document_bounce_line(self, failures, sender):
        """What a bounce says, and who reported it (a recipient can forge a
        bounce: the reason shown names its sender)."""
        reason = "; ".join(
            f"{address}: {text}" if address else text
            for address, text in failures.items()
        )
        return self.env._(
            "Bounced (reported by %(sender)s): %(reason)s",
            sender=sender or "?",
            reason=reason,
        )

    def _document_bounce_activity(self, reason):
        """A to-do on the document for its salesperson (else the batch's
        user) to fix the address; one open at a time."""
        document = self.env[self.model].sudo().browse(self.res_id).exists()
        if not document or "activity_ids" not in document._fields:
            return
        user = self._get_document_bounce_user(document)
        summary = self.env._("Email bounced: fix the address")
        if not user or document.activity_ids.filtered(
            lambda a: a.summary == summary and a.user_id == user
        ):
            return
        document.activity_schedule(
            "mail.mail_activity_data_todo",
            summary=summary,
            # the bounce's text is the sender's: shown as text, never as HTML
            note=Markup("<p>%s</p>")
            % self.env._(
                "The email %(subject)s did not reach its recipient: %(reason)s. "
                "Correct the address, then send it again.",
                subject=self.subject or "",
                reason=reason,
            ),
            user_id=user.id,
        )

    def _get_document_bounce_user(self, document):
        """The document's salesperson, else who sent the batch, else who
        queued the email: the first that is an active internal user."""
        batch_user = (
            self.env["document.email.batch.line"]
            .sudo()
            .search([("mail_id", "=", self.id)], limit=1)
            .batch_id.user_id
        )
        candidates = [
            document[name]
            for name in ("invoice_user_id", "user_id")
            if name in document._fields
            and document._fields[name].comodel_name == "res.users"
        ]
        candidates += [batch_user, self.create_uid]
        for user in candidates:
            if user and user.active and not user.share:
                return user
        return self.env["res.users"]
