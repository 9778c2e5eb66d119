"""Base class for tests that send documents: accounting data, a real SMTP
server the main company sends through, and real PDFs (HttpCase, so that
wkhtmltopdf can fetch the assets; ``force_report_rendering`` so Odoo renders
real PDFs instead of HTML in test mode)."""

import json

from odoo.addons.account.tests.common import AccountTestInvoicingHttpCommon

from .common import SMTPServerMixin


class DocumentEmailCase(SMTPServerMixin, AccountTestInvoicingHttpCommon):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env = cls.env(context=dict(cls.env.context, force_report_rendering=True))
        company = cls.env.company
        company.email = "billing@company.example.com"
        cls.start_smtp_server(company)
        cls.partner_a.email = "partner.a@customer.example.com"
        cls.partner_b.email = "partner.b@customer.example.com"
        cls.partner_no_email = cls.env["res.partner"].create({"name": "No Email Ltd"})

    def open_wizard(self, records, **values):
        return (
            records.env["document.email.wizard"]
            .with_context(active_model=records._name, active_ids=records.ids)
            .create(values)
        )

    def send_in_background(self, wizard):
        """Send from the wizard, then run the batch's scheduled job as the
        scheduler would (without committing): the batch, processed."""
        action = wizard.action_send()
        self.assertEqual(action["res_model"], "document.email.batch")
        batch = self.env["document.email.batch"].browse(action["res_id"])
        self.process_batches()
        return batch

    def statement_mails(self, partners):
        """The statement (or letter) emails of these partners: they are kept
        on their statement record, not on the partner."""
        logs = self.env["document.email.statement"].search(
            [("partner_id", "in", partners.ids)]
        )
        return self.env["mail.mail"].search(
            [("model", "=", logs._name), ("res_id", "in", logs.ids)]
        )

    def partner_ids_of(self, mails):
        """The partner of each statement email, in the emails' order."""
        logs = self.env["document.email.statement"]
        return [logs.browse(mail.res_id).partner_id.id for mail in mails]

    def process_batches(self):
        batches = self.env["document.email.batch"]
        while batches._process_chunk():
            pass

    def wizard_documents(self, wizard):
        return self.env[wizard.res_model].browse(json.loads(wizard.res_ids))

    def assert_pdf(self, content):
        self.assertTrue(content.startswith(b"%PDF"), content[:60])

    def messages_to(self, address):
        return [m for m in self.received() if address in m["rcpt_tos"]]
