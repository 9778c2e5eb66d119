"""The emails a company's documents server took in each window of its
per-minute limit, counted for all workers together (issue 22): a worker
reserves its slot in this shared row, in a short transaction of its own,
right before handing an email to the server."""

import time
from datetime import UTC, datetime

from odoo import api, fields, models

# the limit's window: a minute; shorter only to test it (the limit then
# holds per window of that many seconds)
WINDOW_PARAM = "account_document_email.smtp_limit_window_seconds"


class DocumentMailServerWindow(models.Model):
    _name = "document.mail.server.window"
    _description = "Emails taken by a documents server per limit window"
    _log_access = False

    server_id = fields.Many2one(
        "ir.mail_server", required=True, ondelete="cascade", index=False
    )
    window_start = fields.Datetime(required=True)
    sent = fields.Integer(required=True, default=0)

    _sql_constraints = [
        (
            "server_window_unique",
            "UNIQUE(server_id, window_start)",
            "One count per server and window.",
        )
    ]

    @api.model
    def _window_seconds(self):
        param = self.env["ir.config_parameter"].sudo().get_param(WINDOW_PARAM)
        return max(int(param or 60), 1)

    @api.model
    def _current_window(self):
        """(start, end, seconds left) of the window now, in UTC."""
        seconds = self._window_seconds()
        now = time.time()
        start = now - now % seconds
        return self._utc(start), self._utc(start + seconds), start + seconds - now

    @api.model
    def _window_with_time_left(self):
        """The start of the window to count in: in the last moments of a
        window (an email counted then could reach the server in the next
        one), the next window, once it has begun (2 s of waiting at most)."""
        start, end, left = self._current_window()
        if left < min(self._window_seconds() * 0.2, 2.0):
            time.sleep(left + 0.01)
            start = end
        return start

    @api.model
    def _utc(self, timestamp):
        return datetime.fromtimestamp(timestamp, UTC).replace(tzinfo=None)

    @api.model
    def _reserve(self, server, count=1, own_transaction=True):
        """How many of ``count`` emails the server may take now, counted as
        taken for every worker. The queue commits the count at once, in a
        transaction of its own, so that no worker waits for another's
        session."""
        start = self._window_with_time_left()
        if not own_transaction:
            return self._reserve_in(self.env.cr, server, start, count)
        with self.env.registry.cursor() as cr:
            # each statement sees the other workers' last committed count
            cr.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
            return self._reserve_in(cr, server, start, count)

    @api.model
    def _reserve_in(self, cr, server, start, count):
        cr.execute(
            """INSERT INTO document_mail_server_window (server_id, window_start, sent)
               VALUES (%s, %s, 0) ON CONFLICT (server_id, window_start) DO NOTHING""",
            [server.id, start],
        )
        cr.execute(
            """WITH old AS (SELECT id, sent FROM document_mail_server_window
                             WHERE server_id = %(server)s AND window_start = %(start)s
                               FOR UPDATE)
               UPDATE document_mail_server_window w
                  SET sent = LEAST(w.sent + %(count)s, %(limit)s)
                 FROM old WHERE w.id = old.id
            RETURNING w.sent - old.sent""",
            {
                "server": server.id,
                "start": start,
                "count": count,
                "limit": server.document_max_per_minute,
            },
        )
        return cr.fetchone()[0]

    @api.model
    def _remaining(self, server):
        """How many more emails the server may take in this window (read
        only: the slots are reserved one by one when sending)."""
        start = self._window_with_time_left()
        self.env.cr.execute(
            """SELECT sent FROM document_mail_server_window
                WHERE server_id = %s AND window_start = %s""",
            [server.id, start],
        )
        row = self.env.cr.fetchone()
        return max(server.document_max_per_minute - (row[0] if row else 0), 0)

    @api.autovacuum
    def _gc_old_windows(self):
        self.env.cr.execute(
            "DELETE FROM document_mail_server_window "
            "WHERE window_start < (now() AT TIME ZONE 'UTC') - interval '1 day'"
        )
