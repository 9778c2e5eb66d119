from odoo.tests import tagged

from .common import real_smtp_delivery
from .document_common import DocumentEmailCase


@tagged("post_install", "-at_install")
class TestTours(DocumentEmailCase):
    """The seed's paths, clicked through in headless Chromium."""

    def test_invoice_envelope_send_confirm(self):
        invoice = self.init_invoice(
            "out_invoice", partner=self.partner_a, amounts=[100.0], post=True
        )
        url = f"/odoo/action-account.action_move_out_invoice_type/{invoice.id}"
        # the browser's request delivers for real to the test SMTP server
        with real_smtp_delivery():
            self.start_tour(
                url, "account_document_email_invoice_tour", login=self.env.user.login
            )
        [received] = self.received()
        self.assertEqual(received["rcpt_tos"], [self.partner_a.email])
        self.assertIn(invoice.name, received["message"]["Subject"])
