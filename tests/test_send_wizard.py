import hashlib
from email.utils import getaddresses

from odoo import Command
from odoo.exceptions import AccessError, UserError
from odoo.tests import tagged

from .common import SMTPTestServer, free_port, pdf_parts, real_smtp_delivery
from .document_common import DocumentEmailCase


@tagged("post_install", "-at_install")
class TestSendWizard(DocumentEmailCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.invoice = cls.init_invoice(
            "out_invoice", partner=cls.partner_a, amounts=[100.0], post=True
        )

    # -- prefill ----------------------------------------------------------

    def test_prefill_invoice(self):
        wizard = self.open_wizard(self.invoice)
        self.assertEqual(wizard.partner_ids, self.partner_a)
        self.assertIn(self.invoice.name, wizard.subject)
        self.assertIn(self.invoice.name, wizard.body)
        self.assertEqual(
            wizard.template_id,
            self.env.ref("account_document_email.mail_template_invoice"),
        )
        self.assertEqual(wizard.report_id, self.env.ref("account.account_invoices"))
        # the official PDF is listed, made when sent as core's Send makes it
        self.assertFalse(wizard.attachment_ids)
        self.assertEqual(
            wizard.document_files, self.invoice.name.replace("/", "_") + ".pdf"
        )
        self.assertFalse(self.invoice.invoice_pdf_report_id)

    def test_prefill_in_partner_language(self):
        self.env["res.lang"]._activate_lang("es_ES")
        template = self.env.ref("account_document_email.mail_template_invoice")
        template.with_context(lang="es_ES").subject = "Factura {{ object.name }}"
        self.partner_a.lang = "es_ES"
        wizard = self.open_wizard(self.invoice)
        self.assertEqual(wizard.subject, f"Factura {self.invoice.name}")

    def test_partner_without_email_typed_by_hand(self):
        invoice = self.init_invoice(
            "out_invoice", partner=self.partner_no_email, amounts=[50.0], post=True
        )
        wizard = self.open_wizard(invoice)
        self.assertFalse(wizard.partner_ids)
        with self.assertRaisesRegex(UserError, "Add at least one recipient"):
            wizard.action_send()
        self.assertFalse(
            self.env["mail.mail"].search(
                [("res_id", "=", invoice.id), ("model", "=", "account.move")]
            )
        )
        # typed in the To field: Odoo's many2many_tags_email creates the contact
        partner_id, _name = self.env["res.partner"].name_create(
            "typed@customer.example.com"
        )
        wizard.partner_ids = [Command.link(partner_id)]
        with real_smtp_delivery():
            result = wizard.action_send()
        self.assertEqual(result["params"]["type"], "success")
        self.assertEqual(len(self.messages_to("typed@customer.example.com")), 1)

    # -- delivery -----------------------------------------------------------

    def test_send_invoice_delivered_with_pdf_cc_bcc_and_chatter(self):
        wizard = self.open_wizard(
            self.invoice,
            email_cc="accountant@customer.example.com",
            email_bcc="archive@company.example.com",
        )
        with real_smtp_delivery():
            result = wizard.action_send()
        self.assertEqual(
            result["params"]["type"], "success", result["params"]["message"]
        )
        self.assertIn(self.invoice.name, result["params"]["message"])
        received = self.received()
        self.assertEqual(len(received), 1)
        envelope, message = received[0], received[0]["message"]
        self.assertEqual(
            sorted(envelope["rcpt_tos"]),
            [
                "accountant@customer.example.com",
                "archive@company.example.com",
                "partner.a@customer.example.com",
            ],
        )
        self.assertIn("partner.a@customer.example.com", message["To"])
        self.assertIn("accountant@customer.example.com", message["Cc"])
        self.assertIsNone(message["Bcc"])
        self.assertNotIn("archive@company.example.com", message.as_string())
        self.assertIn(self.invoice.name, message["Subject"])
        # From: the salesperson's name with the address the server sends as
        # (its from_filter, the company email here); Reply-To: the salesperson
        salesperson = self.invoice.invoice_user_id
        self.assertEqual(
            getaddresses([str(message["From"])]),
            [(salesperson.name, "billing@company.example.com")],
        )
        self.assertIn(salesperson.email, message["Reply-To"])
        [(filename, content)] = pdf_parts(message)
        self.assertEqual(filename, self.invoice.name.replace("/", "_") + ".pdf")
        self.assert_pdf(content)
        # chatter: the sent message with its attachment, author and status
        chatter = self.invoice.message_ids.filtered(
            lambda m: m.message_type == "comment"
        )[:1]
        self.assertIn(self.invoice.name, chatter.subject)
        self.assertEqual(chatter.author_id, self.env.user.partner_id)
        self.assertEqual(chatter.attachment_ids.name, filename)
        self.assertEqual(chatter.attachment_ids.res_id, self.invoice.id)
        self.assertEqual(chatter.notification_ids.res_partner_id, self.partner_a)
        self.assertEqual(chatter.notification_ids.notification_status, "sent")
        mail = self.env["mail.mail"].search([("mail_message_id", "=", chatter.id)])
        self.assertEqual(mail.state, "sent")

    def test_send_now_with_a_long_cc_list_sends_once(self):
        """The send-now mark's key is a digest of the document and its
        recipients: a Cc list of thousands of characters (not compressible
        into the unique index's row) sends the email, once."""
        cc = [
            f"{hashlib.sha1(str(index).encode()).hexdigest()[:24]}@cc.example"
            for index in range(300)
        ]
        self.assertGreater(len(", ".join(cc)), 3000)
        wizard = self.open_wizard(self.invoice, email_cc=", ".join(cc))
        with real_smtp_delivery():
            result = wizard.action_send()
        self.assertEqual(
            result["params"]["type"], "success", result["params"]["message"]
        )
        received = self.received()
        self.assertEqual(len(received), 1, "sent once")
        self.assertEqual(len(received[0]["rcpt_tos"]), 301)
        mark = self.env["document.mail.send.mark"].sudo().search([], order="id desc")
        self.assertEqual(len(mark[:1].key), 64)

    def test_send_now_wakes_no_delivery_worker(self):
        """An email sent at once wakes no delivery worker: no trigger of the
        delivery cron, and so no queue_job delivery job either (both are
        decided by mail.mail._document_wake_workers at its creation)."""
        cron = self.env.ref("account_document_email.ir_cron_document_email_deliver")
        Trigger = self.env["ir.cron.trigger"].sudo()
        before = Trigger.search([("cron_id", "=", cron.id)])
        with real_smtp_delivery():
            self.open_wizard(self.invoice).action_send()
        mail = self.env["mail.mail"].search(
            [("model", "=", "account.move"), ("res_id", "=", self.invoice.id)]
        )
        self.assertEqual(mail.state, "sent")
        self.assertEqual(len(self.received()), 1)
        self.assertEqual(Trigger.search([("cron_id", "=", cron.id)]), before)

    def test_send_goes_through_company_server(self):
        server = self.env.company.document_mail_server_id
        wizard = self.open_wizard(self.invoice)
        with real_smtp_delivery():
            wizard.action_send()
        mail = self.env["mail.mail"].search(
            [("model", "=", "account.move"), ("res_id", "=", self.invoice.id)]
        )
        self.assertEqual(mail.mail_server_id, server)
        self.assertEqual(server.smtp_port, self.smtp.port)

    def test_credit_note(self):
        refund = self.init_invoice(
            "out_refund", partner=self.partner_b, amounts=[30.0], post=True
        )
        wizard = self.open_wizard(refund)
        self.assertEqual(
            wizard.template_id,
            self.env.ref("account_document_email.mail_template_credit_note"),
        )
        self.assertTrue(wizard.subject.startswith("Credit note"))
        with real_smtp_delivery():
            wizard.action_send()
        [received] = self.messages_to("partner.b@customer.example.com")
        self.assertIn(refund.name, received["message"]["Subject"])
        self.assert_pdf(pdf_parts(received["message"])[0][1])

    def test_debit_note(self):
        debit_wizard = (
            self.env["account.debit.note"]
            .with_context(active_model="account.move", active_ids=self.invoice.ids)
            .create({"reason": "Extra freight"})
        )
        debit = self.env["account.move"].browse(debit_wizard.create_debit()["res_id"])
        debit.invoice_line_ids = [
            Command.create({"name": "Freight", "price_unit": 20.0, "quantity": 1})
        ]
        debit.action_post()
        wizard = self.open_wizard(debit)
        self.assertEqual(
            wizard.template_id,
            self.env.ref("account_document_email.mail_template_debit_note"),
        )
        self.assertIn("Debit note", wizard.subject)
        self.assertIn(self.invoice.name, wizard.body, "names the debited invoice")
        with real_smtp_delivery():
            wizard.action_send()
        [received] = self.messages_to("partner.a@customer.example.com")
        self.assertIn(debit.name, received["message"]["Subject"])

    def test_journal_entry_voucher(self):
        entry = self.env["account.move"].create(
            {
                "move_type": "entry",
                "ref": "Accrual",
                "line_ids": [
                    Command.create(
                        {
                            "account_id": self.company_data[
                                "default_account_revenue"
                            ].id,
                            "partner_id": self.partner_a.id,
                            "debit": 80.0,
                            "name": "Accrual debit",
                        }
                    ),
                    Command.create(
                        {
                            "account_id": self.company_data[
                                "default_account_expense"
                            ].id,
                            "credit": 80.0,
                            "name": "Accrual credit",
                        }
                    ),
                ],
            }
        )
        entry.action_post()
        wizard = self.open_wizard(entry)
        self.assertEqual(wizard.partner_ids, self.partner_a)
        self.assertEqual(
            wizard.report_id,
            self.env.ref("account_document_email.action_report_journal_entry"),
        )
        self.assertIn("Journal entry", wizard.subject)
        from .common import pdf_text

        text = pdf_text(wizard.attachment_ids.raw)
        for expected in (
            entry.name,
            "Accrual debit",
            self.company_data["default_account_revenue"].code,
            "80.00",
        ):
            self.assertIn(expected, text)
        with real_smtp_delivery():
            wizard.action_send()
        self.assertEqual(len(self.messages_to("partner.a@customer.example.com")), 1)

    def test_sale_order(self):
        order = self.env["sale.order"].create(
            {
                "partner_id": self.partner_b.id,
                "order_line": [
                    Command.create(
                        {"product_id": self.product_a.id, "product_uom_qty": 2}
                    )
                ],
            }
        )
        wizard = self.open_wizard(order)
        self.assertEqual(wizard.partner_ids, self.partner_b)
        self.assertEqual(
            wizard.subject, f"Quotation {order.name} from {order.company_id.name}"
        )
        self.assertEqual(wizard.report_id, self.env.ref("sale.action_report_saleorder"))
        self.assertEqual(wizard.attachment_ids.name, f"Quotation - {order.name}.pdf")
        with real_smtp_delivery():
            wizard.action_send()
        [received] = self.messages_to("partner.b@customer.example.com")
        self.assert_pdf(pdf_parts(received["message"])[0][1])
        order.action_confirm()
        self.assertTrue(self.open_wizard(order).subject.startswith("Sales Order"))

    # -- batch --------------------------------------------------------------

    def test_batch_one_email_per_document_one_skipped(self):
        invoice_b = self.init_invoice(
            "out_invoice", partner=self.partner_b, amounts=[200.0], post=True
        )
        refund_a = self.init_invoice(
            "out_refund", partner=self.partner_a, amounts=[10.0], post=True
        )
        lonely = self.init_invoice(
            "out_invoice", partner=self.partner_no_email, amounts=[5.0], post=True
        )
        documents = self.invoice | invoice_b | refund_a | lonely
        wizard = self.open_wizard(documents)
        self.assertEqual(wizard.document_count, 4)
        self.assertFalse(wizard.partner_ids)
        self.assertFalse(
            wizard.attachment_ids, "each document's PDF is rendered when sending"
        )
        action = wizard.action_send()
        self.assertEqual(action["res_model"], "document.email.batch")
        batch = self.env["document.email.batch"].browse(action["res_id"])
        mails = self.env["mail.mail"].search(
            [("model", "=", "account.move"), ("res_id", "in", documents.ids)]
        )
        self.assertFalse(mails, "nothing rendered in the request")
        self.assertEqual((batch.total_count, batch.pending_count), (4, 4))
        self.assertEqual(batch.state, "processing")
        self.process_batches()
        batch.invalidate_recordset()
        self.assertEqual(batch.state, "done")
        self.assertEqual(
            (batch.rendered_count, batch.queued_count, batch.skipped_count), (3, 3, 1)
        )
        skipped = batch.line_ids.filtered(lambda line: line.state == "skipped")
        self.assertEqual(skipped.res_id, lonely.id)
        self.assertEqual(skipped.document_name, lonely.display_name)
        self.assertEqual(skipped.failure_reason, "no recipient with an email address")
        mails = self.env["mail.mail"].search(
            [("model", "=", "account.move"), ("res_id", "in", documents.ids)]
        )
        self.assertEqual(len(mails), 3)
        self.assertEqual(batch.line_ids.mail_id, mails)
        self.assertEqual(
            set(mails.mapped("state")), {"outgoing"}, "queued, not sent in the request"
        )
        with real_smtp_delivery():
            self.env["mail.mail"].process_email_queue()
        self.assertEqual(set(mails.mapped("state")), {"sent"})
        batch.invalidate_recordset()  # as the form reloads it
        self.assertEqual((batch.sent_count, batch.failed_count), (3, 0))
        for document, address in (
            (self.invoice, "partner.a"),
            (invoice_b, "partner.b"),
            (refund_a, "partner.a"),
        ):
            received = [
                m
                for m in self.messages_to(f"{address}@customer.example.com")
                if f" {document.name} " in m["message"]["Subject"]
            ]
            self.assertEqual(len(received), 1, document.name)
            [(filename, content)] = pdf_parts(received[0]["message"])
            self.assertEqual(filename, document.name.replace("/", "_") + ".pdf")
            self.assert_pdf(content)
        refund_mail = mails.filtered(lambda m: m.res_id == refund_a.id)
        self.assertTrue(
            refund_mail.subject.startswith("Credit note"),
            "each document's own template",
        )
        self.assertEqual(len(self.received()), 3)

    def test_batch_rendered_in_several_calls_each_its_own_pdf(self):
        """Batches of PDF_BATCH_SIZE documents per wkhtmltopdf call: every
        email still carries its own document's PDF."""
        self.env["ir.config_parameter"].set_param(
            "account_document_email.pdf_batch_size", 1
        )
        invoice_b = self.init_invoice(
            "out_invoice", partner=self.partner_b, amounts=[200.0], post=True
        )
        documents = self.invoice | invoice_b
        pdfs = self.env["document.email.send"]._render_pdfs(
            self.env.ref("account.account_invoices"), documents
        )
        from .common import pdf_text

        for document in documents:
            name, content = pdfs[document.id]
            self.assertEqual(name, document.name.replace("/", "_") + ".pdf")
            text = pdf_text(content)
            self.assertIn(document.name, text)
            other = (documents - document).name
            self.assertNotIn(other, text)

    # -- bad input ------------------------------------------------------------

    def test_header_injection_never_adds_recipient(self):
        evil = self.env["res.partner"].create(
            {
                "name": "Evil\r\nBcc: attacker@evil.example.com",
                "email": "evil.partner@customer.example.com",
            }
        )
        invoice = self.init_invoice(
            "out_invoice", partner=evil, amounts=[10.0], post=True
        )
        invoice.ref = "REF\r\nBcc: attacker2@evil.example.com"
        self.env.ref(
            "account_document_email.mail_template_invoice"
        ).subject = "Invoice {{ object.name }} {{ object.ref }}"
        wizard = self.open_wizard(invoice)
        self.assertNotIn("\n", wizard.subject)
        with real_smtp_delivery():
            wizard.action_send()
        [received] = self.received()
        self.assertEqual(received["rcpt_tos"], ["evil.partner@customer.example.com"])
        self.assertNotIn("attacker", " ".join(received["rcpt_tos"]))
        self.assertIsNone(received["message"]["Bcc"])

    def test_bad_input_refused_before_anything_is_created(self):
        cases = [
            (
                {"subject": "Hello\r\nBcc: attacker@evil.example.com"},
                "subject must be on one line",
            ),
            ({"email_cc": "not-an-address"}, "not a valid email address"),
            (
                {"email_bcc": "x@y.example.com\nBcc: attacker@evil.example.com"},
                "must be on one line",
            ),
            ({"partner_ids": [Command.set([])]}, "Add at least one recipient"),
        ]
        for values, message in cases:
            with self.subTest(values=values):
                wizard = self.open_wizard(self.invoice)
                wizard.write(values)
                with self.assertRaisesRegex(UserError, message):
                    wizard.action_send()
        bad_email = self.env["res.partner"].create(
            {"name": "Bad", "email": "bad@@example"}
        )
        wizard = self.open_wizard(
            self.invoice, partner_ids=[Command.set(bad_email.ids)]
        )
        with self.assertRaisesRegex(UserError, "no valid email address: Bad"):
            wizard.action_send()
        self.assertFalse(
            self.env["mail.mail"].search(
                [("model", "=", "account.move"), ("res_id", "=", self.invoice.id)]
            )
        )

    # -- failures -------------------------------------------------------------

    def test_smtp_down_mail_kept_and_retry_delivers_once(self):
        closed_port = free_port()
        self.env.company.document_smtp_port = closed_port
        wizard = self.open_wizard(self.invoice)
        with real_smtp_delivery():
            result = wizard.action_send()
        self.assertEqual(result["params"]["type"], "danger")
        self.assertIn("could not be sent", result["params"]["message"])
        self.assertIn("retried", result["params"]["message"])
        self.assertEqual(self.invoice.state, "posted")
        mail = self.env["mail.mail"].search(
            [("model", "=", "account.move"), ("res_id", "=", self.invoice.id)]
        )
        self.assertEqual(mail.state, "exception")
        self.assertIn("Nothing answers on", mail.failure_reason)
        self.assertNotIn("127.0.0.1", mail.failure_reason, "host for admins only")
        self.assertIn("connection refused", mail.failure_reason)
        self.assertEqual(mail.notification_ids.notification_status, "exception")
        # the server comes back: retry delivers exactly once
        with SMTPTestServer() as server:
            self.env.company.document_smtp_port = server.port
            mail.action_retry()
            with real_smtp_delivery():
                self.env["mail.mail"].process_email_queue()
                self.env["mail.mail"].process_email_queue()
            self.assertEqual(mail.state, "sent")
            self.assertEqual(len(server.messages), 1)
            self.assertEqual(mail.notification_ids.notification_status, "sent")

    # -- access -----------------------------------------------------------------

    def test_other_company_document_refused(self):
        other = self.setup_other_company(name="Other Company")
        foreign = self.init_invoice(
            "out_invoice",
            partner=self.partner_a,
            amounts=[10.0],
            post=True,
            company=other["company"],
        )
        user = self.env["res.users"].create(
            {
                "name": "Billing clerk",
                "login": "billing.clerk",
                "email": "clerk@company.example.com",
                "company_id": self.env.company.id,
                "company_ids": [Command.set(self.env.company.ids)],
                "groups_id": [
                    Command.set(self.env.ref("account.group_account_invoice").ids)
                ],
            }
        )
        before = self.env["document.email.wizard"].search_count([])
        with self.assertRaises(AccessError):
            self.env["document.email.wizard"].with_user(user).with_context(
                active_model="account.move", active_ids=foreign.ids
            ).create({})
        self.assertEqual(self.env["document.email.wizard"].search_count([]), before)
        # the same clerk sends their own company's invoice
        wizard = (
            self.env["document.email.wizard"]
            .with_user(user)
            .with_context(active_model="account.move", active_ids=self.invoice.ids)
            .create({})
        )
        self.assertEqual(wizard.partner_ids, self.partner_a)

    def test_action_from_document_and_bindings(self):
        action = self.invoice.action_send_document_email()
        self.assertEqual(action["res_model"], "document.email.wizard")
        self.assertEqual(action["context"]["active_ids"], self.invoice.ids)
        bound = self.env["ir.actions.server"].search(
            [
                ("binding_model_id.model", "=", "account.move"),
                ("name", "=", "Send by email"),
            ]
        )
        self.assertEqual(set(bound.mapped("binding_type")), {"action", "report"})
        result = (
            bound[0]
            .with_context(active_model="account.move", active_ids=self.invoice.ids)
            .run()
        )
        self.assertEqual(result["res_model"], "document.email.wizard")
