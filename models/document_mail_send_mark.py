"""A company's document email sent at once, outside the queue ("Send now"),
in the user's request (issue 22): its in-flight mark is committed on a
cursor of its own before the server takes the message, and its outcome
after, so that the request replayed (Odoo retries it after a serialization
failure) or run again from the same dialog finds the email in flight or
sent and does not send it a second time. Once the request commits, the
email carries its own state and the mark is forgotten."""

from odoo import api, fields, models


class DocumentMailSendMark(models.Model):
    _name = "document.mail.send.mark"
    _description = "Document email sent at once"
    _log_access = False

    key = fields.Char(required=True, index=False)
    message_id = fields.Char("Message-Id", required=True)
    state = fields.Selection(
        [("in_flight", "In flight"), ("sent", "Sent")], required=True
    )
    marked_at = fields.Datetime(required=True)

    _sql_constraints = [
        ("key_unique", "UNIQUE(key)", "One mark per email sent at once."),
    ]

    @api.model
    def _key(self, mail, message):
        """The same for the same email across a replay: the dialog's own key
        (its record, committed before the user pressed Send) or the email's
        Message-Id, with its recipients."""
        base = self.env.context.get("document_email_send_key") or (
            f"mail.mail,{mail.message_id}"
        )
        return f"{base}|{message['To']}|{message['Cc']}"

    @api.model
    def _begin(self, key, message_id):
        """None if this email may go now (marked in flight, committed); else
        what an earlier attempt left: (state, Message-Id)."""
        with self.env.registry.cursor() as cr:
            cr.execute(
                """INSERT INTO document_mail_send_mark
                          (key, message_id, state, marked_at)
                   VALUES (%s, %s, 'in_flight', now() AT TIME ZONE 'UTC')
                   ON CONFLICT (key) DO NOTHING RETURNING id""",
                [key, message_id],
            )
            new = cr.fetchone()
            if not new:
                cr.execute(
                    "SELECT state, message_id FROM document_mail_send_mark "
                    "WHERE key = %s",
                    [key],
                )
                earlier = cr.fetchone()
        # the request's own commit records the email's state: forgotten then
        self.env.cr.postcommit.add(lambda: self._settle(key, forget=True))
        return None if new else earlier

    @api.model
    def _settle(self, key, sent=False, forget=False):
        """The server took it (sent), or nothing reached it (forget: a
        refusal, or the request committed); an uncertain end keeps it in
        flight."""
        with self.env.registry.cursor() as cr:
            if forget:
                cr.execute("DELETE FROM document_mail_send_mark WHERE key = %s", [key])
            elif sent:
                cr.execute(
                    "UPDATE document_mail_send_mark SET state = 'sent' WHERE key = %s",
                    [key],
                )

    @api.autovacuum
    def _gc_old_marks(self):
        # a request that failed for good leaves its mark: kept a day
        self.env.cr.execute(
            "DELETE FROM document_mail_send_mark "
            "WHERE marked_at < (now() AT TIME ZONE 'UTC') - interval '1 day'"
        )
