# Copyright 2026 account_document_email developers
# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Balance confirmation emails whose outcome versions 18.0.1.2.0 and
18.0.1.3.0 left to the follow-up (which no longer rebuilds it from the
emails): each settled email of a request without an outcome row, nor an
outcome entry naming it, gets its outcome now, appended by the outcomes' job."""

from odoo import SUPERUSER_ID, api


def migrate(cr, version):
    if not version:
        return
    env = api.Environment(cr, SUPERUSER_ID, {})
    env["account.confirmation.outcome"]._record_missing()
