import random
import re
from contextlib import contextmanager
from datetime import date, timedelta

from odoo import fields
from odoo.exceptions import AccessError, UserError
from odoo.tests import new_test_user, tagged

from .aged_common import DATE_AT, AgedReceivableMixin
from .common import pdf_parts, pdf_text, real_smtp_delivery
from .document_common import DocumentEmailCase

AUDITOR = "auditor@audit.example.com"
PAGE_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "Cache-Control": "no-store",
}


@tagged("post_install", "-at_install")
class TestConfirmation(AgedReceivableMixin, DocumentEmailCase):
    """Balance confirmation campaigns (ISA 505) answered online."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.today = fields.Date.context_today(cls.env["res.partner"])
        cls.customer = cls.create_customer(
            "Confirm Customer", email="confirm@customer.example.com"
        )
        cls.invoice = cls.create_receivable(cls.customer, 1234.5, 40)
        cls.vendor = cls.create_customer(
            "Confirm Vendor", email="confirm@vendor.example.com"
        )
        cls.create_receivable(cls.vendor, 400, 10, move_type="in_invoice")

    def campaign(self, **values):
        return self.env["account.confirmation.campaign"].create(
            {
                "name": "Year-end",
                "date_at": DATE_AT,
                "deadline": self.today + timedelta(days=20),
                "reply_email": AUDITOR,
                **values,
            }
        )

    def sent_request(self, partner=None, **values):
        """A campaign on ``partner`` alone (the customer by default), sent."""
        partner = partner or self.customer
        campaign = self.campaign(**values)
        campaign.action_select_partners()
        campaign.request_ids.filtered(lambda r: r.partner_id != partner).unlink()
        campaign.action_send()
        # the batch is rendered and queued by its scheduled job
        self.process_batches()
        return campaign.request_ids

    def landing(self, confirmation, token=None):
        """What a GET of the personal link shows (a mail scanner's too)."""
        token = confirmation.access_token if token is None else token
        return self.url_open(f"/my/confirmation/{confirmation.id}?access_token={token}")

    def page(self, confirmation, token=None):
        """The page with the balance, as a person gets it: the link opened,
        then its button pressed."""
        landing = self.landing(confirmation, token)
        if landing.status_code != 200:
            return landing
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', landing.text).group(1)
        return self.url_open(
            f"/my/confirmation/{confirmation.id}/open",
            data={"access_token": confirmation.access_token, "csrf_token": csrf},
        )

    def answer_note(self, confirmation):
        """The answer posted on the request's chatter (not the copy emailed)."""
        return confirmation.message_ids.filtered(
            lambda m: (
                m.message_type == "notification"
                and m.author_id == confirmation.partner_id
            )
        )

    def form_csrf(self):
        """A valid CSRF token of this session, from any form."""
        login = self.url_open("/web/login").text
        return re.search(r'name="csrf_token" value="([^"]+)"', login).group(1)

    def answer(self, confirmation, files=None, **data):
        """POST the page's form, CSRF token and all, as a visitor would."""
        page = self.page(confirmation)
        # the layout's token, there even when the form is not
        csrf = re.search(r'csrf_token: "([^"]+)"', page.text)
        values = {"access_token": confirmation.access_token, **data}
        if csrf:
            values["csrf_token"] = csrf.group(1)
        return self.url_open(
            f"/my/confirmation/{confirmation.id}/answer", data=values, files=files
        )

    # ------------------------------------------------------------------
    # Selection and balances
    # ------------------------------------------------------------------

    def test_letters_read_the_open_items_once_per_batch(self):
        """The letters of a campaign's batch read the open items once for all
        their PDFs, not once per letter: 1 customer or 4, the same queries;
        each letter still lists its own customer's invoice."""
        counts = []
        for size in (1, 4):
            invoices = self.env["account.move"]
            for n in range(size):
                partner = self.create_customer(
                    f"Letters {size}-{n}", email=f"letters{size}{n}@example.com"
                )
                invoices |= self.create_receivable(partner, 100 + n, 5)
            campaign = self.campaign()
            campaign.action_select_partners()
            campaign.request_ids.filtered(
                lambda r, partners=invoices.partner_id: r.partner_id not in partners
            ).unlink()
            campaign.action_send()
            queries = []
            with contextmanager(self._patchExecute)(queries):
                self.process_batches()
            counts.append(sum("late_partial" in query for query in queries))
            for invoice in invoices:
                request = campaign.request_ids.filtered(
                    lambda r, partner=invoice.partner_id: r.partner_id == partner
                )
                mail = self.env["mail.mail"].search(
                    [("model", "=", request._name), ("res_id", "=", request.id)]
                )
                [pdf] = mail.attachment_ids.filtered(
                    lambda a: a.mimetype == "application/pdf"
                )
                text = pdf_text(pdf.raw)
                self.assertIn(invoice.name, text)
                for other in invoices - invoice:
                    self.assertNotIn(other.name, text)
        self.assertTrue(counts[0], "the letters read the open items")
        self.assertEqual(counts[0], counts[1])

    def test_balances_customers_vendors_both(self):
        for scope, expected in (
            ("customer", {self.customer: 1234.5}),
            ("vendor", {self.vendor: -400.0}),
            ("both", {self.customer: 1234.5, self.vendor: -400.0}),
        ):
            campaign = self.campaign(partner_scope=scope)
            campaign.action_select_partners()
            requests = campaign.request_ids.filtered(
                lambda r: r.partner_id in (self.customer | self.vendor)
            )
            self.assertEqual(
                {r.partner_id: r.our_balance for r in requests}, expected, scope
            )

    def test_selection_rules_and_reproducible_random_sample(self):
        customers = self.env["res.partner"]
        for amount in (100, 200, 300, 400, 500, 600):
            customer = self.create_customer(f"Sample {amount}")
            self.create_receivable(customer, amount, 5)
            customers |= customer
        everyone = self.campaign()._get_balances()
        largest = self.campaign(selection_rule="largest", sample_size=2)
        largest.action_select_partners()
        self.assertEqual(largest.request_ids.partner_id, self.customer | customers[-1])
        threshold = self.campaign(selection_rule="threshold", threshold_amount=500)
        threshold.action_select_partners()
        self.assertEqual(
            threshold.request_ids.partner_id, self.customer | customers[-2:]
        )

        first = self.campaign(selection_rule="random", sample_size=3, random_seed=4242)
        again = self.campaign(selection_rule="random", sample_size=3, random_seed=4242)
        other = self.campaign(selection_rule="random", sample_size=3, random_seed=7)
        (first | again | other).action_select_partners()
        self.assertEqual(len(first.request_ids), 3)
        self.assertEqual(first.request_ids.partner_id, again.request_ids.partner_id)
        # anyone can redo the draw with the seed shown on the campaign
        expected = random.Random(4242).sample(sorted(everyone), 3)
        self.assertEqual(sorted(first.request_ids.partner_id.ids), sorted(expected))
        self.assertNotEqual(sorted(other.request_ids.partner_id.ids), sorted(expected))

    def test_amounts_in_partner_currency(self):
        """Open at the date: 300 - 50 EUR and 200 EUR (the 120 EUR paid
        after the date still count): 450 EUR, not the company's USD."""
        eur = self.setup_other_currency(
            "EUR", rates=[("2024-01-01", 2.0), ("2024-06-29", 2.5)]
        )
        foreigner = self.create_customer("Foreigner GmbH", email="f@gmbh.example.com")
        first = self.create_receivable(foreigner, 300, 10, currency=eur)
        second = self.create_receivable(foreigner, 200, 60, currency=eur)
        self.pay(first, 50, date(2024, 6, 25), currency=eur)
        self.pay(second, 120, date(2024, 7, 5), currency=eur)
        [confirmation] = self.sent_request(foreigner)
        self.assertEqual(confirmation.currency_id, eur)
        self.assertEqual(confirmation.our_balance, 450.0)
        self.assertEqual(
            sorted(item["open_amount"] for item in confirmation._get_open_items()),
            [200.0, 250.0],
        )
        page = self.page(confirmation).text
        self.assertIn("450.00", page)
        self.assertIn("EUR", page)
        # the company-currency customer stays in USD
        [usd] = self.sent_request()
        self.assertEqual(usd.currency_id, self.env.company.currency_id)
        self.assertEqual(usd.our_balance, 1234.5)

    def test_other_company_balances_and_rights(self):
        """A campaign sees its company's balances only; a user of another
        company cannot read its requests; billing users only read."""
        other = self.setup_other_company(name="Other Confirm Co")["company"]
        self.create_receivable(self.customer, 999, 5, company=other)
        [confirmation] = self.sent_request()
        self.assertEqual(confirmation.our_balance, 1234.5)
        outsider = new_test_user(
            self.env,
            "confirm_outsider",
            groups="account.group_account_manager",
            company_id=other.id,
            company_ids=[other.id],
        )
        with self.assertRaises(AccessError):
            confirmation.with_user(outsider).read(["our_balance"])
        billing = new_test_user(
            self.env,
            "confirm_billing",
            groups="account.group_account_invoice",
            company_id=self.env.company.id,
            company_ids=[self.env.company.id],
        )
        self.assertEqual(confirmation.with_user(billing).our_balance, 1234.5)
        with self.assertRaises(AccessError):
            confirmation.with_user(billing).their_balance = 1
        with self.assertRaises(AccessError):
            self.campaign().with_user(billing).action_select_partners()

    # ------------------------------------------------------------------
    # Sending
    # ------------------------------------------------------------------

    def test_email_and_letter_carry_the_personal_link(self):
        [confirmation] = self.sent_request()
        self.assertEqual(confirmation.state, "sent")
        with real_smtp_delivery():
            self.env["mail.mail"].process_email_queue()
        [received] = self.messages_to(self.customer.email)
        message = received["message"]
        self.assertIn("Balance confirmation at 06/30/2024", message["Subject"])
        url = confirmation._get_confirmation_url()
        self.assertIn(url, message.get_body(("html",)).get_content())
        [(filename, content)] = pdf_parts(message)
        self.assertEqual(filename, "Balance Confirmation - Confirm Customer.pdf")
        self.assert_pdf(content)
        text = pdf_text(content)
        self.assertIn("Confirmation of Balance", text)
        self.assertIn("1,234.50", text)
        self.assertIn(f"/my/confirmation/{confirmation.id}", text)
        self.assertIn(b"/Subtype /Image", content, "the QR code")

    def test_partner_without_email_stays_draft(self):
        self.customer.email = False
        campaign = self.campaign()
        campaign.action_select_partners()
        campaign.action_send()
        request = campaign.request_ids.filtered(lambda r: r.partner_id == self.customer)
        self.assertEqual(request.state, "draft")
        self.assertEqual(self.page(request).status_code, 404)

    # ------------------------------------------------------------------
    # The public page
    # ------------------------------------------------------------------

    def test_tour_visitor_disputes_the_balance(self):
        [confirmation] = self.sent_request()
        self.start_tour(
            confirmation.get_portal_url(),
            "account_document_email_confirmation_answer",
            login=None,
        )
        self.env.invalidate_all()
        self.assertRecordValues(
            confirmation,
            [
                {
                    "state": "disputed",
                    "our_balance": 1234.5,
                    "their_balance": 1000.0,
                    "difference": 234.5,
                    "comment": "Invoice paid on 28 June by transfer",
                    "answer_ip": "127.0.0.1",
                }
            ],
        )
        self.assertTrue(confirmation.answer_date)
        # on the request's chatter, with date, time and IP
        note = self.answer_note(confirmation)
        self.assertIn("disputed on", note.body)
        self.assertIn("127.0.0.1", note.body)
        self.assertIn("234.50", note.body)
        # the partner's chatter links there, without figures
        [link] = self.customer.message_ids.filtered(
            lambda m: "answered" in (m.body or "")
        )
        self.assertIn('data-oe-model="account.confirmation.request"', link.body)
        self.assertIn(f'data-oe-id="{confirmation.id}"', link.body)
        self.assertNotIn("234.50", link.body)
        # the auditor gets a copy
        [copy] = self.env["mail.mail"].search(
            [("email_to", "=", AUDITOR), ("res_id", "=", confirmation.id)]
        )
        self.assertIn("Confirm Customer", copy.subject)
        self.assertIn("Invoice paid on 28 June", copy.body_html)

    def test_get_marks_nothing_the_button_marks_opened(self):
        """A GET of the link (a mail scanner's) shows no figures and marks
        nothing; the page's button, a person's action, marks it opened."""
        [confirmation] = self.sent_request()
        for __ in range(2):
            landing = self.landing(confirmation)
            self.assertEqual(landing.status_code, 200)
            self.assertIn("o_confirmation_open", landing.text)
            self.assertNotIn("1,234.50", landing.text)
            self.assertEqual(confirmation.state, "sent")
        page = self.page(confirmation)
        self.assertEqual(page.status_code, 200)
        self.assertIn("1,234.50", page.text)
        self.assertEqual(confirmation.state, "opened")
        # the button needs the form's CSRF token
        second = self.sent_request(self.vendor, partner_scope="vendor")
        response = self.url_open(
            f"/my/confirmation/{second.id}/open",
            data={"access_token": second.access_token},
        )
        self.assertEqual(response.status_code, 400)
        self.assertEqual(second.state, "sent")

    def test_tampered_token_and_expired_link_not_found(self):
        [confirmation] = self.sent_request()
        token = confirmation.access_token
        tampered = token[:-1] + ("0" if token[-1] != "0" else "1")
        for response in (
            self.page(confirmation, tampered),
            self.page(confirmation, ""),
            self.page(confirmation, token.upper()),
            self.url_open(f"/my/confirmation/{confirmation.id}"),
            self.url_open(
                f"/my/confirmation/{confirmation.id + 999}?access_token={token}"
            ),
        ):
            self.assertEqual(response.status_code, 404)
            self.assertNotIn("Confirm Customer", response.text)
            self.assertNotIn("1,234.50", response.text)
        self.assertEqual(confirmation.state, "sent", "not opened by a bad link")
        # posting with a tampered token (and a valid CSRF token, so that the
        # token check itself refuses it) records nothing
        response = self.url_open(
            f"/my/confirmation/{confirmation.id}/answer",
            data={
                "access_token": tampered,
                "answer": "agree",
                "csrf_token": self.form_csrf(),
            },
        )
        self.assertEqual(response.status_code, 404)
        self.assertEqual(confirmation.state, "sent")
        # expired: deadline + grace passed, or the campaign closed
        campaign = confirmation.campaign_id
        campaign.deadline = self.today - timedelta(days=31)
        self.assertEqual(self.page(confirmation).status_code, 404)
        campaign.deadline = self.today - timedelta(days=30)
        self.assertEqual(self.page(confirmation).status_code, 200)
        campaign.action_close()
        self.assertEqual(self.page(confirmation).status_code, 404)

    def test_form_needs_csrf_token(self):
        [confirmation] = self.sent_request()
        response = self.url_open(
            f"/my/confirmation/{confirmation.id}/answer",
            data={"access_token": confirmation.access_token, "answer": "agree"},
        )
        self.assertEqual(response.status_code, 400)
        self.assertEqual(confirmation.state, "sent")

    def test_one_answer_per_request(self):
        [confirmation] = self.sent_request()
        self.answer(confirmation, answer="agree")
        self.assertRecordValues(
            confirmation,
            [{"state": "confirmed", "their_balance": 1234.5, "difference": 0.0}],
        )
        first_date = confirmation.answer_date
        page = self.answer(
            confirmation, answer="disagree", their_balance="10", comment="changed"
        )
        self.assertEqual(page.status_code, 200)
        self.assertIn("You confirmed this balance", page.text)
        self.assertNotIn('name="their_balance"', page.text, "no form any more")
        self.assertRecordValues(
            confirmation,
            [{"state": "confirmed", "their_balance": 1234.5, "comment": False}],
        )
        self.assertEqual(confirmation.answer_date, first_date)
        self.assertEqual(
            len(self.env["mail.mail"].search([("email_to", "=", AUDITOR)])), 1
        )

    def test_bad_amount_big_or_odd_file_and_insider_refused(self):
        [confirmation] = self.sent_request()
        for amount in ("1e400", "inf", "nan", "abc"):
            page = self.answer(confirmation, answer="disagree", their_balance=amount)
            self.assertEqual(page.status_code, 200, amount)
            self.assertIn("Enter your balance.", page.text)
        too_big = b"x" * (10 * 1024 * 1024 + 1)
        for name, content in (("big.pdf", too_big), ("run.exe", b"MZ")):
            page = self.answer(
                confirmation,
                answer="disagree",
                their_balance="1",
                files={"attachment": (name, content, "application/octet-stream")},
            )
            self.assertEqual(page.status_code, 200, name)
            self.assertIn('name="their_balance"', page.text, "still to answer")
        self.assertIn(confirmation.state, ("sent", "opened"))
        # someone of the company, signed in, may not answer for the partner
        self.authenticate("admin", "admin")
        page = self.answer(confirmation, answer="agree")
        self.assertIn("only the partner may answer", page.text)
        self.assertIn(confirmation.state, ("sent", "opened"))
        self.assertFalse(confirmation.answer_date)

    def test_token_opens_no_chatter_route(self):
        """Core's token access to a thread (posting, uploading on the
        chatter) is closed on requests: the link is for the answer page."""
        [confirmation] = self.sent_request()
        public = self.env.ref("base.public_user")
        Request = self.env["account.confirmation.request"].with_user(public)
        self.assertFalse(
            Request._get_thread_with_access(
                confirmation.id, "write", token=confirmation.access_token
            )
        )
        self.assertEqual(
            self.env["account.confirmation.request"]._get_thread_with_access(
                confirmation.id, "read"
            ),
            confirmation,
            "internal users keep core's access",
        )

    def test_vendor_disputes_what_we_owe(self):
        """A vendor types what we owe them, as a positive amount."""
        [confirmation] = self.sent_request(self.vendor, partner_scope="vendor")
        self.assertIn("owed you", self.page(confirmation).text)
        self.answer(
            confirmation,
            answer="disagree",
            their_balance="450",
            comment="credit",
            files={"attachment": ("ledger.csv", b"INV-7;450.00\n", "text/csv")},
        )
        self.assertRecordValues(
            confirmation,
            [{"state": "disputed", "their_balance": -450.0, "difference": 50.0}],
        )
        # their file: on the request and its note, in the copy
        file = confirmation.answer_attachment_id
        self.assertEqual((file.name, file.raw), ("ledger.csv", b"INV-7;450.00\n"))
        note = self.answer_note(confirmation)
        self.assertIn("disputed on", note.body)
        self.assertEqual(note.attachment_ids, file)
        [copy] = self.env["mail.mail"].search([("email_to", "=", AUDITOR)])
        self.assertEqual(copy.attachment_ids, file)

    def test_page_in_partners_language(self):
        self.env["res.lang"]._activate_lang("es_ES")
        self.env["ir.module.module"]._load_module_terms(
            ["account_document_email"], ["es_ES"], overwrite=True
        )
        self.customer.lang = "es_ES"
        [confirmation] = self.sent_request()
        self.assertIn("Ver mi saldo", self.landing(confirmation).text)
        page = self.page(confirmation).text
        self.assertIn("Confirmación de saldo", page)
        self.assertIn("No estoy de acuerdo", page)
        [mail] = self.env["mail.mail"].search(
            [("model", "=", confirmation._name), ("res_id", "=", confirmation.id)]
        )
        self.assertTrue(mail.subject.startswith("Confirmación de saldo al 30/06/2024"))
        self.customer.lang = "en_US"
        page = self.page(confirmation).text
        self.assertIn("I do not agree", page)

    # ------------------------------------------------------------------
    # The page hardened (issue 21 §7)
    # ------------------------------------------------------------------

    def test_malformed_tokens_not_found(self):
        """Non-ASCII, unicode, too long or too short: 404 on every route of
        the page, never a 500, and nothing recorded."""
        [confirmation] = self.sent_request()
        token = confirmation.access_token
        csrf = self.form_csrf()
        for bad in (
            "é" * len(token),
            token[:-1] + "é",
            "\u202e" + token[1:],
            "𝟎" * 8,
            token + "0",
            token[:10],
            "x" * 5000,
        ):
            responses = [
                self.landing(confirmation, bad),
                *(
                    self.url_open(
                        f"/my/confirmation/{confirmation.id}/{route}",
                        data={
                            "access_token": bad,
                            "answer": "agree",
                            "csrf_token": csrf,
                        },
                    )
                    for route in ("open", "answer")
                ),
            ]
            self.assertEqual([r.status_code for r in responses], [404] * 3, bad)
        self.assertEqual(confirmation.state, "sent")

    def test_size_limits(self):
        """A body larger than the upload cap is refused (413) by werkzeug from
        its length, before Odoo parses the form into files; a comment over
        2,000 characters is refused with a message on the form."""
        [confirmation] = self.sent_request()
        response = self.answer(
            confirmation,
            answer="disagree",
            their_balance="1",
            files={"attachment": ("big.pdf", b"x" * (11 << 20), "application/pdf")},
        )
        self.assertEqual(response.status_code, 413)
        self.assertEqual(response.headers.get("X-Frame-Options"), "DENY")
        self.assertIn(confirmation.state, ("sent", "opened"))

        page = self.answer(
            confirmation, answer="disagree", their_balance="1", comment="x" * 2001
        )
        self.assertIn("Your comment is longer than 2000 characters", page.text)
        self.assertIn(confirmation.state, ("sent", "opened"))
        self.assertIn('maxlength="2000"', page.text)
        self.answer(
            confirmation, answer="disagree", their_balance="1", comment="x" * 2000
        )
        self.assertEqual(confirmation.state, "disputed")
        self.assertEqual(len(confirmation.comment), 2000)

    def test_headers_on_every_response(self):
        """The page, its button, its answer and its errors (404, 400 without
        CSRF token, 413, 429) all forbid framing, referrers and caching."""
        [confirmation] = self.sent_request()
        url = f"/my/confirmation/{confirmation.id}"
        responses = {
            "landing": self.landing(confirmation),
            "page": self.page(confirmation),
            "answer": self.answer(confirmation, answer="disagree", their_balance="x"),
            "404": self.landing(confirmation, "wrong"),
            "404 route": self.url_open(f"{url}/nothing"),
            "400": self.url_open(
                f"{url}/answer", data={"access_token": confirmation.access_token}
            ),
            "413": self.url_open(
                f"{url}/open",
                data={"access_token": confirmation.access_token, "pad": "x" * 70000},
            ),
        }
        statuses = {name: r.status_code for name, r in responses.items()}
        self.assertEqual(
            statuses,
            {
                "landing": 200,
                "page": 200,
                "answer": 200,
                "404": 404,
                "404 route": 404,
                "400": 400,
                "413": 413,
            },
        )
        for name, response in responses.items():
            self.assertEqual(
                {header: response.headers.get(header) for header in PAGE_HEADERS},
                PAGE_HEADERS,
                name,
            )

    def test_answers_rate_limited_per_token(self):
        """Ten answers per link in ten minutes, counted in the database: the
        eleventh gets 429 and records nothing; another link is not hindered;
        ten minutes later the link answers again."""
        [confirmation] = self.sent_request()
        [other] = self.sent_request(self.vendor, partner_scope="vendor")
        for __ in range(10):
            page = self.answer(confirmation, answer="disagree", their_balance="abc")
            self.assertEqual(page.status_code, 200)
        page = self.answer(confirmation, answer="agree")
        self.assertEqual(page.status_code, 429)
        self.assertIn("Too many answers were sent from this link", page.text)
        self.assertEqual(
            {header: page.headers.get(header) for header in PAGE_HEADERS}, PAGE_HEADERS
        )
        self.assertIn(confirmation.state, ("sent", "opened"))
        self.assertEqual(self.answer(other, answer="agree").status_code, 200)
        self.assertEqual(other.state, "confirmed")
        count = (
            self.env["account.confirmation.attempt"]
            .sudo()
            .search([("request_id", "=", confirmation.id)])
        )
        self.assertEqual(count.count, 11)
        count.window_start -= timedelta(minutes=10, seconds=1)
        self.env.flush_all()
        self.assertEqual(self.answer(confirmation, answer="agree").status_code, 200)
        self.assertEqual(confirmation.state, "confirmed")

    # ------------------------------------------------------------------
    # The answer stays with the company's billing users (issue 19 §4)
    # ------------------------------------------------------------------

    def test_answer_read_by_billing_users_only(self):
        """The answer's figures, comment, IP and file are on the request; a
        plain employee and a user of another company (the partner is shared)
        find none of it through the partner, nor read the request; a billing
        user of the company reads it all there."""
        [confirmation] = self.sent_request()
        self.assertFalse(self.customer.company_id, "a partner every company shares")
        self.answer(
            confirmation,
            answer="disagree",
            their_balance="1000",
            comment="Secret comment",
            files={"attachment": ("ledger.csv", b"SECRET;1000\n", "text/csv")},
        )
        self.assertEqual(confirmation.state, "disputed")
        file = confirmation.answer_attachment_id
        other = self.setup_other_company(name="Other Answer Co")["company"]
        employee = new_test_user(self.env, "answer_employee", groups="base.group_user")
        outsider = new_test_user(
            self.env,
            "answer_outsider",
            groups="account.group_account_manager",
            company_id=other.id,
            company_ids=[other.id],
        )
        for user in (employee, outsider):
            partner = self.customer.with_user(user)
            bodies = " ".join(m.body or "" for m in partner.message_ids)
            self.assertIn("answered", bodies, user.login)
            for secret in ("1,000.00", "234.50", "Secret comment", "127.0.0.1"):
                self.assertNotIn(secret, bodies, user.login)
            self.assertFalse(partner.message_ids.attachment_ids, user.login)
            self.assertFalse(
                self.env["ir.attachment"]
                .with_user(user)
                .search([("name", "=", "ledger.csv")]),
                user.login,
            )
            with self.assertRaises(AccessError):
                confirmation.with_user(user).read(["comment", "their_balance"])
            with self.assertRaises(AccessError):
                file.with_user(user).read(["raw"])
        billing = new_test_user(
            self.env,
            "answer_billing",
            groups="account.group_account_invoice",
            company_id=self.env.company.id,
            company_ids=[self.env.company.id],
        )
        mine = confirmation.with_user(billing)
        self.assertRecordValues(
            mine,
            [
                {
                    "their_balance": 1000.0,
                    "comment": "Secret comment",
                    "answer_ip": "127.0.0.1",
                }
            ],
        )
        self.assertEqual(mine.answer_attachment_id.raw, b"SECRET;1000\n")
        note = self.answer_note(mine)
        self.assertIn("234.50", note.body)
        self.assertEqual(note.attachment_ids.raw, b"SECRET;1000\n")

    # ------------------------------------------------------------------
    # A partner merge keeps every request (issue 21 §6)
    # ------------------------------------------------------------------

    def merge(self, partners, destination):
        wizard = (
            self.env["base.partner.merge.automatic.wizard"]
            .with_context(active_model="res.partner", active_ids=partners.ids)
            .create({"dst_partner_id": destination.id})
        )
        wizard.action_merge()

    def test_merge_never_deletes_a_request(self):
        """Two partners asked in the same campaign (one disputed) cannot be
        merged: a clear refusal, both requests kept. Asked in different
        campaigns, they merge and both requests stay, on the partner kept."""
        duplicate = self.create_customer(
            "Confirm Customer (copy)", email=self.customer.email
        )
        self.create_receivable(duplicate, 10, 5)
        campaign = self.campaign()
        campaign.action_select_partners()
        both = campaign.request_ids.filtered(
            lambda r: r.partner_id in (self.customer | duplicate)
        )
        self.assertEqual(len(both), 2)
        disputed = both.filtered(lambda r: r.partner_id == duplicate)
        disputed.state = "sent"
        disputed._record_answer(False, 5.0, "not ours", ip="127.0.0.1")
        with self.assertRaisesRegex(UserError, "cannot be merged.*Year-end"):
            self.merge(self.customer | duplicate, self.customer)
        self.assertEqual(both.exists(), both)
        self.assertEqual(disputed.partner_id, duplicate)
        self.assertEqual(disputed.comment, "not ours")

        # the customer asked in another campaign only: the merge keeps both
        (both - disputed).unlink()
        later = self.campaign(name="Mid-year")
        later.action_select_partners()
        kept = later.request_ids.filtered(lambda r: r.partner_id == self.customer)
        (later.request_ids - kept).unlink()
        self.merge(self.customer | duplicate, self.customer)
        self.assertFalse(duplicate.exists())
        self.assertEqual((disputed | kept).exists(), disputed | kept)
        self.assertEqual((disputed | kept).partner_id, self.customer)
        self.assertEqual(disputed.state, "disputed")

    # ------------------------------------------------------------------
    # Follow-up
    # ------------------------------------------------------------------

    def second_requests_mails(self, requests):
        return self.env["mail.mail"].search(
            [
                ("model", "=", requests._name),
                ("res_id", "in", requests.ids),
                ("subject", "like", "Second request"),
            ]
        )

    def test_second_request_sent_exactly_once(self):
        [waiting] = self.sent_request(second_request_days=14)
        answered = self.sent_request(self.vendor, partner_scope="vendor")
        recent = self.sent_request()
        (waiting | answered).sent_date = self.today - timedelta(days=14)
        answered._record_answer(True, ip="127.0.0.1")
        Campaign = self.env["account.confirmation.campaign"]
        Campaign._cron_follow_up()
        self.process_batches()
        Campaign._cron_follow_up()
        self.process_batches()
        self.assertEqual(waiting.state, "second_sent")
        self.assertEqual(waiting.second_request_date, self.today)
        self.assertEqual(len(self.second_requests_mails(waiting)), 1)
        self.assertFalse(self.second_requests_mails(answered | recent))
        self.assertEqual(recent.state, "sent")
        with real_smtp_delivery():
            self.env["mail.mail"].process_email_queue()
        second = [
            m
            for m in self.messages_to(self.customer.email)
            if m["message"]["Subject"].startswith("Second request")
        ]
        self.assertEqual(len(second), 1)
        [(__, content)] = pdf_parts(second[0]["message"])
        self.assertIn("Second Request", pdf_text(content))

    def test_positive_unanswered_at_deadline_is_no_reply(self):
        [confirmation] = self.sent_request()
        confirmation.campaign_id.deadline = self.today - timedelta(days=1)
        self.env["account.confirmation.campaign"]._cron_follow_up()
        self.assertEqual(confirmation.state, "no_reply")

    def test_negative_campaign(self):
        """Answers only on disagreement, no second request, silence at the
        deadline is "no exception reported"; a disagreement is disputed."""
        [silent] = self.sent_request(kind="negative", second_request_days=1)
        [disagreeing] = self.sent_request(
            self.vendor, kind="negative", partner_scope="both"
        )
        (silent | disagreeing).sent_date = self.today - timedelta(days=10)
        self.assertIn("answer only if you do not agree", self.page(silent).text)
        self.answer(disagreeing, answer="disagree", their_balance="0", comment="paid")
        Campaign = self.env["account.confirmation.campaign"]
        Campaign._cron_follow_up()
        self.assertFalse(self.second_requests_mails(silent | disagreeing))
        self.assertEqual(silent.state, "opened")
        (silent | disagreeing).campaign_id.deadline = self.today - timedelta(days=1)
        Campaign._cron_follow_up()
        self.assertEqual(silent.state, "no_exception")
        self.assertRecordValues(
            disagreeing, [{"state": "disputed", "difference": -400.0}]
        )

    def test_exceptions_report(self):
        campaign = self.campaign(partner_scope="both")
        campaign.action_select_partners()
        campaign.action_send()
        by_partner = campaign.request_ids.grouped("partner_id")
        customer_request, vendor_request = (
            by_partner[self.customer],
            by_partner[self.vendor],
        )
        self.answer(
            customer_request,
            answer="disagree",
            their_balance="1200",
            comment="Credit note missing",
        )
        self.answer(vendor_request, answer="agree")
        self.assertEqual(campaign._get_exception_requests(), customer_request)
        content, __ = self.env["ir.actions.report"]._render_qweb_pdf(
            "account_document_email.action_report_confirmation_exceptions",
            campaign.ids,
        )
        text = pdf_text(content)
        for expected in ("Confirm Customer", "1,234.50", "1,200.00", "34.50"):
            self.assertIn(expected, text)
        self.assertIn("Credit note missing", text)
        self.assertNotIn("Confirm Vendor", text)
        # the list the auditor exports
        rows = customer_request.export_data(
            ["partner_id", "our_balance", "their_balance", "difference", "comment"]
        )["datas"]
        self.assertEqual(
            rows, [["Confirm Customer", 1234.5, 1200.0, 34.5, "Credit note missing"]]
        )
