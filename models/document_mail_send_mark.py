"""A company's document email sent at once, outside the queue ("Send now"),
in the user's request (issue 22): its in-flight mark is committed on a
cursor of its own before the server takes the message, and its outcome
after, so that the request replayed (Odoo retries it after a serialization
failure) or run again from the same dialog finds the email in flight or
sent and does not send it a second time. Once the request commits, the
email carries its own state and the mark is forgotten."""

import contextvars
import hashlib

from odoo import api, fields, models
from odoo.tools.mail import email_normalize_all

# "dialog|document" of the email this request sends at once (Send now): the
# dialog is committed before the request, stable across replays and re-clicks
SEND_NOW_ORIGIN = contextvars.ContextVar("document_send_now_origin", default=None)


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
        """The same for the same email across a replay: the dialog and the
        document it sends (not the record the email is kept on, which a
        statement creates anew on each try) and its recipients (sorted,
        lower-cased), hashed so that a long Cc list fits the unique index;
        numbered within the request, as a replay numbers them again, so
        that a second email to them in it is not taken for the first."""
        origin = SEND_NOW_ORIGIN.get() or (
            f"{mail.model},{mail.res_id}"
            if mail.model and mail.res_id
            else f"mail.mail,{mail.message_id}"
        )
        headers = ", ".join(
            value for name in ("To", "Cc", "Bcc") for value in message.get_all(name, [])
        )
        recipients = ",".join(sorted(set(email_normalize_all(headers))))
        canonical = f"{origin}|{recipients}"
        # cleared at the request's commit or rollback (Odoo's callbacks' data)
        counts = self.env.cr.postcommit.data.setdefault("document_send_marks", {})
        counts[canonical] = counts.get(canonical, 0) + 1
        canonical = f"{canonical}|{counts[canonical]}"
        return hashlib.sha256(canonical.encode()).hexdigest()

    @api.model
    def _begin(self, key, message_id):
        """(the mark's id, None) if this email may go now (marked in flight,
        committed); else (the mark's id, what an earlier attempt left:
        (state, Message-Id))."""
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
                    "SELECT id, state, message_id FROM document_mail_send_mark "
                    "WHERE key = %s",
                    [key],
                )
            row = new or cr.fetchone()
        if row is None:  # the earlier mark was forgotten meanwhile: mark anew
            return self._begin(key, message_id)
        mark_id, *earlier = row
        if new:
            # its commit records the email's state: forgotten then; a mark
            # found may still protect a request alive (retrying): it stays
            self.env.cr.postcommit.add(lambda: self._settle(mark_id, forget=True))
        return mark_id, tuple(earlier) or None

    @api.model
    def _settle(self, mark_id, sent=False, forget=False):
        """The server took it (sent), or nothing reached it (forget: a
        refusal, or the request committed); an uncertain end keeps it in
        flight. By the mark's id: never a key computed again."""
        with self.env.registry.cursor() as cr:
            if forget:
                cr.execute(
                    "DELETE FROM document_mail_send_mark WHERE id = %s", [mark_id]
                )
            elif sent:
                cr.execute(
                    "UPDATE document_mail_send_mark SET state = 'sent' WHERE id = %s",
                    [mark_id],
                )

    @api.autovacuum
    def _gc_old_marks(self):
        # a request that failed for good leaves its mark: kept a day
        self.env.cr.execute(
            "DELETE FROM document_mail_send_mark "
            "WHERE marked_at < (now() AT TIME ZONE 'UTC') - interval '1 day'"
        )
