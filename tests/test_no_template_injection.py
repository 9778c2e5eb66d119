"""Nothing a partner types ever runs (issue "One sending engine"): text a
partner controls (its name) reaches every path that queues an email, under
templates customised to show it, and comes out as typed; text a user edits
is sent as typed, never rendered; the batch code never makes a dialog."""

from datetime import date, timedelta

from odoo import SUPERUSER_ID, Command, fields
from odoo.exceptions import AccessError, UserError
from odoo.tests import new_test_user, tagged

from .aged_common import DATE_AT, AgedReceivableMixin
from .common import real_smtp_delivery
from .document_common import DocumentEmailCase

EVIL = "ACME {{ 6*7 }} / {{ object.env.user.login }} / {{ object.env.su }}"
RENDERED = ("ACME 42", "__system__", "/ True", "{{ 6*7 }} 42")


@tagged("post_install", "-at_install")
class TestNoTemplateInjection(AgedReceivableMixin, DocumentEmailCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.evil = cls.create_customer(EVIL, email="evil@customer.example.com")

    def setUp(self):
        super().setUp()
        # the batch code renders through the engine: a dialog made while a
        # batch processes its lines fails the test
        test = self
        self.batch_depth = 0
        self.dialogs_made_in_batches = 0
        Wizard = self.registry["document.email.wizard"]
        Batch = self.registry["document.email.batch"]
        original_create = Wizard.create
        original_process = Batch._process_lines

        def create(wizard_model, vals_list):
            test.dialogs_made_in_batches += bool(test.batch_depth)
            return original_create(wizard_model, vals_list)

        def process_lines(batch, lines):
            test.batch_depth += 1
            try:
                return original_process(batch, lines)
            finally:
                test.batch_depth -= 1

        self.patch(Wizard, "create", create)
        self.patch(Batch, "_process_lines", process_lines)

    def customise(self, xmlid, subject):
        self.env.ref(xmlid).subject = subject

    def assert_as_typed(self, mails, expected=EVIL):
        self.assertTrue(mails, "an email was queued")
        for mail in mails:
            self.assertIn(expected, mail.subject)
            for rendered in RENDERED:
                self.assertNotIn(rendered, mail.subject)
                self.assertNotIn(rendered, str(mail.body_html))
        self.assertEqual(self.dialogs_made_in_batches, 0)

    def mails_of(self, records):
        return self.env["mail.mail"].search(
            [("model", "=", records._name), ("res_id", "in", records.ids)]
        )

    # ------------------------------------------------------------------
    # Every path that queues an email
    # ------------------------------------------------------------------

    def test_dialog_one_document_name_printed_as_typed(self):
        self.customise(
            "account_document_email.mail_template_invoice",
            "Invoice {{ object.name }} for {{ object.partner_id.name }}",
        )
        invoice = self.init_invoice(
            "out_invoice", partner=self.evil, amounts=[100.0], post=True
        )
        wizard = self.open_wizard(invoice)
        self.assertIn(EVIL, wizard.subject)
        with real_smtp_delivery():
            wizard.action_send()
        self.assert_as_typed(self.mails_of(invoice))
        [received] = self.messages_to("evil@customer.example.com")
        self.assertIn(EVIL, received["message"]["Subject"])

    def test_list_batch_name_printed_as_typed(self):
        self.customise(
            "account_document_email.mail_template_invoice",
            "Invoice {{ object.name }} for {{ object.partner_id.name }}",
        )
        invoices = self.init_invoice(
            "out_invoice", partner=self.evil, amounts=[100.0], post=True
        ) | self.init_invoice(
            "out_invoice", partner=self.evil, amounts=[50.0], post=True
        )
        self.send_in_background(self.open_wizard(invoices))
        mails = self.mails_of(invoices)
        self.assertEqual(len(mails), 2)
        self.assert_as_typed(mails)

    def test_batch_of_one_document_rendered_once(self):
        """The reproduction: a batch of one document (e.g. after printing)
        stored the dialog's rendered text, then rendered it again."""
        self.customise(
            "account_document_email.mail_template_invoice",
            "Invoice for {{ object.partner_id.name }}",
        )
        invoice = self.init_invoice(
            "out_invoice", partner=self.evil, amounts=[100.0], post=True
        )
        self.env["document.email.send"]._queue_documents(invoice)
        self.process_batches()
        self.assert_as_typed(self.mails_of(invoice))

    def test_statement_run_name_printed_as_typed(self):
        company = self.env.company
        company.write({"statement_schedule": "monthly", "statement_month_day": 5})
        company.external_report_layout_id = self.env.ref("web.external_layout_standard")
        self.customise(
            "account_document_email.mail_template_aged_statement",
            "Statement for {{ object.name }}",
        )
        self.create_receivable(self.evil, 1000, 40)
        # the run is a scheduled job: superuser, the worst case
        cron_env = self.env(user=SUPERUSER_ID, su=True)
        statements = cron_env["res.partner"].with_company(company)
        statements._send_due_statements(date(2024, 7, 5))
        self.process_batches()
        mails = self.env["mail.mail"].search([("document_statement_date", "!=", False)])
        self.assertEqual(len(mails), 1)
        self.assert_as_typed(mails, f"Statement for {EVIL}")

    def test_second_request_name_printed_as_typed(self):
        self.customise(
            "account_document_email.mail_template_confirmation_second_request",
            "Second request for {{ object.partner_id.name }}",
        )
        self.create_receivable(self.evil, 700, 10)
        today = fields.Date.context_today(self.evil)
        campaign = self.env["account.confirmation.campaign"].create(
            {
                "name": "Year-end",
                "date_at": DATE_AT,
                "deadline": today + timedelta(days=20),
                "reply_email": "auditor@audit.example.com",
                "second_request_days": 14,
            }
        )
        campaign.action_select_partners()
        campaign.request_ids.filtered(lambda r: r.partner_id != self.evil).unlink()
        auditor = new_test_user(
            self.env,
            "injection_auditor",
            groups="account_document_email.group_confirmation_auditor",
            email="auditor@audit.example.com",
        )
        campaign.with_user(auditor).action_approve()
        campaign.with_user(auditor).action_send()
        self.process_batches()
        # sent once the (test) server took the first request
        self.env["mail.mail"].process_email_queue()
        request = campaign.request_ids
        self.assertEqual(len(request), 1)
        request.sudo().sent_date = today - timedelta(days=14)
        cron_env = self.env(user=SUPERUSER_ID, su=True)
        cron_env["account.confirmation.campaign"]._cron_follow_up()
        self.process_batches()
        second = self.mails_of(request).filtered(
            lambda m: m.subject.startswith("Second request")
        )
        self.assert_as_typed(second, f"Second request for {EVIL}")

    def test_advice_after_printing_name_printed_as_typed(self):
        self.customise(
            "account_document_email.mail_template_payment_advice",
            "Payment advice for {{ object.partner_id.name }}",
        )
        bank = self.company_data["default_journal_bank"]
        check_line = bank.outbound_payment_method_line_ids.filtered(
            lambda line: line.code == "check_printing"
        )
        check_line.payment_account_id = (
            self.outbound_payment_method_line.payment_account_id
        )
        payment = self.env["account.payment"].create(
            {
                "payment_type": "outbound",
                "partner_type": "supplier",
                "partner_id": self.evil.id,
                "amount": 250.0,
                "journal_id": bank.id,
                "payment_method_line_id": check_line.id,
            }
        )
        payment.action_post()
        action = payment.print_checks()
        checks = (
            self.env["print.prenumbered.checks"]
            .with_context(**action["context"])
            .create({"next_check_number": "1", "send_advice_by_email": True})
        )
        printed = {"type": "ir.actions.report", "report_name": "cheque"}
        self.patch(
            self.registry["account.payment"], "do_print_checks", lambda self: printed
        )
        checks.print_checks()
        self.process_batches()
        self.assert_as_typed(self.mails_of(payment), f"Payment advice for {EVIL}")

    # ------------------------------------------------------------------
    # Edited text
    # ------------------------------------------------------------------

    def billing_clerk(self):
        """A billing user who is not a Mail Template Editor (rendering
        restricted, as a careful administrator sets it)."""
        self.env["res.config.settings"].create(
            {"restrict_template_rendering": True}
        ).execute()
        clerk = new_test_user(
            self.env,
            login="billing.clerk",
            groups="base.group_user,account.group_account_invoice",
            company_id=self.env.company.id,
        )
        self.assertFalse(clerk.has_group("mail.group_mail_template_editor"))
        return clerk

    def test_clerk_edited_text_sent_as_typed(self):
        clerk = self.billing_clerk()
        invoice = self.init_invoice(
            "out_invoice", partner=self.partner_a, amounts=[100.0], post=True
        )
        wizard = self.open_wizard(invoice.with_user(clerk))
        # rendered, 'XQ' * 3 would read XQXQXQ: found in no token nor amount
        typed_subject = "Total {{ object.amount_total }} {{ 'XQ' * 3 }}"
        wizard.write(
            {
                "subject": typed_subject,
                "body": "<p>Dear {{ object.partner_id.name }}: {{ 'XQ' * 3 }}</p>",
            }
        )
        with real_smtp_delivery():
            wizard.action_send()
        mail = self.mails_of(invoice)
        self.assertEqual(mail.subject, typed_subject)
        self.assertIn("{{ 'XQ' * 3 }}", str(mail.body_html).replace("&#39;", "'"))
        self.assertNotIn("XQXQXQ", str(mail.body_html))
        self.assertNotIn("100.0", mail.subject)

    def test_clerk_text_written_on_a_batch_dialog_is_never_rendered(self):
        """Several documents: the dialog shows a preview; text written on it
        anyway (e.g. by RPC) is ignored, each document gets its template."""
        clerk = self.billing_clerk()
        invoices = self.init_invoice(
            "out_invoice", partner=self.partner_a, amounts=[100.0], post=True
        ) | self.init_invoice(
            "out_invoice", partner=self.partner_b, amounts=[50.0], post=True
        )
        wizard = self.open_wizard(invoices.with_user(clerk))
        self.assertFalse(wizard.can_edit_body)
        self.assertIn(invoices[0].name, wizard.subject, "a preview on the first")
        self.assertIn(invoices[0].name, wizard.preview_label)
        wizard.write({"subject": "{{ 'XQ' * 3 }}", "body": "<p>{{ 'XQ' * 3 }}</p>"})
        self.send_in_background(wizard)
        mails = self.mails_of(invoices)
        self.assertEqual(len(mails), 2)
        for invoice in invoices:
            mail = mails.filtered(lambda m, invoice=invoice: m.res_id == invoice.id)
            self.assertIn(invoice.name, mail.subject)
            self.assertNotIn("XQXQXQ", mail.subject + str(mail.body_html))
            self.assertNotIn("{{", mail.subject + str(mail.body_html))
            self.assertIn(invoice.name, str(mail.body_html), "the template's body")

    def test_batch_named_after_what_was_sent(self):
        invoices = self.init_invoice(
            "out_invoice", partner=self.partner_a, amounts=[100.0], post=True
        ) | self.init_invoice(
            "out_invoice", partner=self.partner_b, amounts=[50.0], post=True
        )
        batch = self.send_in_background(self.open_wizard(invoices))
        self.assertEqual(batch.name, "2 invoices")
        refund = self.init_invoice(
            "out_refund", partner=self.partner_a, amounts=[10.0], post=True
        )
        invoice = self.init_invoice(
            "out_invoice", partner=self.partner_b, amounts=[20.0], post=True
        )
        batch = self.send_in_background(self.open_wizard(refund | invoice))
        self.assertEqual(batch.name, "2 documents")

    # ------------------------------------------------------------------
    # Nothing confidential on the partner's chatter
    # ------------------------------------------------------------------

    def test_statement_kept_off_the_partner(self):
        company = self.env.company
        company.write({"statement_schedule": "monthly", "statement_month_day": 5})
        company.external_report_layout_id = self.env.ref("web.external_layout_standard")
        customer = self.create_customer(
            "Shared Ltd", email="shared@customer.example.com"
        )
        self.assertFalse(customer.company_id, "shared by every company")
        self.create_receivable(customer, 1234.56, 40)
        self.env["res.partner"]._send_due_statements(date(2024, 7, 5))
        self.process_batches()
        [mail] = self.statement_mails(customer)
        [log] = self.env["document.email.statement"].browse(mail.res_id)
        self.assertEqual(log.partner_id, customer)
        self.assertTrue(mail.attachment_ids, "the statement's PDF")
        self.assertEqual(set(mail.attachment_ids.mapped("res_model")), {log._name})
        other_company = self.setup_other_company()["company"]
        employee = new_test_user(
            self.env, login="plain.employee", groups="base.group_user"
        )
        other_billing = new_test_user(
            self.env,
            login="other.billing",
            groups="base.group_user,account.group_account_invoice",
            company_id=other_company.id,
            company_ids=[Command.set(other_company.ids)],
        )
        billing = new_test_user(
            self.env,
            login="own.billing",
            groups="base.group_user,account.group_account_invoice",
            company_id=company.id,
        )
        for user in (employee, other_billing):
            with self.subTest(user=user.login):
                partner = customer.with_user(user)
                messages = partner.message_ids
                self.assertTrue(messages, "the partner's chatter is readable")
                notes = " ".join(messages.mapped("body"))
                self.assertIn(
                    f'data-oe-model="document.email.statement" data-oe-id="{log.id}"',
                    notes.replace("'", '"'),
                    "a link to the statement record",
                )
                for message in messages:
                    self.assertNotIn("1,234.56", str(message.body))
                    self.assertFalse(message.attachment_ids)
                self.assertFalse(
                    self.env["ir.attachment"]
                    .with_user(user)
                    .search(
                        [
                            ("res_model", "=", "res.partner"),
                            ("res_id", "=", customer.id),
                        ]
                    )
                )
                with self.assertRaises(AccessError):
                    log.with_user(user).read(["name"])
                with self.assertRaises(AccessError):
                    mail.attachment_ids.with_user(user).read(["datas"])
        own = log.with_user(billing)
        self.assertEqual(own.partner_id, customer)
        self.assertTrue(own.message_ids.attachment_ids, "billing users read the PDF")

    # ------------------------------------------------------------------
    # Choices a client could forge
    # ------------------------------------------------------------------

    def test_template_or_pdf_of_another_model_refused(self):
        invoice = self.init_invoice(
            "out_invoice", partner=self.partner_a, amounts=[100.0], post=True
        )
        statement_template = self.env.ref(
            "account_document_email.mail_template_aged_statement"
        )
        statement_pdf = self.env.ref(
            "account_document_email.action_report_aged_statement"
        )
        for values in (
            {"template_id": statement_template.id},
            {"report_id": statement_pdf.id},
        ):
            with self.subTest(values=values):
                wizard = self.open_wizard(invoice)
                # refused as soon as chosen (nothing rendered), or when sent
                with self.assertRaisesRegex(UserError, "not for these documents"):
                    wizard.write(values)
                    wizard.action_send()
        self.assertFalse(self.mails_of(invoice), "nothing queued")

    def test_server_context_keys_of_a_request_ignored(self):
        """A client planting a statement run's keys in its context neither
        tags the emails (which would move customers' statement dates) nor
        reaches the batch's rendering."""
        self.create_receivable(self.partner_a, 100, 10)
        self.create_receivable(self.partner_b, 200, 10)
        partners = self.partner_a | self.partner_b
        planted = {
            "document_statement_run": True,
            "document_statement_date": "2099-01-05",
            "active_test": False,
        }
        aged = self.env["account.aged.receivable.wizard"].create(
            {"date_at": DATE_AT, "send_by_email": True, "partner_ids": partners.ids}
        )
        action = aged.action_statement()
        wizard = (
            self.env["document.email.wizard"]
            .with_context(**action["context"], **planted)
            .create({})
        )
        batch = self.send_in_background(wizard.with_context(**planted))
        self.assertFalse(set(planted) & set(batch.options))
        self.assertEqual(batch.options["aged_date_at"], str(DATE_AT))
        mails = self.statement_mails(partners)
        self.assertEqual(len(mails), 2)
        self.assertFalse(any(mails.mapped("document_statement_date")))
        # one document, sent at once: not tagged either
        single = (
            self.env["document.email.wizard"]
            .with_context(**dict(action["context"], active_ids=self.partner_a.ids))
            .with_context(**planted)
            .create({"duplicate_confirmed": True})
        )
        single.with_context(**planted).action_send()
        self.assertFalse(
            any(self.statement_mails(partners).mapped("document_statement_date"))
        )

    def test_no_pdf_chosen_for_several_documents(self):
        invoices = self.init_invoice(
            "out_invoice", partner=self.partner_a, amounts=[100.0], post=True
        ) | self.init_invoice(
            "out_invoice", partner=self.partner_b, amounts=[50.0], post=True
        )
        wizard = self.open_wizard(invoices)
        self.assertTrue(wizard.report_id)
        wizard.report_id = False
        self.send_in_background(wizard)
        mails = self.mails_of(invoices)
        self.assertEqual(len(mails), 2)
        self.assertFalse(mails.attachment_ids, "no PDF, as chosen")

    def test_letter_from_the_dialog_kept_off_the_partner(self):
        self.create_receivable(self.partner_b, 777.77, 10)
        aged = self.env["account.aged.receivable.wizard"].create(
            {
                "date_at": DATE_AT,
                "send_by_email": True,
                "partner_ids": self.partner_b.ids,
            }
        )
        action = aged.action_letter()
        wizard = (
            self.env["document.email.wizard"]
            .with_context(**action["context"])
            .create({})
        )
        self.assertTrue(wizard.attachment_ids, "the letter rendered in the dialog")
        wizard.action_send()
        [mail] = self.statement_mails(self.partner_b)
        log = self.env["document.email.statement"].browse(mail.res_id)
        self.assertEqual(
            (log.document, log.company_id, log.date_at),
            ("letter", self.env.company, DATE_AT),
        )
        self.assertEqual(set(mail.attachment_ids.mapped("res_model")), {log._name})
        self.assertIn("777.77", str(mail.body_html))
        for message in self.partner_b.message_ids:
            self.assertNotIn("777.77", str(message.body))
            self.assertFalse(message.attachment_ids)
