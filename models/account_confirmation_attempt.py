from datetime import timedelta

from odoo import api, fields, models
from odoo.tools import SQL

# at most this many answers per link in a window of that many minutes
ANSWERS_PER_WINDOW = 10
WINDOW_MINUTES = 10


class AccountConfirmationAttempt(models.TransientModel):
    """How many answers a confirmation link sent lately. Counted in the
    database, not in a worker's memory, so the limit holds across workers."""

    _name = "account.confirmation.attempt"
    _description = "Balance Confirmation Answer Count"

    request_id = fields.Many2one(
        "account.confirmation.request", required=True, ondelete="cascade"
    )
    window_start = fields.Datetime(required=True)
    count = fields.Integer(required=True)

    _sql_constraints = [
        ("request_unique", "unique(request_id)", "One count per request.")
    ]

    @api.model
    def _count_answer(self, confirmation):
        """Count one answer of ``confirmation``'s link: False beyond the limit.
        Two answers at once: the later update conflicts and Odoo retries its
        whole request after the first one, so none escapes the count."""
        now = fields.Datetime.now()
        self.env.cr.execute(
            SQL(
                """
                INSERT INTO account_confirmation_attempt AS attempt (
                    request_id, window_start, count,
                    create_uid, create_date, write_uid, write_date
                )
                VALUES (%(request)s, %(now)s, 1, %(uid)s, %(now)s, %(uid)s, %(now)s)
                ON CONFLICT (request_id) DO UPDATE SET
                    count = CASE WHEN attempt.window_start > %(since)s
                        THEN attempt.count + 1 ELSE 1 END,
                    window_start = CASE WHEN attempt.window_start > %(since)s
                        THEN attempt.window_start ELSE %(now)s END,
                    write_date = %(now)s
                RETURNING count
                """,
                request=confirmation.id,
                now=now,
                since=now - timedelta(minutes=WINDOW_MINUTES),
                uid=self.env.uid,
            )
        )
        return self.env.cr.fetchone()[0] <= ANSWERS_PER_WINDOW
