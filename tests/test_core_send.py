"""Invoices and orders go out as Odoo's own Send makes them: the official
PDF (made once, then reused), the e-invoice files of the installed modules
(account_edi_ubl_cii, really installed by scripts/test.sh), core's alerts
before sending, and the "sent" state afterwards."""

import contextlib
import io
import os
from unittest.mock import patch

from odoo import Command
from odoo.exceptions import UserError
from odoo.tests import tagged
from odoo.tools import config
from odoo.tools.pdf import OdooPdfFileReader

from .common import real_smtp_delivery
from .document_common import DocumentEmailCase


@contextlib.contextmanager
def edi_as_in_production():
    """account_edi_ubl_cii only embeds the Factur-X XML in the PDF outside
    test mode (``config['test_enable']``); the block runs it as in
    production, deliberately, like ``real_smtp_delivery``."""
    with patch.dict(config.options, {"test_enable": False}):
        yield


def attachment_parts(message):
    """{filename: bytes} of a received email's attachments."""
    return {
        part.get_filename(): part.get_payload(decode=True)
        for part in message.iter_attachments()
    }


def embedded_files(pdf):
    reader = OdooPdfFileReader(io.BytesIO(pdf), strict=False)
    return dict(reader.getAttachments())


@tagged("post_install", "-at_install")
class TestCoreSend(DocumentEmailCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        company = cls.env.company
        company.write(
            {
                "vat": "FR23334175221",
                "zip": "75001",
                "phone": "+33 1 23 45 67 89",
                "country_id": cls.env.ref("base.fr").id,
            }
        )
        cls.env["res.partner.bank"].create(
            {
                "acc_number": "FR7630006000011234567890189",
                "partner_id": company.partner_id.id,
            }
        )
        cls.partner_a.zip = "69001"
        cls.partner_a.with_company(company).invoice_edi_format = "facturx"
        cls.partner_b.with_company(company).invoice_edi_format = False

    def invoice_for(self, partner, amount=100.0, move_type="out_invoice", post=True):
        tax = self.company_data[
            "default_tax_sale"
            if move_type.startswith("out")
            else "default_tax_purchase"
        ]
        return self.init_invoice(
            move_type, partner=partner, amounts=[amount], taxes=tax, post=post
        )

    @contextlib.contextmanager
    def refused(self, regex):
        """The UserError the user sees; the savepoint undoes what the request
        would have undone (assertRaisesRegex keeps it in the test)."""
        with self.assertRaisesRegex(UserError, regex), self.env.cr.savepoint():
            yield

    def send(self, records, **values):
        wizard = self.open_wizard(records, **values)
        with edi_as_in_production(), real_smtp_delivery():
            return wizard.action_send()

    def mails_of(self, records):
        return self.env["mail.mail"].search(
            [("model", "=", records._name), ("res_id", "in", records.ids)]
        )

    # -- the official PDF and the e-invoice ---------------------------------

    def test_facturx_official_pdf_with_embedded_xml_and_the_xml(self):
        invoice = self.invoice_for(self.partner_a)
        pdf_name = invoice._get_invoice_report_filename()
        xml_name = invoice.name.replace("/", "_") + "_factur_x.xml"
        wizard = self.open_wizard(invoice)
        # listed before sending, made only when sent (as core's placeholders)
        self.assertEqual(wizard.document_files, f"{pdf_name}, {xml_name}")
        self.assertFalse(wizard.attachment_ids)
        self.assertFalse(wizard.document_alerts)
        self.assertFalse(invoice.invoice_pdf_report_id)
        self.assertFalse(invoice.is_move_sent)
        with edi_as_in_production(), real_smtp_delivery():
            result = wizard.action_send()
        self.assertEqual(result["params"]["type"], "success", result["params"])
        [received] = self.messages_to(self.partner_a.email)
        files = attachment_parts(received["message"])
        self.assertEqual(set(files), {pdf_name, xml_name})
        # the invoice's own official files, stored as core's Send stores them
        self.assertEqual(files[pdf_name], invoice.invoice_pdf_report_id.raw)
        self.assertEqual(files[xml_name], invoice.ubl_cii_xml_id.raw)
        self.assertIn(b"CrossIndustryInvoice", files[xml_name])
        self.assertEqual(
            embedded_files(files[pdf_name])["factur-x.xml"], files[xml_name]
        )
        self.assertTrue(invoice.is_move_sent)
        self.assertEqual(invoice.move_sent_values, "sent")
        # the "Sent" filter of the invoice list finds it
        self.assertIn(
            invoice, self.env["account.move"].search([("is_move_sent", "=", True)])
        )

    def test_second_send_gives_identical_bytes(self):
        invoice = self.invoice_for(self.partner_a)
        self.send(invoice)
        official = invoice.invoice_pdf_report_id
        wizard = self.open_wizard(invoice, duplicate_confirmed=True)
        self.assertEqual(
            wizard.document_files, f"{official.name}, {invoice.ubl_cii_xml_id.name}"
        )
        with edi_as_in_production(), real_smtp_delivery():
            wizard.action_send()
        first, second = self.messages_to(self.partner_a.email)
        self.assertEqual(
            attachment_parts(first["message"]), attachment_parts(second["message"])
        )
        self.assertEqual(invoice.invoice_pdf_report_id, official)
        # core's Print reuses the same stored file too
        self.assertEqual(
            invoice._get_invoice_legal_documents("pdf")["content"], official.raw
        )

    def test_pdf_made_by_core_print_is_the_one_sent(self):
        invoice = self.invoice_for(self.partner_b)
        self.env["account.move.send"]._generate_and_send_invoices(
            invoice, sending_methods=["manual"]
        )
        printed = invoice.invoice_pdf_report_id.raw
        self.send(invoice)
        [received] = self.messages_to(self.partner_b.email)
        self.assertEqual(
            attachment_parts(received["message"]),
            {invoice._get_invoice_report_filename(): printed},
        )

    def test_other_report_leaves_the_official_pdf(self):
        other = self.env.ref("account.account_invoices_without_payment")
        # never sent before: the other report only, no official PDF made
        invoice = self.invoice_for(self.partner_b)
        wizard = self.open_wizard(invoice, report_id=other.id)
        self.assertFalse(wizard.document_files)
        self.assertEqual(len(wizard.attachment_ids), 1)
        self.assert_pdf(wizard.attachment_ids.raw)
        with real_smtp_delivery():
            wizard.action_send()
        self.assertFalse(invoice.invoice_pdf_report_id)
        self.assertTrue(invoice.is_move_sent)
        # already has its official PDF: it stays as it is
        self.send(invoice, duplicate_confirmed=True)
        official = invoice.invoice_pdf_report_id
        checksum = official.checksum
        self.send(invoice, duplicate_confirmed=True, report_id=other.id)
        self.assertEqual(invoice.invoice_pdf_report_id, official)
        self.assertEqual(official.checksum, checksum)
        received = self.messages_to(self.partner_b.email)
        self.assertEqual(len(received), 3)
        self.assertNotEqual(
            attachment_parts(received[2]["message"]),
            attachment_parts(received[1]["message"]),
        )

    def test_batch_gets_the_official_files(self):
        printed = self.invoice_for(self.partner_b)
        self.env["account.move.send"]._generate_and_send_invoices(
            printed, sending_methods=["manual"]
        )
        printed_pdf = printed.invoice_pdf_report_id.raw
        facturx = self.invoice_for(self.partner_a, 50.0)
        lonely = self.invoice_for(self.partner_no_email, 5.0)
        wizard = self.open_wizard(printed | facturx | lonely)
        with edi_as_in_production():
            self.send_in_background(wizard)
        with real_smtp_delivery():
            self.env["mail.mail"].process_email_queue()
        for invoice in printed | facturx:
            [received] = [
                m
                for m in self.received()
                if f" {invoice.name} " in m["message"]["Subject"]
            ]
            expected = {
                file.name: file.raw
                for file in self.env[
                    "account.move.send"
                ]._get_invoice_extra_attachments(invoice)
            }
            self.assertEqual(attachment_parts(received["message"]), expected)
            self.assertTrue(invoice.is_move_sent)
        self.assertEqual(
            len(self.env["account.move.send"]._get_invoice_extra_attachments(facturx)),
            2,
        )
        self.assertEqual(printed.invoice_pdf_report_id.raw, printed_pdf)
        # skipped (nobody to send to): nothing made, not marked as sent
        self.assertFalse(lonely.invoice_pdf_report_id)
        self.assertFalse(lonely.is_move_sent)

    # -- core's alerts and generation errors, before anything is sent --------

    def test_generation_error_shown_before_anything_is_sent(self):
        self.env.company.vat = False
        invoice = self.invoice_for(self.partner_a)
        wizard = self.open_wizard(invoice)
        self.assertIn("EDI document", wizard.document_alerts)
        self.assertIn("Tax ID", wizard.document_alerts)
        with self.refused("Tax ID"):
            self.send(invoice)
        self.assertFalse(self.mails_of(invoice))
        self.assertFalse(self.received())
        self.assertFalse(invoice.invoice_pdf_report_id)
        self.assertFalse(invoice.is_move_sent)

    def test_batch_one_generation_error_fails_that_invoice_only(self):
        """In the background, an invoice whose files cannot be made fails
        with core's error as its reason (no email, no PDF, not sent); the
        others of its chunk go out."""
        good = self.invoice_for(self.partner_b)
        bad = self.invoice_for(self.partner_a, 20.0)
        self.partner_a.zip = False
        wizard = self.open_wizard(good | bad)
        with edi_as_in_production():
            batch = self.send_in_background(wizard)
        self.assertFalse(self.mails_of(bad))
        self.assertFalse(bad.invoice_pdf_report_id)
        self.assertFalse(bad.is_move_sent)
        [failed] = batch.line_ids.filtered(lambda line: line.state == "failed")
        self.assertEqual(failed.res_id, bad.id)
        self.assertIn(bad.name, failed.failure_reason)
        self.assertEqual(len(self.mails_of(good)), 1)
        self.assertTrue(good.invoice_pdf_report_id)
        self.assertTrue(good.is_move_sent)

    def test_stored_pdf_missing_from_the_filestore_is_never_sent_without(self):
        """An official PDF whose file is gone from the filestore (Odoo reads
        it as empty, and mail would silently leave it out): in a batch that
        invoice fails, named with the reason, and is not emailed; the others
        of its chunk go out with their PDF; sent alone, the user is told and
        nothing is sent."""
        lost = self.invoice_for(self.partner_b, 30.0)
        kept = self.invoice_for(self.partner_b, 40.0)
        self.env["account.move.send"]._generate_and_send_invoices(
            lost | kept, sending_methods=["manual"]
        )
        stored = lost.invoice_pdf_report_id
        path = stored._full_path(stored.store_fname)
        moved = f"{path}.test-away"
        os.rename(path, moved)
        self.addCleanup(os.rename, moved, path)
        self.assertEqual(stored.raw, b"", "Odoo reads a lost file as empty")
        wizard = self.open_wizard(lost | kept, duplicate_confirmed=True)
        batch = self.send_in_background(wizard)
        [failed] = batch.line_ids.filtered(lambda line: line.state == "failed")
        self.assertEqual(failed.res_id, lost.id)
        self.assertIn(
            f"{lost.display_name} was not sent: its file {stored.name} could not",
            failed.failure_reason,
        )
        self.assertFalse(self.mails_of(lost))
        [mail] = self.mails_of(kept)
        self.assertEqual(mail.attachment_ids.raw, kept.invoice_pdf_report_id.raw)
        self.assertTrue(mail.attachment_ids.raw.startswith(b"%PDF"))
        with self.refused("could not be made or read"):
            self.send(lost)
        self.assertFalse(self.mails_of(lost))

    def test_core_danger_alert_blocks_single_send(self):
        invoice = self.invoice_for(self.partner_a, post=False)
        invoice.partner_bank_id = False
        invoice.action_post()
        wizard = self.open_wizard(invoice)
        self.assertIn("Recipient bank", wizard.document_alerts)
        with self.refused("Recipient bank"):
            self.send(invoice)
        self.assertFalse(self.mails_of(invoice))

    # -- templates ------------------------------------------------------------

    def test_invoice_portal_and_payment_links(self):
        self.env["ir.config_parameter"].set_param(
            "account_payment.enable_portal_payment", True
        )
        invoice = self.invoice_for(self.partner_b)
        self.assertTrue(invoice._has_to_be_paid())
        self.send(invoice)
        [received] = self.messages_to(self.partner_b.email)
        html = received["message"].get_body(("html",)).get_content()
        portal = invoice.get_base_url() + invoice.get_portal_url()
        self.assertIn(f"/my/invoices/{invoice.id}?access_token=", portal)
        self.assertIn(f'href="{portal}"', html)
        self.assertIn("View invoice online", html)
        self.assertIn(f'href="{portal}&amp;payment=true"', html)
        # paid, or a credit note: the portal link only
        refund = self.invoice_for(self.partner_b, 10.0, "out_refund")
        wizard = self.open_wizard(refund)
        self.assertIn("View credit note online", wizard.body)
        self.assertNotIn("payment=true", wizard.body)
        # a vendor bill is not sent from here at all (issue 10 §4)
        bill = self.invoice_for(self.partner_b, 10.0, "in_invoice")
        with self.assertRaisesRegex(UserError, "vendor bill or refund"):
            self.open_wizard(bill)

    # -- quotations -------------------------------------------------------------

    def test_quotation_becomes_sent_with_its_signature_link(self):
        order = self.env["sale.order"].create(
            {
                "partner_id": self.partner_b.id,
                "require_signature": True,
                "require_payment": False,
                "order_line": [Command.create({"product_id": self.product_a.id})],
            }
        )
        self.assertEqual(order.state, "draft")
        self.send(order)
        self.assertEqual(order.state, "sent")
        [received] = self.messages_to(self.partner_b.email)
        html = received["message"].get_body(("html",)).get_content()
        portal = order.get_base_url() + order.get_portal_url()
        self.assertIn(f"/my/orders/{order.id}?access_token=", portal)
        self.assertIn(f'href="{portal}"', html)
        self.assertIn("Sign online", html)
        # a confirmed order keeps its state
        order.action_confirm()
        self.send(order, duplicate_confirmed=True)
        self.assertEqual(order.state, "sale")

    def test_own_fields_written_without_touching_the_invoice(self):
        """The add-on's fields (token, last email, its state) are written on
        a posted invoice without writing its lines nor marking it modified
        by hand (core's vendor-bill auto-post reads that flag); any other
        field is refused."""
        invoice = self.init_invoice("out_invoice", amounts=[100], post=True)
        invoice.access_token = False
        invoice.is_manually_modified = False
        self.env.flush_all()
        self.env.cr.execute(
            "UPDATE account_move_line SET write_date = '2000-01-01' WHERE move_id = %s",
            [invoice.id],
        )
        invoice.invalidate_recordset()
        invoice.line_ids.invalidate_recordset()
        invoice._document_email_before_render()
        invoice._document_email_write({"document_email_state": "queued"})
        self.env.flush_all()
        invoice.invalidate_recordset()
        invoice.line_ids.invalidate_recordset()
        self.assertTrue(invoice.access_token)
        self.assertEqual(invoice.document_email_state, "queued")
        self.assertFalse(invoice.is_manually_modified)
        self.assertEqual(
            {str(date)[:4] for date in invoice.line_ids.mapped("write_date")},
            {"2000"},
            "no line of the invoice was written",
        )
        with self.assertRaisesRegex(ValueError, "not the add-on's own fields"):
            invoice._document_email_write({"narration": "changed"})
