from odoo.exceptions import UserError
from odoo.tests import tagged

from .common import pdf_parts, pdf_text, real_smtp_delivery
from .document_common import DocumentEmailCase


@tagged("post_install", "-at_install")
class TestPaymentEmail(DocumentEmailCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        bank = cls.company_data["default_journal_bank"]
        cls.check_method_line = bank.outbound_payment_method_line_ids.filtered(
            lambda line: line.code == "check_printing"
        )
        cls.check_method_line.payment_account_id = (
            cls.outbound_payment_method_line.payment_account_id
        )

    def register_payment(self, documents, **values):
        """The Register Payment dialog on documents: (wizard, its action)."""
        wizard = (
            self.env["account.payment.register"]
            .with_context(active_model="account.move", active_ids=documents.ids)
            .create(values)
        )
        return wizard, wizard.action_create_payments()

    def pay(self, document, **values):
        self.register_payment(document, **values)
        return document.matched_payment_ids

    def new_payments(self, before):
        return self.env["account.payment"].search([("id", ">", before)])

    def last_payment_id(self):
        return self.env["account.payment"].search([], order="id desc", limit=1).id or 0

    # -- receipt ------------------------------------------------------------

    def test_customer_receipt_delivered(self):
        invoice = self.init_invoice(
            "out_invoice", partner=self.partner_a, amounts=[100.0], post=True
        )
        payment = self.pay(invoice)
        self.assertEqual(payment.payment_type, "inbound")
        wizard = self.open_wizard(payment)
        self.assertEqual(wizard.partner_ids, self.partner_a)
        self.assertEqual(
            wizard.template_id,
            self.env.ref("account_document_email.mail_template_payment_receipt"),
        )
        self.assertEqual(
            wizard.report_id, self.env.ref("account.action_report_payment_receipt")
        )
        self.assertIn(f"Payment receipt {payment.name}", wizard.subject)
        with real_smtp_delivery():
            result = wizard.action_send()
        self.assertEqual(
            result["params"]["type"], "success", result["params"]["message"]
        )
        [received] = self.messages_to("partner.a@customer.example.com")
        self.assertIn(payment.name, received["message"]["Subject"])
        [(_filename, content)] = pdf_parts(received["message"])
        self.assert_pdf(content)
        text = pdf_text(content)
        self.assertIn("Payment Receipt", text)
        self.assertIn(payment.name, text)
        self.assertIn(invoice.name, text)

    # -- payment advice and cheques ----------------------------------------

    def vendor_bill(self, partner, amount):
        return self.init_invoice(
            "in_invoice", partner=partner, amounts=[amount], post=True
        )

    def cheque_for(self, bill):
        """A vendor cheque matched with the bill, not printed yet (in Community a
        payment registered from a fully paid bill is already "paid" and its
        cheque can no longer be printed)."""
        payment = self.env["account.payment"].create(
            {
                "payment_type": "outbound",
                "partner_type": "supplier",
                "partner_id": bill.partner_id.id,
                "amount": bill.amount_total,
                "journal_id": self.company_data["default_journal_bank"].id,
                "payment_method_line_id": self.check_method_line.id,
            }
        )
        payment.action_post()
        payable = payment.move_id.line_ids.filtered(
            lambda line: line.account_id.account_type == "liability_payable"
        )
        bill.js_assign_outstanding_line(payable.id)
        self.assertEqual(bill.payment_state, "paid")
        self.assertEqual(payment.state, "in_process")
        return payment

    def test_vendor_advice_with_cheque_printed_and_emailed(self):
        bill = self.vendor_bill(self.partner_b, 250.0)
        bill.ref = "VENDOR-REF-77"
        payment = self.cheque_for(bill)
        self.assertEqual(payment.reconciled_bill_ids, bill)
        action = payment.print_checks()
        self.assertEqual(action["res_model"], "print.prenumbered.checks")
        checks = (
            self.env["print.prenumbered.checks"]
            .with_context(**action["context"])
            .create({"next_check_number": "004217", "send_advice_by_email": True})
        )
        # no cheque layout in Community: stand in for the printing itself
        printed = {"type": "ir.actions.report", "report_name": "cheque"}
        self.patch(
            self.registry["account.payment"], "do_print_checks", lambda self: printed
        )
        result = checks.print_checks()
        self.assertEqual(result["report_name"], "cheque", "the cheques still print")
        self.assertEqual(payment.check_number, "004217")
        domain = [("model", "=", "account.payment"), ("res_id", "=", payment.id)]
        self.assertFalse(self.env["mail.mail"].search(domain), "in the background")
        batch = self.env["document.email.batch"].search([], limit=1)
        self.assertEqual(batch.line_ids.res_id, payment.id)
        self.process_batches()
        mail = self.env["mail.mail"].search(domain)
        self.assertEqual(mail.state, "outgoing", "queued by the batch job")
        with real_smtp_delivery():
            self.env["mail.mail"].process_email_queue()
        self.assertEqual(mail.state, "sent")
        [received] = self.messages_to("partner.b@customer.example.com")
        self.assertIn(f"Payment advice {payment.name}", received["message"]["Subject"])
        [(filename, content)] = pdf_parts(received["message"])
        self.assertEqual(
            filename, f"Payment Advice - {payment.name}.pdf".replace("/", "_")
        )
        text = pdf_text(content)
        for expected in (
            "Payment Advice",
            payment.name,
            "004217",
            self.check_method_line.name,
            bill.name,
            "VENDOR-REF-77",
            " ".join(payment.currency_id.amount_to_text(250.0).split()),
        ):
            self.assertIn(expected, text)
        self.assertEqual(self.received()[0]["rcpt_tos"], [self.partner_b.email])

    def test_cheque_printed_without_email(self):
        payment = self.cheque_for(self.vendor_bill(self.partner_b, 40.0))
        self.patch(
            self.registry["account.payment"],
            "do_print_checks",
            lambda self: {"type": "ir.actions.report"},
        )
        self.env["print.prenumbered.checks"].with_context(
            payment_ids=payment.ids
        ).create({"next_check_number": "77"}).print_checks()
        self.assertEqual(payment.check_number, "77")
        self.assertFalse(
            self.env["mail.mail"].search(
                [("model", "=", "account.payment"), ("res_id", "=", payment.id)]
            )
        )

    def test_advice_lists_each_bill_with_the_amount_paid(self):
        bill_1 = self.vendor_bill(self.partner_b, 300.0)
        bill_2 = self.vendor_bill(self.partner_b, 120.0)
        _wizard, _action = self.register_payment(
            bill_1 | bill_2,
            group_payment=True,
            amount=350.0,
            payment_difference_handling="open",
        )
        payment = bill_1.matched_payment_ids
        self.assertEqual(payment, bill_2.matched_payment_ids)
        lines = dict(payment._get_payment_advice_lines())
        self.assertEqual(set(lines), {bill_1, bill_2})
        self.assertAlmostEqual(sum(lines.values()), 350.0)
        wizard = self.open_wizard(payment)
        self.assertEqual(
            wizard.report_id,
            self.env.ref("account_document_email.action_report_payment_advice"),
        )
        text = pdf_text(wizard.attachment_ids.raw)
        self.assertIn(bill_1.name, text)
        self.assertIn(bill_2.name, text)
        self.assertNotIn("Cheque Number", text, "not paid by cheque")

    # -- register payment: send after save ---------------------------------

    def test_register_payment_opens_wizard_on_exactly_new_payments(self):
        invoice_a = self.init_invoice(
            "out_invoice", partner=self.partner_a, amounts=[100.0], post=True
        )
        invoice_b = self.init_invoice(
            "out_invoice", partner=self.partner_b, amounts=[60.0], post=True
        )
        self.pay(
            self.init_invoice(
                "out_invoice", partner=self.partner_a, amounts=[5.0], post=True
            )
        )
        before = self.last_payment_id()
        _wizard, action = self.register_payment(
            invoice_a | invoice_b, group_payment=False, send_receipt_by_email=True
        )
        # one per invoice, two for partner_b's invoice (30% / 70% payment terms)
        payments = self.new_payments(before)
        self.assertEqual(len(payments), 3, payments.mapped("display_name"))
        self.assertEqual(payments.partner_id, self.partner_a | self.partner_b)
        self.assertEqual(action["res_model"], "document.email.wizard")
        self.assertEqual(action["target"], "new")
        self.assertEqual(action["context"]["active_model"], "account.payment")
        self.assertEqual(sorted(action["context"]["active_ids"]), sorted(payments.ids))
        states = payments.mapped("state")
        # the user cancels the email dialog: the wizard goes, the payments stay
        email_wizard = (
            self.env["document.email.wizard"]
            .with_context(**action["context"])
            .create({})
        )
        self.assertEqual(self.wizard_documents(email_wizard), payments)
        # cancel just leaves the wizard to the transient vacuum, which unlinks it
        email_wizard.sudo().unlink()
        self.assertEqual(payments.exists(), payments)
        self.assertEqual(payments.mapped("state"), states)
        self.assertTrue(all(state in ("in_process", "paid") for state in states))
        self.assertEqual(set((invoice_a | invoice_b).mapped("payment_state")), {"paid"})
        self.assertFalse(
            self.env["mail.mail"].search(
                [("model", "=", "account.payment"), ("res_id", "in", payments.ids)]
            )
        )
        self.assertFalse(self.received())

    def test_register_payment_from_invoice_button_still_opens_wizard(self):
        invoice = self.init_invoice(
            "out_invoice", partner=self.partner_a, amounts=[80.0], post=True
        )
        wizard = (
            self.env["account.payment.register"]
            .with_context(
                active_model="account.move",
                active_ids=invoice.ids,
                dont_redirect_to_payments=True,
            )
            .create({"send_receipt_by_email": True})
        )
        action = wizard.action_create_payments()
        self.assertEqual(action["res_model"], "document.email.wizard")
        self.assertEqual(
            action["context"]["active_ids"], invoice.matched_payment_ids.ids
        )

    def test_register_payment_without_option_unchanged(self):
        invoice = self.init_invoice(
            "out_invoice", partner=self.partner_a, amounts=[80.0], post=True
        )
        _wizard, action = self.register_payment(invoice)
        self.assertEqual(action["res_model"], "account.payment")
        self.assertEqual(action["res_id"], invoice.matched_payment_ids.id)

    def test_confirm_and_send_from_payment_form(self):
        payment = self.env["account.payment"].create(
            {
                "payment_type": "inbound",
                "partner_type": "customer",
                "partner_id": self.partner_a.id,
                "amount": 42.0,
                "journal_id": self.company_data["default_journal_bank"].id,
            }
        )
        self.assertEqual(payment.state, "draft")
        action = payment.action_post_and_send_document_email()
        self.assertEqual(payment.state, "in_process")
        self.assertEqual(action["res_model"], "document.email.wizard")
        self.assertEqual(action["context"]["active_ids"], payment.ids)
        wizard = (
            self.env["document.email.wizard"]
            .with_context(**action["context"])
            .create({})
        )
        with real_smtp_delivery():
            wizard.action_send()
        self.assertEqual(len(self.messages_to("partner.a@customer.example.com")), 1)

    # -- batch and partners without email -----------------------------------

    def test_batch_from_list_one_email_per_payment(self):
        payment_a = self.pay(
            self.init_invoice(
                "out_invoice", partner=self.partner_a, amounts=[10.0], post=True
            )
        )
        payment_b = self.pay(self.vendor_bill(self.partner_b, 20.0))
        lonely = self.pay(
            self.init_invoice(
                "out_invoice", partner=self.partner_no_email, amounts=[30.0], post=True
            )
        )
        payments = payment_a | payment_b | lonely
        binding = self.env.ref(
            "account_document_email.action_send_email_account_payment"
        )
        self.assertEqual(binding.binding_view_types, "list,form")
        action = binding.with_context(
            active_model="account.payment", active_ids=payments.ids
        ).run()
        wizard = (
            self.env["document.email.wizard"]
            .with_context(**action["context"])
            .create({})
        )
        self.assertEqual(wizard.document_count, 3)
        batch = self.send_in_background(wizard)
        self.assertEqual((batch.queued_count, batch.skipped_count), (2, 1))
        skipped = batch.line_ids.filtered(lambda line: line.state == "skipped")
        self.assertEqual(skipped.document_name, lonely.display_name)
        with real_smtp_delivery():
            self.env["mail.mail"].process_email_queue()
        self.assertEqual(len(self.received()), 2)
        # each its own template and its own kind of PDF
        for payment, address, subject, title, other in (
            (payment_a, "partner.a", "Payment receipt", "Receipt", "Advice"),
            (payment_b, "partner.b", "Payment advice", "Advice", "Receipt"),
        ):
            [received] = self.messages_to(f"{address}@customer.example.com")
            self.assertIn(f"{subject} {payment.name}", received["message"]["Subject"])
            [(_filename, content)] = pdf_parts(received["message"])
            text = pdf_text(content)
            self.assertIn(f"Payment {title}", text)
            self.assertNotIn(f"Payment {other}", text)
            self.assertIn(payment.name, text)

    def test_single_payment_partner_without_email(self):
        payment = self.pay(
            self.init_invoice(
                "out_invoice", partner=self.partner_no_email, amounts=[30.0], post=True
            )
        )
        wizard = self.open_wizard(payment)
        self.assertFalse(wizard.partner_ids)
        with self.assertRaisesRegex(UserError, "Add at least one recipient"):
            wizard.action_send()
        self.assertFalse(self.received())

    def test_print_menu_binding(self):
        bound = self.env["ir.actions.server"].search(
            [
                ("binding_model_id.model", "=", "account.payment"),
                ("name", "=", "Send by email"),
            ]
        )
        self.assertEqual(set(bound.mapped("binding_type")), {"action", "report"})

    # -- browser ------------------------------------------------------------

    def test_tour_register_payment_send_receipt(self):
        invoice = self.init_invoice(
            "out_invoice", partner=self.partner_a, amounts=[100.0], post=True
        )
        before = self.last_payment_id()
        self.start_tour(
            f"/odoo/action-account.action_move_out_invoice_type/{invoice.id}",
            "account_document_email_register_payment",
            login=self.env.user.login,
        )
        self.env.invalidate_all()  # the browser worked in its own environment
        payment = self.new_payments(before)
        self.assertEqual(len(payment), 1)
        self.assertEqual(payment.partner_id, self.partner_a)
        self.assertEqual(invoice.payment_state, "paid")
        self.assertFalse(
            self.env["mail.mail"].search(
                [("model", "=", "account.payment"), ("res_id", "=", payment.id)]
            ),
            "cancelled: nothing sent",
        )
        self.assertFalse(self.received())
