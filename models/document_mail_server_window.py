"""A company's documents server's per-minute limit, counted for all workers
together on the database's clock (issue 22): a sliding window, never a
clock-aligned one (two aligned minutes would let twice the limit through in
60 s). A worker reserves its slot right before handing an email to the
server, in a short transaction of its own: it locks the server's row here,
counts the slots taken in the last window and takes one if the limit allows
it."""

from odoo import api, fields, models

# the limit's window: a minute; shorter only to test it (the limit then
# holds in any span of that many seconds)
WINDOW_PARAM = "account_document_email.smtp_limit_window_seconds"
# a slot is counted this much longer than the window: the email it stands
# for reaches the server a moment after its slot was taken
MARGIN_SECONDS = 2

# the slots that still count: taken within the window (plus the margin) of
# the database's clock
COUNTED = """FROM document_mail_server_slot
              WHERE server_id = %(server)s
                AND taken_at > (clock_timestamp() AT TIME ZONE 'UTC')
                               - make_interval(secs => %(seconds)s)"""


class DocumentMailServerWindow(models.Model):
    _name = "document.mail.server.window"
    _description = "Per-minute limit lock of a documents server"
    _log_access = False

    server_id = fields.Many2one(
        "ir.mail_server", required=True, ondelete="cascade", index=False
    )

    _sql_constraints = [
        ("server_unique", "UNIQUE(server_id)", "One lock per server."),
    ]

    @api.model
    def _window_seconds(self):
        param = self.env["ir.config_parameter"].sudo().get_param(WINDOW_PARAM)
        return max(int(param or 60), 1)

    @api.model
    def _counted_seconds(self):
        return self._window_seconds() + MARGIN_SECONDS

    @api.model
    def _reserve(self, server, own_transaction=True):
        """Whether the server may take one more email now: if so, its slot
        is taken for every worker. The queue commits the slot at once, in a
        transaction of its own, so that no worker waits for another's
        session."""
        if not own_transaction:
            return self._reserve_in(self.env.cr, server)
        with self.env.registry.cursor() as cr:
            # each statement sees the other workers' last committed slots
            cr.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
            return self._reserve_in(cr, server)

    @api.model
    def _reserve_in(self, cr, server):
        params = {"server": server.id, "seconds": self._counted_seconds()}
        cr.execute(
            """INSERT INTO document_mail_server_window (server_id) VALUES (%s)
               ON CONFLICT (server_id) DO NOTHING""",
            [server.id],
        )
        # one worker at a time counts and takes a slot of this server
        cr.execute(
            """SELECT id FROM document_mail_server_window
                WHERE server_id = %s FOR UPDATE""",
            [server.id],
        )
        cr.execute(f"SELECT count(*) {COUNTED}", params)
        if cr.fetchone()[0] >= server.document_max_per_minute:
            return False
        cr.execute(
            """INSERT INTO document_mail_server_slot (server_id, taken_at)
               VALUES (%s, clock_timestamp() AT TIME ZONE 'UTC')""",
            [server.id],
        )
        return True

    @api.model
    def _remaining(self, server):
        """How many more emails the server may take now (read only: the
        slots are taken one by one when sending)."""
        self.env.cr.execute(
            f"SELECT count(*) {COUNTED}",
            {"server": server.id, "seconds": self._counted_seconds()},
        )
        return max(server.document_max_per_minute - self.env.cr.fetchone()[0], 0)

    @api.model
    def _next_free_at(self, server):
        """When the server may take an email again (UTC, database clock):
        when enough of the slots still counted have left the window (the
        oldest one, unless the limit was lowered since), to the second
        after."""
        self.env.cr.execute(
            f"""SELECT date_trunc('second', COALESCE(
                  (SELECT taken_at {COUNTED} ORDER BY taken_at
                    OFFSET GREATEST((SELECT count(*) {COUNTED}) - %(limit)s, 0)
                    LIMIT 1) + make_interval(secs => %(seconds)s),
                  clock_timestamp() AT TIME ZONE 'UTC') + interval '999 ms')""",
            {
                "server": server.id,
                "seconds": self._counted_seconds(),
                "limit": server.document_max_per_minute,
            },
        )
        return self.env.cr.fetchone()[0]


class DocumentMailServerSlot(models.Model):
    _name = "document.mail.server.slot"
    _description = "Email taken by a documents server"
    _log_access = False

    server_id = fields.Many2one(
        "ir.mail_server", required=True, ondelete="cascade", index=False
    )
    taken_at = fields.Datetime(required=True)

    def init(self):
        self.env.cr.execute(
            """CREATE INDEX IF NOT EXISTS document_mail_server_slot_server_taken
                   ON document_mail_server_slot (server_id, taken_at)"""
        )

    @api.autovacuum
    def _gc_old_slots(self):
        self.env.cr.execute(
            "DELETE FROM document_mail_server_slot "
            "WHERE taken_at < (now() AT TIME ZONE 'UTC') - interval '1 day'"
        )
