# Copyright 2026 account_document_email developers
# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Balance confirmation links: keep only a digest of the tokens already sent
(the links still work), and no token a user could read. Campaigns already
sent keep working: no code asked (their partners were never told of one),
and the requests' approved address is the one they were sent to."""


def migrate(cr, version):
    if not version:
        return
    cr.execute(
        """
        UPDATE account_confirmation_request
           SET access_token_hash = encode(sha256(convert_to(access_token, 'UTF8')),
                                          'hex'),
               access_token = NULL
         WHERE access_token IS NOT NULL
        """
    )
    cr.execute(
        """
        UPDATE account_confirmation_campaign
           SET require_code = FALSE
         WHERE state != 'draft'
        """
    )
    cr.execute(
        """
        UPDATE account_confirmation_request request
           SET approved_email = partner.email
          FROM res_partner partner
         WHERE partner.id = request.partner_id
           AND request.state != 'draft'
           AND request.approved_email IS NULL
           AND partner.email IS NOT NULL
        """
    )
