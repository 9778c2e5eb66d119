from odoo.exceptions import UserError
from odoo.tests import tagged

from odoo.addons.account.tests.common import AccountTestInvoicingCommon

from .aged_common import DATE_AT, AgedReceivableMixin


@tagged("post_install", "-at_install")
class TestTranslation(AgedReceivableMixin, AccountTestInvoicingCommon):
    """The add-on's Spanish translation (i18n/es.po) reaches what a Spanish
    customer receives and what a Spanish user reads."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env["res.lang"]._activate_lang("es_ES")
        cls.env["ir.module.module"]._load_module_terms(
            ["account_document_email"], ["es_ES"], overwrite=True
        )
        cls.partner_es = cls.create_customer(
            "Cliente Ejemplo", lang="es_ES", email="cliente@example.com"
        )

    def open_wizard(self, records, **context):
        return (
            self.env["document.email.wizard"]
            .with_context(active_model=records._name, active_ids=records.ids, **context)
            .create({})
        )

    def aged_email_wizard(self, document):
        aged = self.env["account.aged.receivable.wizard"].create(
            {
                "date_at": DATE_AT,
                "interval_days": 30,
                "send_by_email": True,
                "partner_ids": self.partner_es.ids,
            }
        )
        action = getattr(aged, f"action_{document}")()
        return (
            self.env["document.email.wizard"]
            .with_context(**action["context"])
            .create({})
        )

    def test_invoice_email_in_spanish(self):
        invoice = self.init_invoice(
            "out_invoice", partner=self.partner_es, amounts=[100.0], post=True
        )
        wizard = self.open_wizard(invoice)
        self.assertEqual(
            wizard.subject, f"Factura {invoice.name} de {self.env.company.name}"
        )
        self.assertIn("Adjunto encontrará la factura", wizard.body)

    def test_statement_and_letter_subjects_in_spanish(self):
        self.create_receivable(self.partner_es, 500.0, 40)
        company = self.env.company.name
        self.assertEqual(
            self.aged_email_wizard("statement").subject,
            f"Estado de cuenta al 30/06/2024 de {company}",
        )
        self.assertEqual(
            self.aged_email_wizard("letter").subject,
            f"Confirmación de saldo al 30/06/2024 solicitada por {company}",
        )

    def test_error_message_in_spanish(self):
        self.partner_es.email = False
        invoice = self.init_invoice(
            "out_invoice", partner=self.partner_es, amounts=[100.0], post=True
        )
        wizard = self.open_wizard(invoice, lang="es_ES")
        with self.assertRaisesRegex(
            UserError, r"^Agregue al menos un destinatario \(Para\)\.$"
        ):
            wizard.action_send()

    def test_wizard_view_in_spanish(self):
        arch = (
            self.env["document.email.wizard"]
            .with_context(lang="es_ES")
            .get_views([(False, "form")])["views"]["form"]["arch"]
        )
        self.assertIn('string="Enviar de nuevo"', arch)
        self.assertIn('string="Enviar por correo electrónico"', arch)

    def test_aged_list_headings_in_spanish(self):
        lines = self.env["account.aged.receivable.line"].with_context(lang="es_ES")
        for context, partner_heading in (
            ({"aged_interval_days": 30}, "Cliente"),
            (
                {"aged_interval_days": 30, "aged_account_type": "liability_payable"},
                "Proveedor",
            ),
        ):
            arch = lines.with_context(**context).get_views([(False, "list")])["views"][
                "list"
            ]["arch"]
            for heading in (partner_heading, "Por vencer", "31-60", "Más de 120"):
                self.assertIn(f'string="{heading}"', arch)
