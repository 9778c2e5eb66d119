"""One email per customer from a list: a customer's documents go together,
each with its own PDF, under the server's size limit; each document still
gets its chatter trace, its sent state and its duplicate-guard entry.
Delivery is proven at the real SMTP sink: Odoo's test mode skips SMTP, and
``real_smtp_delivery`` switches that off deliberately for the queue run."""

import os

from odoo import SUPERUSER_ID, Command, api, sql_db
from odoo.exceptions import AccessError, UserError
from odoo.tests import new_test_user, tagged
from odoo.tools import format_amount

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
        """The email is kept on a record of the billing users; each
        invoice's chatter shows a note pointing to it with its own PDF."""
        for line in batch.line_ids:
            invoice = self.invoices.browse(line.res_id)
            mail = line.mail_id
            self.assertEqual(mail.state, "sent")
            self.assertEqual(mail.model, "document.email.statement")
            self.assertIn(invoice.partner_id, mail.partner_ids)
            messages = self.env["mail.message"].search(
                [("model", "=", "account.move"), ("res_id", "=", invoice.id)]
            )
            self.assertNotIn(mail.mail_message_id, messages)
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
        """Each email received is under the limit, measured in bytes at the
        sink, with a large extra file in each: core's estimate (8/6 of the
        files, the body once, 10 KB) falls short of the message sent."""
        own = self.invoices_of(self.partner_a)
        own._document_email_make_official_files()
        extra = self.env["ir.attachment"].create(
            {
                "name": "terms.bin",
                "raw": os.urandom(800 * 1024),
                "res_model": "document.email.wizard",
                "res_id": 0,
            }
        )
        sizes = [len(invoice.invoice_pdf_report_id.raw) for invoice in own]
        engine = self.env["document.email.send"]
        company = self.env.company
        body = engine._render_customer_email(self.partner_a, company, own)[1]
        files = [len(extra.raw)]
        two = max(
            engine._estimate_size(body, files + sizes[:2]),
            engine._estimate_size(body, files + sizes[2:]),
        )
        self.assertGreater(engine._estimate_size(body, files + sizes[:3]), two + 1)
        limit = two + 1
        server = company._get_document_mail_server()
        server.max_email_size = limit / 1024 / 1024
        wizard = self.open_wizard(
            own, per_customer=True, attachment_ids=[Command.set(extra.ids)]
        )
        batch = self.send_in_background(wizard)
        batch.invalidate_recordset()
        self.assertEqual((batch.customer_count, batch.email_count), (1, 2))
        messages = self.deliver()
        self.assertEqual(len(messages), 2)
        subjects = sorted(m["message"]["Subject"] for m in messages)
        self.assertTrue(subjects[0].endswith("(1 of 2)"), subjects)
        self.assertTrue(subjects[1].endswith("(2 of 2)"), subjects)
        found = []
        for message in messages:
            self.assertLessEqual(message["size"], limit)
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
            # the estimate this split used before fell short of what was sent
            attached = files + [len(content) for _file, content in pdfs]
            core = self.env["mail.mail"]._estimate_email_size({}, body, attached)
            self.assertGreater(message["size"], core + 4 * 1024)
        self.assertEqual(sorted(found), sorted(own.mapped("name")), "nothing lost")

    def test_file_larger_than_the_limit_fails_clearly(self):
        own = self.invoices_of(self.partner_b)
        engine = self.env["document.email.send"]
        body = engine._render_customer_email(self.partner_b, self.env.company, own)[1]
        # room for the email without files: each file alone is what is too big
        limit = engine._estimate_size(body, []) + 1
        self.env.company._get_document_mail_server().max_email_size = (
            limit / 1024 / 1024
        )
        batch = self.send_per_customer(own)
        self.assertEqual(batch.failed_count, 4)
        self.assertEqual((batch.customer_count, batch.email_count), (0, 0))
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
        pdfs = pdf_parts(message["message"])
        self.assertEqual(len(pdfs), 2)
        # each PDF is its own order's, none printed twice
        printed = sorted(
            order.name
            for _file, content in pdfs
            for order in orders
            if order.name in pdf_text(content)
        )
        self.assertEqual(printed, sorted(orders.mapped("name")))
        body = self.body_of(message)
        for order in orders:
            self.assertIn(order.name, body)

    def test_credit_note_amount_is_owed_to_the_customer(self):
        refund = self.init_invoice(
            "out_refund", partner=self.partner_a, amounts=[30.0], post=True
        )
        invoice = self.invoices_of(self.partner_a)[:1]
        self.send_per_customer(invoice | refund)
        [message] = self.deliver()
        body = self.body_of(message)
        owed = format_amount(self.env, -refund.amount_total, refund.currency_id)
        self.assertIn(owed, body)

    def test_grouping_is_refused_for_other_document_types(self):
        """Opt-in: payments are never grouped, even asked for by a crafted
        call; nothing is recorded."""
        payments = self.env["account.payment"].create(
            [
                {
                    "amount": amount,
                    "payment_type": "inbound",
                    "partner_type": "customer",
                    "partner_id": self.partner_a.id,
                }
                for amount in (10.0, 20.0)
            ]
        )
        payments.action_post()
        self.assertTrue(self.invoices._document_email_groupable())
        engine = self.env["document.email.send"]
        for documents in (payments,):
            self.assertFalse(documents._document_email_groupable())
            with self.assertRaisesRegex(UserError, "one email per customer"):
                self.open_wizard(documents, per_customer=True).action_send()
            settings = engine._get_default_settings(per_customer=True)
            with self.assertRaisesRegex(UserError, "one email per customer"):
                engine._queue_batch(documents, settings)
        self.assertFalse(
            self.env["document.email.batch"].search(
                [("res_model", "in", ("account.move", "account.payment"))]
            )
        )

    def test_a_customer_is_cut_in_parts_of_a_chunk(self):
        """A customer with more documents than a chunk: parts of at most a
        chunk, numbered when recorded; a chunk takes whole parts."""
        self.env["ir.config_parameter"].set_param(
            "account_document_email.batch_chunk_size", 3
        )
        own = self.invoices_of(self.partner_a) | self.invoices_of(self.partner_b)
        batch = self.send_per_customer(own)
        self.assertEqual(batch.state, "done")
        lines_a = batch.line_ids.filtered(
            lambda line: line.res_id in self.invoices_of(self.partner_a).ids
        )
        self.assertEqual(sorted(lines_a.mapped("group_part")), [1, 1, 2, 2])
        self.assertEqual(set(lines_a.mapped("group_parts")), {2})
        self.assertEqual((batch.customer_count, batch.email_count), (2, 4))
        messages = self.deliver()
        self.assertEqual(len(messages), 4)
        for partner in (self.partner_a, self.partner_b):
            mine = self.messages_to(partner.email)
            subjects = sorted(m["message"]["Subject"] for m in mine)
            self.assertTrue(subjects[0].endswith("(1 of 2)"), subjects)
            self.assertTrue(subjects[1].endswith("(2 of 2)"), subjects)
            found = []
            for message in mine:
                pdfs = pdf_parts(message["message"])
                self.assertEqual(len(pdfs), 2)
                found += [
                    name
                    for _file, content in pdfs
                    for name in own.mapped("name")
                    if name in pdf_text(content)
                ]
            self.assertEqual(
                sorted(found), sorted(self.invoices_of(partner).mapped("name"))
            )

    def test_parts_held_by_another_worker_are_left_whole(self):
        """Two workers: a part one of whose lines the other holds is left
        whole (none of its lines locked), the next part is taken, and the
        worker knows lines remain held elsewhere."""
        db = sql_db.db_connect(self.env.cr.dbname)
        with db.cursor() as setup_cr:
            env = api.Environment(setup_cr, SUPERUSER_ID, {})
            batch = env["document.email.batch"].create(
                {
                    "name": "held parts",
                    "user_id": SUPERUSER_ID,
                    # committed records only: the test's own are not visible
                    "company_id": env.ref("base.main_company").id,
                    "res_model": "account.move",
                    "per_customer": True,
                    "state": "processing",
                }
            )
            lines = env["document.email.batch.line"].create(
                [
                    {
                        "batch_id": batch.id,
                        "res_id": 1000 + n,
                        "sequence": n,
                        "group_key": key,
                        "group_part": 1,
                        "group_parts": 1,
                    }
                    for n, key in enumerate("AAABBB")
                ]
            )
        self.addCleanup(self._drop_batch, db, batch.id)
        with db.cursor() as other_cr, db.cursor() as worker_cr:
            other_cr.execute(
                "SELECT id FROM document_email_batch_line WHERE id = %s FOR UPDATE",
                [lines[2].id],
            )
            worker = api.Environment(worker_cr, SUPERUSER_ID, {})
            taken, busy = worker["document.email.batch"].browse(batch.id)._lock_parts(5)
            self.assertEqual(taken.ids, lines[3:].ids)
            self.assertTrue(busy)
            self.assertEqual(
                worker["document.email.batch"]._lock_chunk(5).ids, lines[3:].ids
            )
            # the free lines of the held part were released, not kept locked
            other_cr.execute(
                "SELECT id FROM document_email_batch_line WHERE id IN %s "
                "FOR UPDATE NOWAIT",
                [tuple(lines[:2].ids)],
            )
            self.assertEqual(len(other_cr.fetchall()), 2)
            other_cr.rollback()
            worker_cr.rollback()

    def _drop_batch(self, db, batch_id):
        with db.cursor() as cr:
            # committed when the block ends (the cursor's context manager)
            cr.execute("DELETE FROM document_email_batch WHERE id = %s", [batch_id])

    def test_salesman_sees_only_his_order(self):
        """A salesman who may read only his own orders opens his order: the
        email listing another salesman's order of the same customer (its
        link, amount, PDF) is not there."""
        mine = new_test_user(
            self.env,
            login="own.orders.percust",
            groups="sales_team.group_sale_salesman",
        )
        other = new_test_user(
            self.env,
            login="other.orders.percust",
            groups="sales_team.group_sale_salesman",
        )
        orders = self.env["sale.order"].create(
            [
                {
                    "partner_id": self.partner_a.id,
                    "user_id": user.id,
                    "order_line": [
                        Command.create(
                            {"product_id": self.product_a.id, "price_unit": price}
                        )
                    ],
                }
                for user, price in ((mine, 111.0), (other, 987654.0))
            ]
        )
        batch = self.send_per_customer(orders)
        self.assertEqual(batch.email_count, 1)
        order = orders[0].with_user(mine)
        hidden = orders[1]
        order.check_access("read")
        messages = order.message_ids
        self.assertTrue(messages)
        seen = "".join(str(m.body) for m in messages)
        for text in (hidden.name, hidden.access_token or hidden.name, "987,654"):
            self.assertNotIn(text, seen)
        for attachment in messages.attachment_ids:
            self.assertNotIn(hidden.name, pdf_text(attachment.sudo().raw))
        email = batch.line_ids.mail_id.mail_message_id
        self.assertIn(hidden.name, email.body)
        with self.assertRaises(AccessError):
            email.with_user(mine).check_access("read")
        with self.assertRaises(AccessError):
            self.env[email.model].browse(email.res_id).with_user(mine).check_access(
                "read"
            )

    def test_a_line_whose_email_disappears_fails(self):
        batch = self.send_per_customer(self.invoices_of(self.partner_a))
        batch.line_ids.mail_id.sudo().unlink()
        self.assertEqual(set(batch.line_ids.mapped("state")), {"failed"})
