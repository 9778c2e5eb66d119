"""Only those allowed send, nothing leaks, and what an accountant expects:
who may send what, admin-only SMTP settings, the dialog's files, several
companies, vendor bills, journal entries, recipients and file names."""

from lxml import etree

from odoo import Command
from odoo.exceptions import AccessError, UserError
from odoo.tests import Form, new_test_user, tagged

from .common import SMTPTestServer, pdf_parts, pdf_text, real_smtp_delivery
from .document_common import DocumentEmailCase


@tagged("post_install", "-at_install")
class TestRights(DocumentEmailCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.invoice = cls.init_invoice(
            "out_invoice", partner=cls.partner_a, amounts=[100.0], post=True
        )
        company = cls.env.company
        cls.auditor = new_test_user(
            cls.env,
            login="auditor",
            groups="base.group_user,account.group_account_readonly",
            company_id=company.id,
        )
        cls.employee = new_test_user(
            cls.env, login="employee", groups="base.group_user", company_id=company.id
        )
        cls.clerk = new_test_user(
            cls.env,
            login="clerk",
            groups="base.group_user,account.group_account_invoice",
            company_id=company.id,
            email="clerk@company.example.com",
        )
        cls.salesman = new_test_user(
            cls.env,
            login="salesman",
            groups="base.group_user,sales_team.group_sale_salesman",
            company_id=company.id,
            email="salesman@company.example.com",
        )

    def as_user(self, user):
        return self.env(user=user)

    def wizard_model(self, user, records, **context):
        return self.as_user(user)["document.email.wizard"].with_context(
            active_model=records._name, active_ids=records.ids, **context
        )

    def footprint(self):
        """What opening the dialog would leave behind."""
        return tuple(
            self.env[model].sudo().search_count([])
            for model in ("ir.attachment", "document.email.wizard", "mail.mail")
        )

    # -- who may send which documents --------------------------------------

    def test_auditor_and_employee_refused_before_anything_exists(self):
        payment = self.env["account.payment"].create(
            {
                "payment_type": "inbound",
                "partner_type": "customer",
                "partner_id": self.partner_a.id,
                "amount": 10.0,
            }
        )
        payment.action_post()
        order = self.env["sale.order"].create({"partner_id": self.partner_a.id})
        before = self.footprint()
        refused = "You are not allowed to send"
        for user in (self.auditor, self.employee):
            cases = {
                "invoice": (self.invoice, {}),
                "payment": (payment, {}),
                "order": (order, {}),
                # partners are readable by all; the figures come from SQL
                "statement": (self.partner_a, {"aged_document": "statement"}),
                "letter": (self.partner_a, {"aged_document": "letter"}),
            }
            for name, (records, context) in cases.items():
                with self.subTest(user=user.login, document=name):
                    model = self.wizard_model(user, records, **context)
                    with self.assertRaisesRegex(AccessError, refused):
                        records.with_env(model.env)._get_document_email_action(context)
                    with self.assertRaisesRegex(AccessError, refused):
                        model.default_get(["res_ids", "attachment_ids", "body"])
                    with self.assertRaisesRegex(AccessError, refused):
                        model.create({})
            with (
                self.subTest(user=user.login, path="queued"),
                self.assertRaisesRegex(AccessError, refused),
            ):
                self.as_user(user)["document.email.send"]._queue_documents(
                    payment.with_user(user)
                )
        self.assertEqual(self.footprint(), before, "nothing rendered nor created")

    def test_each_document_type_needs_its_own_group(self):
        order = self.env["sale.order"].create(
            {"partner_id": self.partner_a.id, "user_id": self.salesman.id}
        )
        wizard = self.wizard_model(self.salesman, order).create({})
        self.assertEqual(wizard.partner_ids, self.partner_a)
        with self.assertRaises(AccessError):
            self.wizard_model(self.clerk, order).create({})
        with self.assertRaises(AccessError):
            self.wizard_model(self.salesman, self.invoice).create({})
        with self.assertRaises(AccessError):
            self.wizard_model(self.salesman, self.partner_a).create({})
        wizard = self.wizard_model(self.clerk, self.partner_a).create({})
        self.assertEqual(
            wizard.report_id,
            self.env.ref("account_document_email.action_report_aged_statement"),
        )

    def test_statement_and_letter_routes_refuse_other_users(self):
        for xmlid in ("action_report_aged_statement", "action_report_aged_letter"):
            report = self.env.ref(f"account_document_email.{xmlid}")
            self.assertEqual(
                report.groups_id, self.env.ref("account.group_account_invoice")
            )
        url = (
            "/report/pdf/account_document_email.report_aged_statement/"
            f"{self.partner_a.id}"
        )
        for login in ("employee", "auditor"):
            with self.subTest(login=login):
                self.authenticate(login, login)
                response = self.url_open(url)
                self.assertNotEqual(response.status_code, 200)
                self.assertFalse(response.content.startswith(b"%PDF"))
                self.assertNotIn(b"100.00", response.content)
        # the same route gives the clerk the statement (the route works; in
        # test mode Odoo answers with the HTML it would print: a real PDF
        # here would make wkhtmltopdf call back into the busy test server)
        self.authenticate("clerk", "clerk")
        response = self.url_open(url)
        self.assertEqual(response.status_code, 200)
        self.assertIn(self.invoice.name, response.text)
        self.assertIn("100.00", response.text)

    def test_buttons_and_bindings_only_for_allowed_users(self):
        def buttons(user, model):
            arch = (
                self.env[model]
                .with_user(user)
                .get_views([(False, "form")])["views"]["form"]["arch"]
            )
            return etree.fromstring(arch).xpath(
                "//button[@name='action_send_document_email']"
            )

        ours = {
            self.env.ref(f"account_document_email.action_{kind}_email_{model}").id
            for kind in ("send", "print_send")
            for model in ("account_move", "account_payment", "sale_order")
        }

        def bound(user, model):
            bindings = (
                self.env["ir.actions.actions"].with_user(user).get_bindings(model)
            )
            return {
                kind
                for kind in ("action", "report")
                for action in bindings.get(kind, [])
                if action["id"] in ours
            }

        for model, allowed, refused in (
            ("account.move", self.clerk, self.auditor),
            ("account.payment", self.clerk, self.auditor),
            ("sale.order", self.salesman, self.clerk),
        ):
            with self.subTest(model=model):
                self.assertTrue(buttons(allowed, model))
                self.assertEqual(bound(allowed, model), {"action", "report"})
                self.assertFalse(bound(refused, model))
                if model != "sale.order":  # the clerk cannot open sale orders
                    self.assertFalse(buttons(refused, model))

    # -- SMTP settings -------------------------------------------------------

    def test_smtp_settings_admin_only(self):
        access_manager = new_test_user(
            self.env,
            login="access.manager",
            groups="base.group_user,base.group_erp_manager",
            company_id=self.env.company.id,
        )
        company = self.env.company.with_user(access_manager)
        values = {
            "document_smtp_use_default": False,
            "document_smtp_host": "attacker.example.com",
            "document_smtp_port": 25,
            "document_smtp_encryption": "none",
            "document_smtp_verify_certificate": False,
            "document_smtp_authentication": True,
        }
        host = self.env.company.document_smtp_host
        self.assertTrue(company.read(["name", "email"]))  # the company is theirs
        for field, value in values.items():
            with self.subTest(field=field):
                with self.assertRaises(AccessError):
                    company.write({field: value})
                with self.assertRaises(AccessError):
                    company.read([field])
        self.assertEqual(self.env.company.document_smtp_host, host)
        # the administrator keeps the settings screen
        settings = self.env["res.config.settings"].create({})
        self.assertEqual(settings.smtp_host, host)
        self.assertEqual(settings.smtp_port, self.smtp.port)

    # -- attachments ---------------------------------------------------------

    def test_own_upload_moved_other_document_file_copied(self):
        invoice_b = self.init_invoice(
            "out_invoice", partner=self.partner_b, amounts=[20.0], post=True
        )
        other_file = self.env["ir.attachment"].create(
            {
                "name": "contract-b.txt",
                "raw": b"belongs to invoice b",
                "res_model": "account.move",
                "res_id": invoice_b.id,
            }
        )
        env = self.as_user(self.clerk)
        upload = env["ir.attachment"].create(
            {
                "name": "note.txt",
                "raw": b"uploaded in the dialog",
                "res_model": "document.email.wizard",
                "res_id": 0,
            }
        )
        # another report than the official one: the dialog renders its PDF
        wizard = (
            self.wizard_model(self.clerk, self.invoice)
            .with_context(
                default_report_id=self.env.ref(
                    "account.account_invoices_without_payment"
                ).id
            )
            .create({})
        )
        pdf = wizard.attachment_ids
        self.assertEqual(len(pdf), 1)
        wizard.attachment_ids = [Command.link(upload.id), Command.link(other_file.id)]
        with real_smtp_delivery():
            wizard.action_send()
        mail = self.env["mail.mail"].search(
            [("model", "=", "account.move"), ("res_id", "=", self.invoice.id)]
        )
        owner = ("account.move", self.invoice.id)
        for moved in (upload, pdf):
            self.assertEqual((moved.res_model, moved.res_id), owner)
        self.assertEqual(
            (other_file.res_model, other_file.res_id), ("account.move", invoice_b.id)
        )
        copy = mail.attachment_ids - upload - pdf
        self.assertEqual(copy.name, "contract-b.txt")
        self.assertNotEqual(copy, other_file)
        self.assertEqual((copy.res_model, copy.res_id), owner)
        self.assertEqual(copy.raw, b"belongs to invoice b")
        [received] = self.received()
        names = {part.get_filename() for part in received["message"].iter_attachments()}
        self.assertEqual(names, {pdf.name, "note.txt", "contract-b.txt"})

    def test_dialog_pdf_removed_when_cancelled_or_vacuumed(self):
        Attachment = self.env["ir.attachment"]
        wizard_model = self.env["document.email.wizard"]
        # saved (a button was clicked), then cancelled: vacuumed with the dialog
        # another report than the official one: the dialog renders its PDF
        report = self.env.ref("account.account_invoices_without_payment").id
        wizard = self.open_wizard(self.invoice, report_id=report)
        pdf = wizard.attachment_ids
        self.assertEqual(len(pdf), 1)
        self.assertEqual((pdf.res_model, pdf.res_id), (wizard._name, wizard.id))
        self.env.flush_all()
        self.env.cr.execute(
            "UPDATE document_email_wizard SET write_date = now() - interval "
            "'2 days', create_date = now() - interval '2 days' WHERE id = %s",
            [wizard.id],
        )
        wizard.invalidate_recordset()
        wizard_model._transient_clean_rows_older_than(3600)
        self.assertFalse(wizard.exists())
        self.assertFalse(pdf.exists())
        # opened, then cancelled before anything was saved
        before = Attachment.search([("res_model", "=", wizard._name)])
        form = Form(
            wizard_model.with_context(
                active_model="account.move",
                active_ids=self.invoice.ids,
                default_report_id=report,
            )
        )
        self.assertTrue(form.attachment_ids)
        del form
        self.env.flush_all()
        rendered = Attachment.search([("res_model", "=", wizard._name)]) - before
        self.assertEqual(rendered.mapped("res_id"), [0])
        self.env.cr.execute(
            "UPDATE ir_attachment SET create_date = now() - interval '2 days' "
            "WHERE id = %s",
            [rendered.id],
        )
        wizard_model._gc_document_email_attachments()
        self.assertFalse(rendered.exists())

    # -- several companies ---------------------------------------------------

    def test_user_in_two_companies_sends_b_document_with_b_server_and_letterhead(
        self,
    ):
        self.env["res.lang"]._activate_lang("es_ES")
        self.env["ir.module.module"]._load_module_terms(
            ["account_document_email"], ["es_ES"], overwrite=True
        )
        company_a = self.env.company
        company_b = self.setup_other_company(name="Beta Letterhead Ltd")["company"]
        company_b.email = "billing@beta.example.com"
        server_b = SMTPTestServer().start()
        self.addCleanup(server_b.stop)
        company_b.write(server_b.company_values())
        customer_b = self.env["res.partner"].create(
            {
                "name": "Cliente Beta",
                "email": "cliente@beta.example.com",
                "lang": "es_ES",
            }
        )
        invoice_b = self.init_invoice(
            "out_invoice",
            partner=customer_b,
            amounts=[70.0],
            post=True,
            company=company_b,
        )
        user = new_test_user(
            self.env,
            login="two.companies",
            groups="base.group_user,account.group_account_invoice",
            company_id=company_a.id,
            company_ids=[Command.set((company_a | company_b).ids)],
            email="two@company.example.com",
        )
        env = self.env(
            user=user,
            context=dict(
                self.env.context,
                allowed_company_ids=(company_a | company_b).ids,
            ),
        )
        self.assertEqual(env.company, company_a, "working in A")
        wizard = (
            env["document.email.wizard"]
            .with_context(
                active_model="account.move",
                active_ids=invoice_b.ids,
                # not the official PDF (made when sent): rendered in the dialog
                default_report_id=self.env.ref(
                    "account.account_invoices_without_payment"
                ).id,
            )
            .create({})
        )
        self.assertEqual(
            wizard.subject, f"Factura {invoice_b.name} de {company_b.name}"
        )
        text = pdf_text(wizard.attachment_ids.raw)
        self.assertIn(company_b.name, text, "B's letterhead")
        self.assertNotIn(company_a.name, text)
        with real_smtp_delivery():
            wizard.action_send()
        mail = self.env["mail.mail"].search(
            [("model", "=", "account.move"), ("res_id", "=", invoice_b.id)]
        )
        self.assertEqual(mail.mail_server_id, company_b.sudo().document_mail_server_id)
        self.assertEqual(mail.state, "sent", mail.failure_reason)
        self.assertFalse(self.received(), "nothing through A's server")
        [received] = server_b.messages
        self.assertEqual(received["rcpt_tos"], ["cliente@beta.example.com"])
        [(_name, content)] = pdf_parts(received["message"])
        self.assertIn(company_b.name, pdf_text(content))

    # -- wording and recipients ----------------------------------------------

    def test_vendor_bills_and_refunds_have_no_envelope(self):
        arch = self.env["account.move"].get_views([(False, "form")])["views"]["form"][
            "arch"
        ]
        [button] = etree.fromstring(arch).xpath(
            "//button[@name='action_send_document_email']"
        )
        self.assertIn("'in_refund'", button.get("invisible"))
        for move_type in ("in_invoice", "in_refund"):
            with self.subTest(move_type=move_type):
                bill = self.init_invoice(
                    move_type, partner=self.partner_a, amounts=[30.0], post=True
                )
                before = self.footprint()
                with self.assertRaisesRegex(UserError, "vendor bill or refund"):
                    self.open_wizard(bill)
                with self.assertRaisesRegex(UserError, bill.name):
                    self.open_wizard(self.invoice | bill)
                self.assertEqual(self.footprint(), before)

    def _entry(self, lines):
        entry = self.env["account.move"].create(
            {
                "move_type": "entry",
                "ref": "Payroll June",
                "line_ids": [
                    Command.create(
                        {
                            "account_id": self.company_data[account].id,
                            "partner_id": partner.id if partner else False,
                            "name": label,
                            "debit": max(amount, 0.0),
                            "credit": max(-amount, 0.0),
                        }
                    )
                    for account, partner, label, amount in lines
                ],
            }
        )
        entry.action_post()
        return entry

    def test_journal_entry_several_partners_no_prefill_no_other_partner_data(self):
        entry = self._entry(
            [
                ("default_account_expense", False, "Salaries", 300.0),
                ("default_account_payable", self.partner_a, "Net pay Alice", -120.0),
                ("default_account_payable", self.partner_b, "Net pay Bob", -180.0),
            ]
        )
        wizard = self.open_wizard(entry)
        self.assertFalse(wizard.partner_ids, "the user types the recipient")
        text = pdf_text(wizard.attachment_ids.raw)
        self.assertIn(entry.name, text)
        self.assertIn("300.00", text)
        for private in (
            self.partner_a.name,
            self.partner_b.name,
            "Net pay",
            "120.00",
            "180.00",
        ):
            self.assertNotIn(private, text)
        wizard.partner_ids = self.partner_a
        with real_smtp_delivery():
            wizard.action_send()
        [received] = self.messages_to("partner.a@customer.example.com")
        [(_name, content)] = pdf_parts(received["message"])
        self.assertNotIn(self.partner_b.name, pdf_text(content))
        # the full entry only when the user asks for it
        wizard = self.open_wizard(entry)
        full = self.env.ref("account_document_email.action_report_journal_entry_full")
        self.assertIn(full, wizard._get_documents()._get_document_email_reports())
        wizard.report_id = full
        text = pdf_text(wizard.attachment_ids.raw)
        for shown in (self.partner_a.name, self.partner_b.name, "Net pay Bob"):
            self.assertIn(shown, text)
        # exactly one partner: prefilled
        single = self._entry(
            [
                ("default_account_revenue", self.partner_b, "Fee", 50.0),
                ("default_account_expense", False, "Fee", -50.0),
            ]
        )
        self.assertEqual(self.open_wizard(single).partner_ids, self.partner_b)

    def test_partner_with_several_addresses_gets_all(self):
        self.partner_a.email = "ap@customer.example.com, boss@customer.example.com"
        wizard = self.open_wizard(self.invoice)
        with real_smtp_delivery():
            result = wizard.action_send()
        self.assertEqual(result["params"]["type"], "success")
        [received] = self.received()
        self.assertEqual(
            sorted(received["rcpt_tos"]),
            ["ap@customer.example.com", "boss@customer.example.com"],
        )
        # in a batch too
        invoice_2 = self.init_invoice(
            "out_invoice", partner=self.partner_a, amounts=[5.0], post=True
        )
        self.send_in_background(
            self.open_wizard(self.invoice | invoice_2, duplicate_confirmed=True)
        )
        mail = self.env["mail.mail"].search(
            [("model", "=", "account.move"), ("res_id", "=", invoice_2.id)]
        )
        self.assertIn("ap@customer.example.com", mail.email_to)
        self.assertIn("boss@customer.example.com", mail.email_to)

    def test_batch_skips_bad_address_named_with_reason_and_goes_on(self):
        bad = self.env["res.partner"].create({"name": "Bad Address", "email": "bad@@x"})
        half = self.env["res.partner"].create(
            {"name": "Half Good", "email": "ok@customer.example.com, nope"}
        )
        invoices = {
            partner: self.init_invoice(
                "out_invoice", partner=partner, amounts=[10.0], post=True
            )
            for partner in (bad, half, self.partner_no_email, self.partner_b)
        }
        documents = self.invoice.browse([inv.id for inv in invoices.values()])
        batch = self.send_in_background(self.open_wizard(documents))
        skipped = batch.line_ids.filtered(lambda line: line.state == "skipped")
        self.assertEqual(
            {f"{line.document_name}: {line.failure_reason}" for line in skipped},
            {
                f"{invoices[bad].name}: not a valid email address for Bad Address",
                f"{invoices[half].name}: not a valid email address for Half Good",
                (
                    f"{invoices[self.partner_no_email].name}: no recipient with "
                    "an email address"
                ),
            },
        )
        mails = self.env["mail.mail"].search(
            [("model", "=", "account.move"), ("res_id", "in", documents.ids)]
        )
        self.assertEqual(mails.mapped("res_id"), [invoices[self.partner_b].id])

    def test_file_names_in_partner_language_and_safe(self):
        self.env["res.lang"]._activate_lang("es_ES")
        self.env["ir.module.module"]._load_module_terms(
            ["account_document_email"], ["es_ES"], overwrite=True
        )
        receipt = self.env.ref("account.action_report_payment_receipt")
        receipt.with_context(lang="es_ES").name = "Comprobante de pago"
        customer = self.env["res.partner"].create(
            {
                "name": 'Ana/López: "Norte" <S.A.>|?*',
                "email": "ana@customer.example.com",
                "lang": "es_ES",
            }
        )
        self.init_invoice("out_invoice", partner=customer, amounts=[40.0], post=True)
        wizard = self.open_wizard(customer.with_context(aged_document="statement"))
        self.assertEqual(
            wizard.attachment_ids.name,
            "Estado de cuenta - Ana_López_ _Norte_ _S.A.____.pdf",
        )
        payment = self.env["account.payment"].create(
            {
                "payment_type": "inbound",
                "partner_type": "customer",
                "partner_id": customer.id,
                "amount": 40.0,
            }
        )
        payment.action_post()
        wizard = self.open_wizard(payment)
        self.assertEqual(
            wizard.attachment_ids.name,
            f"Comprobante de pago - {payment.name.replace('/', '_')}.pdf",
        )
        # an English customer keeps English names
        wizard = self.open_wizard(
            self.partner_a.with_context(aged_document="statement")
        )
        self.assertEqual(wizard.attachment_ids.name, "Statement - partner_a.pdf")

    def test_batch_confirmation_says_queued(self):
        arch = self.env["document.email.wizard"].get_views([(False, "form")])["views"][
            "form"
        ]["arch"]
        confirms = {
            button.get("invisible"): button.get("confirm")
            for button in etree.fromstring(arch).xpath("//button[@name='action_send']")
        }
        single = confirms["duplicate_warning or document_count > 1"]
        batch = confirms["duplicate_warning or document_count < 2"]
        self.assertIn("straight away", single)
        self.assertIn("queued", batch)
        self.assertNotIn("straight away", batch)
