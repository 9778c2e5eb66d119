"""One email per customer from a list: a customer's documents go together,
each with its own PDF, under the server's size limit; each document still
gets its chatter trace, its sent state and its duplicate-guard entry.
Delivery is proven at the real SMTP sink: Odoo's test mode skips SMTP, and
``real_smtp_delivery`` switches that off deliberately for the queue run."""

from odoo import Command
from odoo.exceptions import AccessError
from odoo.tests import new_test_user, tagged

from .common import pdf_parts, pdf_text, real_smtp_delivery
from .document_common import DocumentEmailCase


@tagged("post_install", "-at_install")
class TestOneEmailPerCustomer(DocumentEmailCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.partner_c = cls.env["res.partner"].create(
            {"name": "Customer <C> & Co", "email": "partner.c@customer.example.com"}
        )
        cls.customers = cls.partner_a | cls.partner_b | cls.partner_c
        cls.invoices = cls.env["account.move"]
        # interleaved, as a list sorted by date would show them
        for index in range(12):
            cls.invoices |= cls.init_invoice(
                "out_invoice",
                partner=cls.customers[index % 3],
                amounts=[100.0 + index],
                post=True,
            )

    def send_per_customer(self, documents):
        wizard = self.open_wizard(documents, per_customer=True)
        batch = self.send_in_background(wizard)
        batch.invalidate_recordset()
        return batch

    def deliver(self):
        with real_smtp_delivery():
            self.env["mail.mail"].process_email_queue()
        return self.received()

    def invoices_of(self, partner, invoices=None):
        return (invoices or self.invoices).filtered(lambda i: i.partner_id == partner)

    def body_of(self, message):
        return message["message"].get_body(("html",)).get_content()

    def test_twelve_invoices_three_customers_three_emails(self):
        self.env["ir.config_parameter"].set_param(
            "account_document_email.batch_chunk_size", 5
        )  # a chunk takes the rest of its customers' documents
        self.assertFalse(any(self.invoices.mapped("is_move_sent")))
        batch = self.send_per_customer(self.invoices)
        self.assertEqual(batch.state, "done")
        self.assertEqual(
            (batch.total_count, batch.customer_count, batch.email_count), (12, 3, 3)
        )
        self.assertEqual(batch.queued_count, 12)
        self.assertEqual(
            batch._get_result_message(),
            f"{batch.name}: 12 documents queued in 3 emails to 3 customers, "
            "0 skipped, 0 failed, 0 not sent.",
        )
        messages = self.deliver()
        self.assertEqual(len(messages), 3)
        for partner in self.customers:
            [message] = self.messages_to(partner.email)
            own = self.invoices_of(partner)
            self.assertEqual(len(own), 4)
            pdfs = pdf_parts(message["message"])
            self.assertEqual(len(pdfs), 4, [name for name, _raw in pdfs])
            found = set()
            for _name, content in pdfs:
                self.assert_pdf(content)
                text = pdf_text(content)
                [name] = [n for n in self.invoices.mapped("name") if n in text]
                found.add(name)
            self.assertEqual(found, set(own.mapped("name")), "its own four PDFs")
            body = self.body_of(message)
            for invoice in own:
                self.assertIn(invoice.name, body)
                self.assertIn(invoice.get_portal_url(), body.replace("&amp;", "&"))
            for other in self.invoices - own:
                self.assertNotIn(other.name, body)
        # the customer's name is printed escaped, never read as markup
        [message] = self.messages_to(self.partner_c.email)
        self.assertIn("Customer &lt;C&gt; &amp; Co", self.body_of(message))
        self.assertTrue(all(self.invoices.mapped("is_move_sent")))
        self.assert_chatter_traces(batch)

    def assert_chatter_traces(self, batch):
        """Each invoice's chatter shows its email, or a note pointing to it
        with its own PDF."""
        for line in batch.line_ids:
            invoice = self.invoices.browse(line.res_id)
            mail = line.mail_id
            self.assertEqual(mail.state, "sent")
            self.assertIn(invoice.partner_id, mail.partner_ids)
            messages = self.env["mail.message"].search(
                [("model", "=", "account.move"), ("res_id", "=", invoice.id)]
            )
            if mail.res_id == invoice.id:
                self.assertIn(mail.mail_message_id, messages)
                continue
            subject = mail.subject
            [note] = messages.filtered(lambda m, s=subject: s in (m.body or ""))
            self.assertEqual(len(note.attachment_ids), 1)
            self.assertIn(invoice.name, pdf_text(note.attachment_ids.raw))
            self.assertIn(f'data-oe-id="{mail.res_id}"', note.body)

    def test_duplicate_guard_sees_every_document(self):
        self.send_per_customer(self.invoices)
        engine = self.env["document.email.send"]
        settings = engine._get_default_settings(per_customer=True)
        self.assertEqual(engine._recently_sent(self.invoices, settings), self.invoices)
        wizard = self.open_wizard(self.invoices[5:7], per_customer=True)
        action = wizard.action_send()
        self.assertEqual(action["res_model"], "document.email.wizard")
        for invoice in self.invoices[5:7]:
            self.assertIn(invoice.name, wizard.duplicate_warning)

    def test_size_limit_splits_without_loss(self):
        own = self.invoices_of(self.partner_a)
        own._document_email_make_official_files()
        sizes = [len(invoice.invoice_pdf_report_id.raw) for invoice in own]
        engine = self.env["document.email.send"]
        company = self.env.company
        body = engine._render_customer_email(self.partner_a, company, own)[1]
        two = max(
            engine._estimate_size(body, sizes[:2]),
            engine._estimate_size(body, sizes[2:]),
        )
        self.assertGreater(engine._estimate_size(body, sizes[:3]), two + 1)
        server = company._get_document_mail_server()
        server.max_email_size = (two + 1) / 1024 / 1024
        batch = self.send_per_customer(own)
        self.assertEqual((batch.customer_count, batch.email_count), (1, 2))
        messages = self.deliver()
        self.assertEqual(len(messages), 2)
        subjects = sorted(m["message"]["Subject"] for m in messages)
        self.assertTrue(subjects[0].endswith("(1 of 2)"), subjects)
        self.assertTrue(subjects[1].endswith("(2 of 2)"), subjects)
        found = []
        for message in messages:
            pdfs = pdf_parts(message["message"])
            self.assertEqual(len(pdfs), 2)
            names = [
                name
                for _file, content in pdfs
                for name in own.mapped("name")
                if name in pdf_text(content)
            ]
            body = self.body_of(message)
            self.assertEqual([n for n in own.mapped("name") if n in body], names)
            found += names
        self.assertEqual(sorted(found), sorted(own.mapped("name")), "nothing lost")
        self.assertTrue(all(own.mapped("is_move_sent")))

    def test_file_larger_than_the_limit_fails_clearly(self):
        own = self.invoices_of(self.partner_b)
        self.env.company._get_document_mail_server().max_email_size = 0.001
        batch = self.send_per_customer(own)
        self.assertEqual(batch.failed_count, 4)
        self.assertFalse(batch.line_ids.mail_id)
        for line in batch.line_ids:
            self.assertIn("larger than the largest email", line.failure_reason)
        self.assertFalse(self.deliver())
        self.assertFalse(any(own.mapped("is_move_sent")))

    def test_user_without_the_group_cannot_use_it(self):
        user = new_test_user(
            self.env, login="no.invoicing.percust", groups="base.group_user"
        )
        with self.assertRaises(AccessError):
            self.open_wizard(self.invoices.with_user(user), per_customer=True)
        with self.assertRaises(AccessError):
            self.invoices.with_user(user).action_send_document_email()
        self.assertFalse(
            self.env["document.email.batch"].search([("per_customer", "=", True)])
        )

    def test_quotations_of_one_customer_become_sent(self):
        """As core's Send of a quotation: each one emailed becomes "sent"."""
        orders = self.env["sale.order"].create(
            [
                {
                    "partner_id": self.partner_a.id,
                    "order_line": [
                        Command.create(
                            {"product_id": self.product_a.id, "price_unit": n}
                        )
                    ],
                }
                for n in (10.0, 20.0)
            ]
        )
        batch = self.send_per_customer(orders)
        self.assertEqual((batch.customer_count, batch.email_count), (1, 1))
        self.assertEqual(set(orders.mapped("state")), {"sent"})
        [message] = self.deliver()
        self.assertEqual(len(pdf_parts(message["message"])), 2)
        body = self.body_of(message)
        for order in orders:
            self.assertIn(order.name, body)
