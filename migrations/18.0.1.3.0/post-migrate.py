# Copyright 2026 account_document_email developers
# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Balance confirmations approved before the approved postal address: each
request takes the address its approval entry recorded, if it recorded one;
else it stays empty, and its letter says the address was never approved
(never the partner's address of today)."""

import json


def migrate(cr, version):
    if not version:
        return
    cr.execute(
        """
        SELECT payload FROM account_confirmation_event
         WHERE event_type = 'approved' ORDER BY sequence
        """
    )
    addresses = {}
    for (payload,) in cr.fetchall():
        approval = json.loads(payload or "{}")
        rows = zip(
            approval.get("request_ids", []), approval.get("requests", []), strict=False
        )
        for request_id, row in rows:
            # rows recorded before this version have no fourth column
            if len(row) > 3 and row[3]:
                addresses[request_id] = row[3]
    for request_id, address in addresses.items():
        cr.execute(
            """
            UPDATE account_confirmation_request SET approved_address = %s
             WHERE id = %s AND approved_address IS NULL
            """,
            (address, request_id),
        )
