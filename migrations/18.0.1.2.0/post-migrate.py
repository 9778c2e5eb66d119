# Copyright 2026 account_document_email developers
# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Balance confirmation links: keep only a digest of the tokens already sent
(the links still work), and no token a user could read."""


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
