import hashlib
import http.client
import importlib.util
import json
import random
import re
import time
from contextlib import contextmanager
from datetime import date, timedelta

import psycopg2
from markupsafe import Markup

from odoo import SUPERUSER_ID, fields, sql_db
from odoo.exceptions import AccessError, UserError
from odoo.modules.module import get_module_path
from odoo.tests import new_test_user, tagged
from odoo.tools import config, mute_logger

from .aged_common import DATE_AT, AgedReceivableMixin
from .common import SMTPTestServer, pdf_parts, pdf_text, real_smtp_delivery
from .document_common import DocumentEmailCase
from .test_reliability import DropAfterDataHandler, ScriptedHandler

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
        cls.auditor = new_test_user(
            cls.env,
            "campaign_auditor",
            groups="account_document_email.group_confirmation_auditor",
            email=AUDITOR,
            company_id=cls.env.company.id,
            company_ids=[cls.env.company.id],
        )

    def campaign(self, **values):
        return self.env["account.confirmation.campaign"].create(
            {
                "name": "Year-end",
                "date_at": DATE_AT,
                "deadline": self.today + timedelta(days=20),
                "reply_email": AUDITOR,
                # the one-time code has its own tests below
                "require_code": False,
                **values,
            }
        )

    def sent_request(self, partner=None, deliver=True, **values):
        """A campaign on ``partner`` alone (the customer by default), approved
        and sent; with ``deliver``, its email taken by the (test) server."""
        partner = partner or self.customer
        campaign = self.campaign(**values)
        campaign.action_select_partners()
        campaign.request_ids.filtered(lambda r: r.partner_id != partner).unlink()
        self.approve_and_send(campaign)
        # the batch is rendered and queued by its scheduled job
        self.process_batches()
        if deliver:
            self.env["mail.mail"].process_email_queue()
        return campaign.request_ids

    @property
    def cron_env(self):
        """The scheduled job's environment (OdooBot)."""
        return self.env(user=SUPERUSER_ID)

    def approve_and_send(self, campaign):
        """What the auditor does: approve the list, then send."""
        campaign.with_user(self.auditor).action_approve()
        campaign.with_user(self.auditor).action_send()

    def token(self, confirmation):
        """The personal link's token, as the email and the letter carry it."""
        return confirmation.with_user(self.auditor)._get_confirmation_token()

    def landing(self, confirmation, token=None):
        """What a GET of the personal link shows (a mail scanner's too)."""
        token = self.token(confirmation) if token is None else token
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
            data={"access_token": self.token(confirmation), "csrf_token": csrf},
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
        values = {
            "access_token": self.token(confirmation),
            "responder_name": "Ana Perez",
            "responder_role": "Accounts payable",
            **data,
        }
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
            self.approve_and_send(campaign)
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
        [confirmation] = self.sent_request(deliver=False)
        # sent once the server took the email, not before
        self.assertEqual(confirmation.state, "queued")
        with real_smtp_delivery():
            self.env["mail.mail"].process_email_queue()
        self.assertEqual(confirmation.state, "sent")
        [received] = self.messages_to(self.customer.email)
        message = received["message"]
        self.assertIn("Balance confirmation at 06/30/2024", message["Subject"])
        url = confirmation.with_user(self.auditor)._get_confirmation_url()
        html = message.get_body(("html",)).get_content()
        self.assertIn(url, html)
        # the link the partner received opens the page
        link = re.search(r'href="[^"]*(/my/confirmation/[^"]+)"', html).group(1)
        self.assertEqual(self.url_open(link.replace("&amp;", "&")).status_code, 200)
        [(filename, content)] = pdf_parts(message)
        self.assertEqual(filename, "Balance Confirmation - Confirm Customer.pdf")
        self.assert_pdf(content)
        text = pdf_text(content)
        self.assertIn("Confirmation of Balance", text)
        self.assertIn("1,234.50", text)
        # the emailed letter is kept in the chatter: it points to the email
        self.assertNotIn(f"/my/confirmation/{confirmation.id}", text)
        self.assertIn("personal link in the email", text)
        # the printed letter (for the post) carries the link and its QR code
        report = self.env["ir.actions.report"].with_user(self.auditor)
        printed, __ = report._render_qweb_pdf(
            "account_document_email.action_report_confirmation_request",
            confirmation.ids,
        )
        printed_text = re.sub(r"\s", "", pdf_text(printed))
        self.assertIn(self.token(confirmation), printed_text)
        self.assertIn(b"/Subtype /Image", printed, "the QR code")

    def test_no_token_a_company_user_can_read(self):
        """Only a digest of the token is stored: a billing manager finds the
        link in no field, no chatter message, no file; the link works."""
        [confirmation] = self.sent_request()
        token = self.token(confirmation)
        manager = new_test_user(
            self.env,
            "token_manager",
            groups="account.group_account_manager",
            company_id=self.env.company.id,
            company_ids=[self.env.company.id],
        )
        mine = confirmation.with_user(manager)
        self.assertFalse(mine.access_token)
        for field in ("access_token_hash", "token_nonce"):
            with self.assertRaises(AccessError):
                mine.read([field])
        # nor makes a letter, whose link would let them answer
        with self.assertRaises(Exception) as refused:
            self.env["ir.actions.report"].with_user(manager)._render_qweb_pdf(
                "account_document_email.action_report_confirmation_request",
                confirmation.ids,
            )
        # raised by the link, wrapped by QWeb
        self.assertIsInstance(refused.exception.__cause__, AccessError)
        self.assertFalse(mine._portal_ensure_token())
        values = str(mine.read()) + str(mine.search_read([("id", "=", mine.id)]))
        self.assertNotIn(token, values)
        bodies = " ".join(mine.message_ids.mapped("body"))
        self.assertIn(f"/my/confirmation/{confirmation.id}", bodies)
        self.assertNotIn(token, bodies)
        for attachment in mine.message_ids.attachment_ids:
            self.assertNotIn(token, re.sub(r"\s", "", pdf_text(attachment.raw)))
        self.assertEqual(self.landing(confirmation).status_code, 200)
        tampered = token[:-1] + ("1" if token.endswith("0") else "0")
        self.assertEqual(self.landing(confirmation, tampered).status_code, 404)

    def test_tokens_sent_before_the_upgrade_are_hashed(self):
        """The migration keeps a digest of the token already sent and clears
        it: the old link still opens the page, the new one too."""
        [confirmation] = self.sent_request(require_code=True)
        old = "0b7b9c8e-3a52-4c1e-9a55-5f3f0b6c1d2e"
        # as sent before the upgrade: no approved address, the code column
        # created with its default
        self.env.cr.execute(
            "UPDATE account_confirmation_request SET access_token = %s,"
            " access_token_hash = NULL, token_nonce = NULL,"
            " approved_email = NULL WHERE id = %s",
            (old, confirmation.id),
        )
        self.env.invalidate_all()
        path = get_module_path("account_document_email")
        spec = importlib.util.spec_from_file_location(
            "post_migrate", f"{path}/migrations/18.0.1.2.0/post-migrate.py"
        )
        migration = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(migration)
        migration.migrate(self.env.cr, "18.0.1.1.0")
        self.env.invalidate_all()
        self.assertFalse(confirmation.access_token)
        # sent campaigns keep working as they were sent
        self.assertFalse(confirmation.campaign_id.require_code)
        self.assertEqual(confirmation.approved_email, self.customer.email)
        self.assertEqual(self.landing(confirmation, old).status_code, 200)
        self.assertEqual(self.landing(confirmation).status_code, 200)
        self.assertEqual(self.landing(confirmation, old[:-1] + "f").status_code, 404)

    def test_partner_without_email_stays_draft_until_posted(self):
        """No email: the request waits for the post; once the auditor records
        the letter as posted, its printed link answers."""
        self.customer.email = False
        # the code on, as by default: the printed letter is the channel
        campaign = self.campaign(require_code=True)
        campaign.action_select_partners()
        self.approve_and_send(campaign)
        request = campaign.request_ids.filtered(lambda r: r.partner_id == self.customer)
        self.assertEqual(request.state, "draft")
        self.assertEqual(self.page(request).status_code, 404)
        request.with_user(self.auditor).action_mark_posted()
        self.assertEqual(request.state, "posted")
        self.assertEqual(request.event_ids.mapped("event_type"), ["posted"])
        self.assertEqual(self.answer(request, answer="agree").status_code, 200)
        self.assertEqual(request.state, "confirmed")

    # ------------------------------------------------------------------
    # The public page
    # ------------------------------------------------------------------

    def test_tour_visitor_disputes_the_balance(self):
        [confirmation] = self.sent_request()
        self.start_tour(
            # the personal link as the email carries it (portal.mixin's own
            # links never carry the token)
            confirmation.with_user(self.auditor)
            ._get_confirmation_url()
            .removeprefix(confirmation.get_base_url()),
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
            data={"access_token": self.token(second)},
        )
        self.assertEqual(response.status_code, 400)
        self.assertEqual(second.state, "sent")

    def test_tampered_token_and_expired_link_not_found(self):
        [confirmation] = self.sent_request()
        token = self.token(confirmation)
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
        campaign.sudo().deadline = self.today - timedelta(days=31)
        self.assertEqual(self.page(confirmation).status_code, 404)
        campaign.sudo().deadline = self.today - timedelta(days=30)
        self.assertEqual(self.page(confirmation).status_code, 200)
        campaign.with_user(self.auditor).action_close()
        self.assertEqual(self.page(confirmation).status_code, 404)

    def test_form_needs_csrf_token(self):
        [confirmation] = self.sent_request()
        response = self.url_open(
            f"/my/confirmation/{confirmation.id}/answer",
            data={"access_token": self.token(confirmation), "answer": "agree"},
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
                confirmation.id, "write", token=self.token(confirmation)
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
        token = self.token(confirmation)
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
                f"{url}/answer", data={"access_token": self.token(confirmation)}
            ),
            "413": self.url_open(
                f"{url}/open",
                data={"access_token": self.token(confirmation), "pad": "x" * 70000},
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
        disputed.sudo().state = "sent"
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
        (waiting | answered).sudo().sent_date = self.today - timedelta(days=14)
        answered._record_answer(True, ip="127.0.0.1")
        Campaign = self.cron_env["account.confirmation.campaign"]
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
        confirmation.campaign_id.sudo().deadline = self.today - timedelta(days=1)
        self.cron_env["account.confirmation.campaign"]._cron_follow_up()
        self.assertEqual(confirmation.state, "no_reply")

    def test_negative_campaign(self):
        """Answers only on disagreement, no second request, silence at the
        deadline is "no exception reported"; a disagreement is disputed."""
        [silent] = self.sent_request(kind="negative", second_request_days=1)
        [disagreeing] = self.sent_request(
            self.vendor, kind="negative", partner_scope="both"
        )
        (silent | disagreeing).sudo().sent_date = self.today - timedelta(days=10)
        self.assertIn("answer only if you do not agree", self.page(silent).text)
        self.answer(disagreeing, answer="disagree", their_balance="0", comment="paid")
        Campaign = self.cron_env["account.confirmation.campaign"]
        Campaign._cron_follow_up()
        self.assertFalse(self.second_requests_mails(silent | disagreeing))
        self.assertEqual(silent.state, "opened")
        (silent | disagreeing).campaign_id.sudo().deadline = self.today - timedelta(
            days=1
        )
        Campaign._cron_follow_up()
        self.assertEqual(silent.state, "no_exception")
        self.assertRecordValues(
            disagreeing, [{"state": "disputed", "difference": -400.0}]
        )

    def test_exceptions_report(self):
        campaign = self.campaign(partner_scope="both")
        campaign.action_select_partners()
        self.approve_and_send(campaign)
        self.process_batches()
        self.env["mail.mail"].process_email_queue()
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

    # ------------------------------------------------------------------
    # Evidence that shows tampering (issue 21 §2)
    # ------------------------------------------------------------------

    def evidence_text(self, campaign):
        content, __ = self.env["ir.actions.report"]._render_qweb_pdf(
            "account_document_email.action_report_confirmation_evidence",
            campaign.ids,
        )
        self.assert_pdf(content)
        return pdf_text(content)

    def test_evidence_chain_records_and_shows_tampering(self):
        [confirmation] = self.sent_request()
        self.answer(
            confirmation,
            answer="disagree",
            their_balance="1000",
            comment="Paid in June",
            responder_name="Ana Perez",
            responder_role="Head of accounts payable",
            files={"attachment": ("ledger.csv", b"INV;1000\n", "text/csv")},
        )
        campaign = confirmation.campaign_id
        events = campaign.event_ids.sorted("sequence")
        self.assertEqual(
            events.mapped("event_type"),
            ["approved", "sent", "delivered", "opened", "answered"],
        )
        self.assertEqual(events.mapped("sequence"), [1, 2, 3, 4, 5])
        answered = events[-1]
        payload = json.loads(answered.payload)
        self.assertEqual(payload["their_balance"], 1000.0)
        self.assertEqual(payload["comment"], "Paid in June")
        self.assertEqual(
            payload["file_sha256"], hashlib.sha256(b"INV;1000\n").hexdigest()
        )
        self.assertEqual(payload["ip"], "127.0.0.1")
        self.assertIn("python-requests", payload["user_agent"])
        self.assertEqual(payload["responder_name"], "Ana Perez")
        self.assertEqual(payload["responder_role"], "Head of accounts payable")
        self.assertEqual(answered.previous_hash, events[-2].hash)
        self.assertEqual(campaign._check_evidence(), (True, None))
        text = self.evidence_text(campaign)
        self.assertIn("Chain intact", text)
        # the head of the chain, for the auditor's working papers
        self.assertIn(f"Entry5,hash{events[-1].hash}", re.sub(r"\s", "", text))
        # the ORM refuses every change, the superuser's included
        for change in (
            lambda: answered.write({"payload": "{}"}),
            lambda: answered.unlink(),
            lambda: self.env["account.confirmation.event"].create(
                {"campaign_id": campaign.id, "sequence": 9, "event_type": "sent"}
            ),
        ):
            with self.assertRaisesRegex(UserError, "append-only"):
                change()
        # a change made in the database shows on the report
        tampered = payload | {"their_balance": 1234.5}
        self.env.cr.execute(
            "UPDATE account_confirmation_event SET payload = %s WHERE id = %s",
            (json.dumps(tampered, sort_keys=True), answered.id),
        )
        self.env.invalidate_all()
        self.assertEqual(campaign._check_evidence(), (False, answered))
        text = self.evidence_text(campaign)
        self.assertIn("Chain broken at entry 5", text)
        self.assertNotIn("Chain intact", text)
        # a removed entry too
        self.env.cr.execute(
            "DELETE FROM account_confirmation_event WHERE id = %s", (events[2].id,)
        )
        self.env.invalidate_all()
        self.assertEqual(campaign._check_evidence(), (False, events[3]))

    # ------------------------------------------------------------------
    # The auditor's seat (issue 21 §1)
    # ------------------------------------------------------------------

    def test_auditor_approves_sends_receives_and_closes(self):
        company = self.env.company
        auditor = new_test_user(
            self.env,
            "confirm_auditor",
            groups="account_document_email.group_confirmation_auditor",
            email="partner@auditfirm.example.com",
            company_id=company.id,
            company_ids=[company.id],
        )
        manager = new_test_user(
            self.env,
            "confirm_manager",
            groups="account.group_account_manager",
            company_id=company.id,
            company_ids=[company.id],
        )
        self.assertFalse(auditor.has_group("account.group_account_invoice"))
        campaign = (
            self.env["account.confirmation.campaign"]
            .with_user(manager)
            .create(
                {
                    "name": "Audited",
                    "date_at": DATE_AT,
                    "deadline": self.today + timedelta(days=20),
                }
            )
        )
        self.assertFalse(campaign.reply_email, "never the company's own address")
        campaign.action_select_partners()
        campaign.request_ids.filtered(lambda r: r.partner_id != self.customer).unlink()
        campaign.require_code = False
        request = campaign.request_ids
        with self.assertRaises(AccessError):
            campaign.action_approve()
        with self.assertRaises(UserError):
            campaign.write({"state": "approved"})
        with self.assertRaises(UserError):
            request.write({"state": "confirmed", "their_balance": 1234.5})
        mine = campaign.with_user(auditor)
        mine.action_approve()
        self.assertRecordValues(
            mine,
            [
                {
                    "state": "approved",
                    "auditor_id": auditor.id,
                    "reply_email": "partner@auditfirm.example.com",
                }
            ],
        )
        self.assertEqual(request.approved_email, self.customer.email)
        # after approval the company changes nothing the auditor approved
        for field, value in (
            ("reply_email", "billing@company.example.com"),
            ("deadline", self.today + timedelta(days=90)),
            ("link_grace_days", 365),
            ("selection_rule", "largest"),
        ):
            with self.assertRaisesRegex(UserError, "approved", msg=field):
                campaign.write({field: value})
        for values in ({"our_balance": 1.0}, {"partner_id": self.vendor.id}):
            with self.assertRaises(UserError):
                request.write(values)
        for action in (
            request.unlink,
            campaign.unlink,
            campaign.action_select_partners,
        ):
            with self.assertRaises(UserError):
                action()
        with self.assertRaises(AccessError):
            campaign.action_send()
        mine.action_send()
        self.process_batches()
        self.env["mail.mail"].process_email_queue()
        self.assertEqual(request.state, "sent")
        self.answer(request, answer="agree")
        self.assertEqual(request.state, "confirmed")
        [copy] = self.env["mail.mail"].search(
            [("res_id", "=", request.id), ("subject", "like", "answered by")]
        )
        self.assertEqual(copy.email_to, "partner@auditfirm.example.com")
        # the company reads the outcome, never writes or closes it
        self.assertEqual(request.with_user(manager).state, "confirmed")
        with self.assertRaises(UserError):
            request.write({"state": "disputed"})
        with self.assertRaises(AccessError):
            campaign.action_close()
        self.assertEqual(campaign.state, "sent")
        mine.action_close()
        self.assertEqual(campaign.state, "closed")
        self.assertEqual(campaign.event_ids[-1:].event_type, "closed")
        self.assertEqual(self.landing(request).status_code, 404)

    def test_address_changed_after_approval_gets_nothing(self):
        auditor = new_test_user(
            self.env,
            "confirm_auditor2",
            groups="account_document_email.group_confirmation_auditor",
            email="auditor2@auditfirm.example.com",
        )
        campaign = self.campaign()
        campaign.action_select_partners()
        campaign.request_ids.filtered(lambda r: r.partner_id != self.customer).unlink()
        campaign.with_user(auditor).action_approve()
        self.customer.email = "someone.else@company.example.com"
        campaign.with_user(auditor).action_send()
        self.process_batches()
        self.env["mail.mail"].process_email_queue()
        self.assertFalse(
            self.env["mail.mail"].search(
                [("email_to", "ilike", "someone.else@company.example.com")]
            )
        )
        self.assertEqual(campaign.request_ids.state, "undelivered")
        self.assertIn("no recipient", campaign.request_ids.delivery_note)

    # ------------------------------------------------------------------
    # Delivery truth (issue 21 §4)
    # ------------------------------------------------------------------

    def test_undelivered_requests_never_count_as_no_exception(self):
        """Negative campaign: an email skipped (foo@bar) and one bounced end
        undelivered at the deadline, not "no exception"."""
        self.customer.email = "foo@bar"
        campaign = self.campaign(kind="negative", partner_scope="both")
        campaign.action_select_partners()
        campaign.request_ids.filtered(
            lambda r: r.partner_id not in (self.customer | self.vendor)
        ).unlink()
        self.approve_and_send(campaign)
        self.process_batches()
        self.env["mail.mail"].process_email_queue()
        by_partner = campaign.request_ids.grouped("partner_id")
        skipped, bounced = by_partner[self.customer], by_partner[self.vendor]
        # skipped by its batch: undelivered at once, with the reason
        self.assertEqual(skipped.state, "undelivered")
        self.assertIn("not a valid email address", skipped.delivery_note)
        self.assertEqual(bounced.state, "sent")
        # what core's bounce handling records on the email's notification
        self.env["mail.notification"].search(
            [
                ("mail_message_id.model", "=", bounced._name),
                ("mail_message_id.res_id", "=", bounced.id),
            ]
        ).sudo().notification_status = "bounce"
        # time passes (the test moves the deadline; nobody else can)
        campaign.sudo().deadline = self.today - timedelta(days=1)
        self.cron_env["account.confirmation.campaign"]._cron_follow_up()
        self.assertEqual((skipped | bounced).mapped("state"), ["undelivered"] * 2)
        self.assertIn("bounced", bounced.event_ids.mapped("event_type"))
        self.assertIn("undelivered", skipped.event_ids.mapped("event_type"))

    # ------------------------------------------------------------------
    # Who answered (issue 21 §3)
    # ------------------------------------------------------------------

    def emailed_code(self, address):
        # the page sends it after commit: HttpCase's cursor drops that hook
        codes = (
            self.env["mail.mail"]
            .sudo()
            .search([("email_to", "=", address), ("model", "=", False)])
        )
        with real_smtp_delivery():
            codes.filtered(lambda m: m.state == "outgoing").send()
        [received] = self.messages_to(address)
        body = received["message"].get_body(("html",)).get_content()
        return re.search(r"<strong>(\d{6})</strong>", body).group(1)

    def test_answer_needs_the_code_emailed_to_the_approved_address(self):
        [confirmation] = self.sent_request(require_code=True)
        self.assertTrue(confirmation.campaign_id.require_code)
        with real_smtp_delivery():
            page = self.page(confirmation)
        self.assertIn('name="code"', page.text)
        code = self.emailed_code(self.customer.email)
        # the code is on no message a company user reads
        self.assertNotIn(code, " ".join(confirmation.message_ids.mapped("body")))
        for wrong in ("", "12345x", f"{(int(code) + 1) % 10**6:06d}"):
            response = self.answer(confirmation, answer="agree", code=wrong)
            self.assertIn("code is wrong", response.text)
            self.assertEqual(confirmation.state, "opened")
        # no new code while one runs: the same code still works
        self.answer(confirmation, answer="agree", code=code)
        self.assertEqual(confirmation.state, "confirmed")
        self.assertIn("code_checked", confirmation.event_ids.mapped("event_type"))
        self.assertEqual(len(self.messages_to(self.customer.email)), 1)

    def test_code_tries_limited(self):
        [confirmation] = self.sent_request(require_code=True)
        with real_smtp_delivery():
            self.page(confirmation)
        code = self.emailed_code(self.customer.email)
        wrong = f"{(int(code) + 1) % 10**6:06d}"
        for __ in range(5):
            self.answer(confirmation, answer="agree", code=wrong)
        response = self.answer(confirmation, answer="agree", code=code)
        self.assertIn("code is wrong", response.text)
        self.assertEqual(confirmation.state, "opened")

    def test_answer_needs_name_and_position(self):
        [confirmation] = self.sent_request()
        response = self.answer(confirmation, answer="agree", responder_role="")
        self.assertIn("Enter your name and your position", response.text)
        self.assertEqual(confirmation.state, "opened")
        self.answer(confirmation, answer="agree")
        self.assertRecordValues(
            confirmation,
            [
                {
                    "state": "confirmed",
                    "responder_name": "Ana Perez",
                    "responder_role": "Accounts payable",
                }
            ],
        )

    # ------------------------------------------------------------------
    # Alternative procedures and the campaign report (issue 21 §5)
    # ------------------------------------------------------------------

    def test_alternative_procedures_and_campaign_summary(self):
        """A customer who never answered: the worksheet lists its invoice
        open at the date, the payment after the date that settled part of it
        and what is still unexplained; the campaign report counts every
        state and the share confirmed."""
        [silent] = self.sent_request()
        answered = self.sent_request(self.vendor, partner_scope="vendor")
        self.answer(answered, answer="agree")
        self.pay(self.invoice, 1000, DATE_AT + timedelta(days=5))
        silent.campaign_id.sudo().deadline = self.today - timedelta(days=1)
        self.cron_env["account.confirmation.campaign"]._cron_follow_up()
        self.assertEqual(silent.state, "no_reply")
        campaign = silent.campaign_id
        self.assertEqual(campaign._get_alternative_requests(), silent)
        [item] = silent._get_alternative_procedures()
        self.assertEqual(item["name"], self.invoice.name)
        self.assertAlmostEqual(item["open_amount"], 1234.5)
        self.assertEqual(
            [(r["amount"], r["date"]) for r in item["receipts"]],
            [(1000.0, DATE_AT + timedelta(days=5))],
        )
        self.assertAlmostEqual(item["unexplained"], 234.5)
        content, __ = self.env["ir.actions.report"]._render_qweb_pdf(
            "account_document_email.action_report_confirmation_alternative",
            campaign.ids,
        )
        text = pdf_text(content)
        for expected in (
            "Alternative Procedures",
            self.invoice.name,
            "1,000.00",
            "234.50",
        ):
            self.assertIn(expected, text)
        # the vendor's campaign: everything confirmed
        rows, share = answered.campaign_id._get_state_summary()
        self.assertIn(("Confirmed", 1, 400.0), rows)
        self.assertEqual(share, 100.0)
        rows, share = campaign._get_state_summary()
        self.assertIn(("No Reply", 1, 1234.5), rows)
        self.assertEqual(share, 0.0)
        content, __ = self.env["ir.actions.report"]._render_qweb_pdf(
            "account_document_email.action_report_confirmation_exceptions",
            campaign.ids,
        )
        text = pdf_text(content)
        self.assertIn("No Reply", text)
        self.assertIn("alternative procedures needed", text)

    def test_chunked_post_refused(self):
        """A chunked body (no Content-Length) gets 411 before it is read.
        Sent over a socket of its own, synchronously: the server answers
        before the test goes on, and only the status and headers are read."""
        [confirmation] = self.sent_request()
        connection = http.client.HTTPConnection(
            "127.0.0.1", config["http_port"], timeout=30
        )
        try:
            connection.putrequest("POST", f"/my/confirmation/{confirmation.id}/answer")
            connection.putheader("Transfer-Encoding", "chunked")
            connection.putheader("Content-Type", "application/x-www-form-urlencoded")
            connection.endheaders()
            connection.send(b"d\r\nanswer=agree&\r\n0\r\n\r\n")
            response = connection.getresponse()
            status, headers = response.status, dict(response.getheaders())
        finally:
            connection.close()
        self.assertEqual(status, 411)
        for name, value in PAGE_HEADERS.items():
            self.assertEqual(headers.get(name), value, name)
        self.assertEqual(confirmation.state, "sent")

    # ------------------------------------------------------------------
    # Holes found by the review of issue 21
    # ------------------------------------------------------------------

    def manager(self, login="guard_manager"):
        """A billing manager of the company, not the auditor."""
        return new_test_user(
            self.env,
            login,
            groups="account.group_account_manager",
            company_id=self.env.company.id,
            company_ids=[self.env.company.id],
        )

    def test_manager_creates_nothing_past_draft(self):
        """Created by a manager: only a draft campaign, only requests of a
        draft campaign with nothing answered or approved; the auditor's Send
        mails only the requests the approval recorded."""
        manager = self.manager()
        Campaign = self.env["account.confirmation.campaign"].with_user(manager)
        values = {
            "name": "Forged",
            "date_at": DATE_AT,
            "deadline": self.today + timedelta(days=20),
        }
        for forged in (
            {"state": "closed"},
            {"state": "approved", "auditor_id": self.auditor.id},
            {"auditor_id": self.auditor.id},
            {"evidence_head_sequence": 3},
        ):
            with self.assertRaises(UserError):
                Campaign.create(values | forged)
        with self.assertRaises(UserError):
            Campaign.with_context(default_state="sent").create(values)
        campaign = self.campaign()
        campaign.action_select_partners()
        campaign.request_ids.filtered(lambda r: r.partner_id != self.customer).unlink()
        Request = self.env["account.confirmation.request"].with_user(manager)
        injected = {
            "campaign_id": campaign.id,
            "partner_id": self.vendor.id,
            "currency_id": self.env.company.currency_id.id,
            "our_balance": 1.0,
        }
        for forged in (
            {"approved_email": "me@company.example.com"},
            {"state": "confirmed"},
            {"their_balance": 5.0},
        ):
            with self.assertRaises(AccessError):
                Request.create(injected | forged)
        campaign.with_user(self.auditor).action_approve()
        with self.assertRaises(UserError):
            Request.create(injected)
        # a request added behind the ORM's back after the approval is never
        # sent by the auditor's Send
        late = Request.sudo().create(
            injected | {"approved_email": "me@company.example.com"}
        )
        campaign.with_user(self.auditor).action_send()
        self.assertEqual(late.state, "draft")
        self.assertEqual(
            campaign.request_ids.filtered(lambda r: r.state == "queued").partner_id,
            self.customer,
        )

    def test_only_the_requests_own_email_delivers_it(self):
        """A chatter message sent from the request says nothing of its
        delivery; a batch is cancelled by the auditor only, and what it
        leaves unsent is undelivered."""
        [confirmation] = self.sent_request(deliver=False)
        self.assertEqual(confirmation.state, "queued")
        manager = self.manager()
        outsider = self.env["res.partner"].create(
            {"name": "Outsider", "email": "outsider@elsewhere.example.com"}
        )
        # kept queued (not sent at once, as tests do by default) to send it
        # alone below
        message = (
            confirmation.with_user(manager)
            .with_context(mail_notify_force_send=False)
            .message_post(
                body="Hello",
                partner_ids=outsider.ids,
                message_type="comment",
                subtype_xmlid="mail.mt_comment",
            )
        )
        chatter_mail = self.env["mail.mail"].search(
            [("mail_message_id", "=", message.id)]
        )
        self.assertTrue(chatter_mail)
        chatter_mail.send()
        self.assertEqual(chatter_mail.exists().state or "sent", "sent")
        self.assertEqual(confirmation.state, "queued")
        self.assertNotIn("delivered", confirmation.event_ids.mapped("event_type"))
        # the request's own email does
        self.env["mail.mail"].process_email_queue()
        self.assertEqual(confirmation.state, "sent")

        # a batch not yet processed: the manager cannot cancel it
        campaign = self.campaign(name="Cancelled", partner_scope="vendor")
        campaign.action_select_partners()
        campaign.request_ids.filtered(lambda r: r.partner_id != self.vendor).unlink()
        self.approve_and_send(campaign)
        request = campaign.request_ids
        self.assertEqual(request.state, "queued")
        batch = (
            self.env["document.email.batch.line"]
            .search(
                [
                    ("res_model", "=", request._name),
                    ("res_id", "=", request.id),
                ]
            )
            .batch_id
        )
        with self.assertRaises(AccessError):
            batch.with_user(manager).action_cancel()
        with self.assertRaises(AccessError):
            batch.with_user(manager).action_retry_failed()
        batch.with_user(self.auditor).action_cancel()
        self.assertEqual(request.state, "undelivered")
        self.assertIn("undelivered", request.event_ids.mapped("event_type"))

    def test_chatter_notification_carries_no_token(self):
        """Core's portal notification makes its link under sudo: the link
        it puts in the email opens nothing."""
        [confirmation] = self.sent_request()
        manager = self.manager()
        message = (
            confirmation.with_user(manager)
            .with_context(mail_notify_force_send=False)
            .message_post(
                body="About your balance",
                partner_ids=self.customer.ids,
                message_type="comment",
                subtype_xmlid="mail.mt_comment",
            )
        )
        mails = self.env["mail.mail"].search([("mail_message_id", "=", message.id)])
        self.assertTrue(mails)
        body = " ".join(mails.mapped("body_html")).replace("&amp;", "&")
        self.assertIn("/mail/view", body, "the portal button is there")
        self.assertNotIn(self.token(confirmation), body)
        for token in re.findall(r"access_token=([^&\"'\s<]*)", body):
            self.assertFalse(confirmation._check_confirmation_token(token))
        self.assertFalse(confirmation.sudo()._portal_ensure_token())

    def test_undelivered_request_posted_answers_without_code(self):
        """An email that never left (foo@bar): the auditor posts the letter;
        with the code on (the default) the letter is the channel."""
        self.customer.email = "foo@bar"
        [confirmation] = self.sent_request(require_code=True)
        self.assertEqual(confirmation.state, "undelivered")
        with self.assertRaises(AccessError):
            confirmation.with_user(self.manager()).action_mark_posted()
        confirmation.with_user(self.auditor).action_mark_posted()
        self.assertRecordValues(confirmation, [{"state": "posted", "by_post": True}])
        page = self.page(confirmation)
        self.assertNotIn('name="code"', page.text)
        self.assertEqual(self.answer(confirmation, answer="agree").status_code, 200)
        self.assertEqual(confirmation.state, "confirmed")

    def test_answer_file_cannot_change(self):
        """The answer's file: no write, no delete through the ORM; a change
        made anyway shows on the evidence report."""
        [confirmation] = self.sent_request()
        self.answer(
            confirmation,
            answer="disagree",
            their_balance="1000",
            files={"attachment": ("ledger.csv", b"INV;1000\n", "text/csv")},
        )
        file = confirmation.answer_attachment_id
        self.assertTrue(file)
        manager = self.manager()
        with self.assertRaises(UserError):
            file.with_user(manager).write({"raw": b"INV;1234.5\n"})
        with self.assertRaises(UserError):
            file.with_user(manager).unlink()
        self.assertEqual(file.raw, b"INV;1000\n")
        text = self.evidence_text(confirmation.campaign_id)
        self.assertIn("matches its recorded digest", text)
        file.sudo().write({"raw": b"INV;1234.5\n"})
        text = self.evidence_text(confirmation.campaign_id)
        self.assertIn("Answer file changed", text)

    def test_evidence_needs_approval_and_head(self):
        """An empty chain of a sent campaign, or one whose last entries were
        removed, is no evidence; the head is written by the chain alone; the
        entries cover the user's login."""
        [confirmation] = self.sent_request()
        campaign = confirmation.campaign_id
        self.assertEqual(campaign._check_evidence(), (True, None))
        with self.assertRaises(UserError):
            campaign.sudo().write({"evidence_head_sequence": 1})
        events = campaign.event_ids.sorted("sequence")
        self.assertEqual(events[-1].user_login, events[-1].user_id.login)
        # the last entry removed in the database
        self.env.cr.execute(
            "DELETE FROM account_confirmation_event WHERE id = %s", (events[-1].id,)
        )
        self.env.invalidate_all()
        self.assertEqual(campaign._check_evidence(), (False, None))
        self.assertIn("Evidence incomplete", self.evidence_text(campaign))
        # every entry removed
        self.env.cr.execute(
            "DELETE FROM account_confirmation_event WHERE campaign_id = %s",
            (campaign.id,),
        )
        self.env.invalidate_all()
        self.assertEqual(campaign._check_evidence(), (False, None))
        # the login is hashed
        [other] = self.sent_request(partner=self.vendor, partner_scope="vendor")
        entry = other.campaign_id.event_ids.sorted("sequence")[0]
        self.env.cr.execute(
            "UPDATE account_confirmation_event SET user_login = 'someone' "
            "WHERE id = %s",
            (entry.id,),
        )
        self.env.invalidate_all()
        self.assertEqual(other.campaign_id._check_evidence(), (False, entry))

    def test_code_locked_after_lifetime_failures(self):
        """Ten wrong codes over the request's life lock it: logged, the
        auditor told, no answer online any more."""
        [confirmation] = self.sent_request(require_code=True)
        confirmation._send_answer_code()
        for __ in range(5):
            self.assertFalse(confirmation._check_answer_code("wrong!"))
        # the code expires; a new one, five more wrong tries
        confirmation.sudo().code_expiry = fields.Datetime.now() - timedelta(minutes=1)
        self.assertTrue(confirmation._send_answer_code())
        for __ in range(5):
            self.assertFalse(confirmation._check_answer_code("wrong!"))
        types = confirmation.event_ids.mapped("event_type")
        self.assertEqual(types.count("code_failed"), 10)
        self.assertEqual(types.count("code_locked"), 1)
        self.assertTrue(confirmation.code_locked)
        self.assertFalse(confirmation._is_answerable())
        self.assertFalse(confirmation._send_answer_code())
        locked = self.env["mail.mail"].search(
            [("email_to", "=", AUDITOR), ("subject", "ilike", "locked")]
        )
        self.assertTrue(locked)
        self.assertEqual(confirmation.campaign_id._check_evidence(), (True, None))

    # ------------------------------------------------------------------
    # Re-review (context keys, locks, old bounces, planted tokens)
    # ------------------------------------------------------------------

    def test_context_key_puts_no_token_in_a_notification(self):
        """A manager passing ``confirmation_link`` in the context (as
        /mail/message/post lets them) gets no token in the notification."""
        [confirmation] = self.sent_request()
        message = (
            confirmation.with_user(self.manager())
            .with_context(confirmation_link=True, mail_notify_force_send=False)
            .message_post(
                body="About your balance",
                partner_ids=self.customer.ids,
                message_type="comment",
                subtype_xmlid="mail.mt_comment",
            )
        )
        mails = self.env["mail.mail"].search([("mail_message_id", "=", message.id)])
        self.assertTrue(mails)
        body = " ".join(mails.mapped("body_html")).replace("&amp;", "&")
        self.assertIn("/mail/view", body, "the portal button is there")
        self.assertNotIn(self.token(confirmation), body)
        for token in re.findall(r"access_token=([^&\"'\s<]*)", body):
            self.assertFalse(confirmation._check_confirmation_token(token))
        self.assertFalse(
            confirmation.with_context(confirmation_link=True)
            .sudo()
            ._portal_ensure_token()
        )

    def test_locked_request_is_never_no_exception(self):
        """Negative campaign: a request locked by wrong codes could not be
        answered; at the deadline it is no reply."""
        [locked, silent] = self.sent_request(kind="negative") | self.sent_request(
            self.vendor, kind="negative", partner_scope="both"
        )
        locked.sudo().code_locked = True
        # delivered with time to answer before the deadline
        (locked | silent).sudo().sent_date = self.today - timedelta(days=10)
        (locked | silent).campaign_id.sudo().deadline = self.today - timedelta(days=1)
        self.cron_env["account.confirmation.campaign"]._cron_follow_up()
        self.assertEqual(locked.state, "no_reply")
        self.assertEqual(silent.state, "no_exception")

    def test_posted_after_a_bounce_stays_posted(self):
        """Bounced, then posted by the auditor: the old bounce never makes it
        undelivered again."""
        [confirmation] = self.sent_request()
        self.env["mail.notification"].search(
            [
                ("mail_message_id.model", "=", confirmation._name),
                ("mail_message_id.res_id", "=", confirmation.id),
            ]
        ).sudo().notification_status = "bounce"
        Request = self.cron_env["account.confirmation.request"]
        Request._detect_bounces()
        self.assertEqual(confirmation.state, "undelivered")
        confirmation.with_user(self.auditor).action_mark_posted()
        Request._close_unanswered()
        self.cron_env["account.confirmation.campaign"]._cron_follow_up()
        self.assertRecordValues(confirmation, [{"state": "posted", "by_post": True}])
        self.assertTrue(confirmation._is_answerable())
        self.assertEqual(self.answer(confirmation, answer="agree").status_code, 200)
        self.assertEqual(confirmation.state, "confirmed")

    def test_planted_token_opens_nothing(self):
        """A token digest a manager plants (context default) is refused; one
        planted behind the ORM's back is replaced at the approval."""
        planted = "planted-token-0123456789"
        digest = hashlib.sha256(planted.encode()).hexdigest()
        campaign = self.campaign()
        manager = self.manager()
        with self.assertRaises(AccessError):
            campaign.with_user(manager).with_context(
                default_access_token_hash=digest
            ).action_select_partners()
        # without the planted default the manager selects the partners
        campaign.with_user(manager).action_select_partners()
        campaign.request_ids.filtered(lambda r: r.partner_id != self.customer).unlink()
        [confirmation] = campaign.request_ids
        confirmation.sudo().write({"access_token_hash": digest, "code_failures": 9})
        self.assertTrue(confirmation._check_confirmation_token(planted))
        self.approve_and_send(campaign)
        self.assertFalse(confirmation.sudo().code_failures)
        self.assertFalse(confirmation._check_confirmation_token(planted))
        self.assertEqual(self.landing(confirmation, planted).status_code, 404)
        self.assertEqual(self.landing(confirmation).status_code, 200)

    # ------------------------------------------------------------------
    # Second re-review (postal address, posted links, defaults, files)
    # ------------------------------------------------------------------

    def test_letter_prints_the_approved_postal_address(self):
        """The letter goes to the postal address the auditor approved: a
        manager's later change of the partner's street prints nowhere, and
        no company user writes the approved address."""
        self.customer.write({"street": "1 Approved Street", "city": "Lisbon"})
        campaign = self.campaign()
        campaign.action_select_partners()
        campaign.request_ids.filtered(lambda r: r.partner_id != self.customer).unlink()
        campaign.with_user(self.auditor).action_approve()
        [request] = campaign.request_ids
        self.assertIn("1 Approved Street", request.approved_address)
        approved = campaign.event_ids.filtered(lambda e: e.event_type == "approved")
        self.assertIn("1 Approved Street", approved.payload)
        manager = self.manager()
        manager.groups_id |= self.env.ref("base.group_partner_manager")
        self.customer.with_user(manager).street = "99 Forged Road"
        for values in (
            {"approved_address": "99 Forged Road"},
            {"approved_address": False},
        ):
            with self.assertRaises(AccessError):
                request.with_user(manager).write(values)
        html, __ = (
            self.env["ir.actions.report"]
            .with_user(self.auditor)
            ._render_qweb_html(
                "account_document_email.action_report_confirmation_request",
                request.ids,
            )
        )
        self.assertIn("1 Approved Street", html.decode())
        self.assertNotIn("99 Forged Road", html.decode())

    def test_posting_an_undelivered_request_renews_its_link(self):
        """Bounced, then posted by the auditor: the link the email carried
        stops working; the letter printed with the posting carries the new
        one, which opens the page."""
        [confirmation] = self.sent_request()
        emailed = self.token(confirmation)
        self.env["mail.notification"].search(
            [
                ("mail_message_id.model", "=", confirmation._name),
                ("mail_message_id.res_id", "=", confirmation.id),
            ]
        ).sudo().notification_status = "bounce"
        self.cron_env["account.confirmation.request"]._detect_bounces()
        self.assertEqual(confirmation.state, "undelivered")
        self.assertEqual(self.landing(confirmation, emailed).status_code, 200)
        action = confirmation.with_user(self.auditor).action_mark_posted()
        self.assertEqual(
            action["report_name"], "account_document_email.report_confirmation_request"
        )
        posted = self.token(confirmation)
        self.assertNotEqual(posted, emailed)
        self.assertEqual(self.landing(confirmation, emailed).status_code, 404)
        self.assertEqual(self.landing(confirmation, posted).status_code, 200)
        letter, __ = (
            self.env["ir.actions.report"]
            .with_user(self.auditor)
            ._render_qweb_pdf(action["report_name"], confirmation.ids)
        )
        text = re.sub(r"\s", "", pdf_text(letter))
        self.assertIn(posted, text)
        self.assertNotIn(emailed, text)

    def test_evidence_fields_refused_from_context_defaults(self):
        """The head of the evidence, the approval and what the approval or an
        answer records are refused when given as values or context defaults
        at create (the superuser's head too)."""
        manager = self.manager()
        values = {
            "name": "Defaults",
            "date_at": DATE_AT,
            "deadline": self.today + timedelta(days=20),
        }
        Campaign = self.env["account.confirmation.campaign"]
        heads = (
            {"default_evidence_head_sequence": 7},
            {"default_evidence_head_hash": "f" * 64},
        )
        for defaults in heads + (
            {"default_auditor_id": self.auditor.id},
            {"default_approval_date": fields.Datetime.now()},
        ):
            with self.assertRaises(UserError, msg=str(defaults)):
                Campaign.with_user(manager).with_context(**defaults).create(values)
        for defaults in heads:
            with self.assertRaises(UserError, msg=str(defaults)):
                Campaign.sudo().with_context(**defaults).create(values)
            head = {key.removeprefix("default_"): v for key, v in defaults.items()}
            with self.assertRaises(UserError, msg=str(head)):
                Campaign.sudo().create(values | head)
        campaign = self.campaign()
        for defaults in (
            {"default_approved_address": "99 Forged Road"},
            {"default_approved_email": "me@company.example.com"},
            {"default_by_post": True},
            {"default_answer_date": fields.Datetime.now()},
        ):
            with self.assertRaises(AccessError, msg=str(defaults)):
                campaign.with_user(manager).with_context(
                    **defaults
                ).action_select_partners()
        campaign.with_user(manager).action_select_partners()
        self.assertTrue(campaign.request_ids)
        self.assertFalse(any(campaign.request_ids.mapped("approved_address")))

    def test_evidence_reports_a_deleted_answer_file(self):
        """An answer's file deleted in the database is reported from the
        answer's entry, though no request holds a file any more."""
        [confirmation] = self.sent_request()
        self.answer(
            confirmation,
            answer="disagree",
            their_balance="1000",
            files={"attachment": ("ledger.csv", b"INV;1000\n", "text/csv")},
        )
        file = confirmation.answer_attachment_id
        self.assertTrue(file)
        self.env.flush_all()
        self.env.cr.execute("DELETE FROM ir_attachment WHERE id = %s", (file.id,))
        self.env.invalidate_all()
        self.assertFalse(confirmation.answer_attachment_id)
        text = self.evidence_text(confirmation.campaign_id)
        self.assertIn("Answer file missing", text)
        self.assertNotIn("matches its recorded digest", text)
        self.assertIn("Chain intact", text)
        # and in Spanish (i18n/es.po)
        self.env["res.lang"]._activate_lang("es_ES")
        self.env["ir.module.module"]._load_module_terms(
            ["account_document_email"], ["es_ES"], overwrite=True
        )
        content, __ = (
            self.env["ir.actions.report"]
            .with_context(lang="es_ES")
            ._render_qweb_pdf(
                "account_document_email.action_report_confirmation_evidence",
                confirmation.campaign_id.ids,
            )
        )
        self.assertIn("Falta el archivo de respuesta", pdf_text(content))

    # ------------------------------------------------------------------
    # Third re-review (the email as sent, requests approved before)
    # ------------------------------------------------------------------

    def received_digest(self, confirmation, message):
        """sha256 of the email the sink received, recomputed as an auditor
        would: the queued recipient, the subject, the HTML body, the
        personal link's token hidden."""
        # SMTP carries CRLF line ends; the MIME part ends with one of its own
        html = message.get_body(("html",)).get_content().replace("\r\n", "\n")
        self.assertTrue(html.endswith("\n"))
        body = html[:-1].replace(self.token(confirmation), "HIDDEN")
        email_to = confirmation.sudo().document_email_mail_id.email_to
        text = f"To: {email_to}\nSubject: {message['Subject']}\n\n{body}"
        return hashlib.sha256(text.encode()).hexdigest()

    def sent_payload(self, confirmation):
        [sent] = confirmation.event_ids.filtered(lambda e: e.event_type == "sent")
        return json.loads(sent.payload)

    def test_evidence_keeps_the_digest_of_the_email_as_sent(self):
        """The sent entry holds the sha256 of the email the partner received
        (as a real SMTP server got it), which is the digest of the copy kept
        on the request; a template changed before the next request changes
        the digest; the evidence report shows each, and a changed copy."""
        [first] = self.sent_request(deliver=False)
        template = self.env.ref(
            "account_document_email.mail_template_confirmation_request"
        )
        # the stored HTML as text (Markup.replace would escape its arguments)
        template.body_html = Markup(
            str(template.body_html).replace(
                "<p", "<p>Any balance not disputed is deemed correct.</p><p", 1
            )
        )
        [second] = self.sent_request(self.vendor, deliver=False, partner_scope="vendor")
        with real_smtp_delivery():
            self.env["mail.mail"].process_email_queue()
        for confirmation, partner in ((first, self.customer), (second, self.vendor)):
            self.assertEqual(confirmation.state, "sent")
            [received] = self.messages_to(partner.email)
            message = received["message"]
            payload = self.sent_payload(confirmation)
            digest = payload["email_sha256"]
            self.assertEqual(digest, self.received_digest(confirmation, message))
            # the auditor's copy on the request: its bytes give the digest
            kept = self.env["ir.attachment"].browse(payload["email_file_id"])
            self.assertEqual(
                (kept.res_model, kept.res_id), (confirmation._name, confirmation.id)
            )
            self.assertEqual(digest, hashlib.sha256(kept.raw).hexdigest())
            self.assertNotIn(self.token(confirmation), kept.raw.decode())
        [vendor_email] = self.messages_to(self.vendor.email)
        html = vendor_email["message"].get_body(("html",)).get_content()
        self.assertIn("deemed correct", html)
        first_digest = self.sent_payload(first)["email_sha256"]
        self.assertNotEqual(first_digest, self.sent_payload(second)["email_sha256"])
        for confirmation in (first, second):
            text = re.sub(r"\s", "", self.evidence_text(confirmation.campaign_id))
            self.assertIn(self.sent_payload(confirmation)["email_sha256"], text)
            self.assertIn("Matches", text)
        # a copy changed behind the application's back shows
        kept = self.env["ir.attachment"].browse(
            self.sent_payload(first)["email_file_id"]
        )
        # sudo: the ORM refuses it to users, as evidence
        kept.sudo().raw = kept.raw.replace(b"Dear", b"Hello")
        text = self.evidence_text(first.campaign_id)
        self.assertIn("Changed", text)
        self.assertNotIn("Matches", text)

    def run_migration(self, version):
        path = get_module_path("account_document_email")
        spec = importlib.util.spec_from_file_location(
            "post_migrate", f"{path}/migrations/{version}/post-migrate.py"
        )
        migration = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(migration)
        migration.migrate(self.env.cr, "18.0.1.2.0")
        self.env.invalidate_all()

    def test_requests_approved_before_the_postal_address(self):
        """The migration takes the address an approval entry recorded; a
        request approved before addresses were has none, and its letter says
        so instead of printing the partner's address of today."""
        self.customer.write({"street": "1 Approved Street", "city": "Lisbon"})
        self.vendor.write({"street": "5 Vendor Lane", "city": "Porto"})
        [recorded] = self.sent_request()
        [older] = self.sent_request(self.vendor, partner_scope="vendor")
        # as approved before this version: no address, none in the entry
        approval = older.campaign_id.event_ids.filtered(
            lambda e: e.event_type == "approved"
        )
        payload = json.loads(approval.payload)
        self.assertEqual(payload["requests"][0][3], older.approved_address)
        payload["requests"] = [row[:3] for row in payload["requests"]]
        self.env.cr.execute(
            "UPDATE account_confirmation_event SET payload = %s WHERE id = %s",
            (json.dumps(payload), approval.id),
        )
        self.env.cr.execute(
            "UPDATE account_confirmation_request SET approved_address = NULL"
            " WHERE id IN %s",
            ((recorded.id, older.id),),
        )
        self.env.invalidate_all()
        self.run_migration("18.0.1.3.0")
        self.assertIn("1 Approved Street", recorded.approved_address)
        self.assertFalse(older.approved_address)
        html, __ = (
            self.env["ir.actions.report"]
            .with_user(self.auditor)
            ._render_qweb_html(
                "account_document_email.action_report_confirmation_request",
                (recorded | older).ids,
            )
        )
        letters = html.decode().split("1 Approved Street")
        self.assertEqual(len(letters), 2, "the approved address, once")
        self.assertNotIn("Postal address not approved", letters[0])
        self.assertIn("Postal address not approved", letters[1])
        self.assertNotIn("5 Vendor Lane", html.decode())

    def _outcomes(self, campaign):
        return (
            self.env["account.confirmation.outcome"]
            .sudo()
            .search([("campaign_id", "=", campaign.id)])
        )

    def test_email_outcome_recorded_and_protected(self):
        """The email's outcome is recorded with it (the time observed), and
        appended; the ORM changes no recorded outcome, the superuser's
        included."""
        [confirmation] = self.sent_request()
        campaign = confirmation.campaign_id
        outcome = self._outcomes(campaign)
        self.assertEqual(len(outcome), 1)
        delivered = campaign.event_ids.filtered(lambda e: e.event_type == "delivered")
        self.assertEqual(outcome.event_ref, delivered.id)
        self.assertIn("observed_at", json.loads(delivered.payload))
        for change in (
            lambda: outcome.write({"event_ref": 0}),
            lambda: outcome.unlink(),
            lambda: self.env["account.confirmation.outcome"].create(
                {
                    "campaign_id": campaign.id,
                    "request_id": confirmation.id,
                    "event_type": "delivered",
                }
            ),
        ):
            with self.assertRaisesRegex(UserError, "append-only"):
                change()

    def test_outcome_appended_once(self):
        """An outcome another job (or a closing) appended meanwhile is not
        appended again: the second append finds its entry."""
        [confirmation] = self.sent_request()
        campaign = confirmation.campaign_id
        outcome = self._outcomes(campaign)
        Event = self.env["account.confirmation.event"].sudo()
        entries = Event.search_count([("campaign_id", "=", campaign.id)])
        # what a second job sees when it read the outcome before the first
        # job's commit: the entry in the database, its cached event_ref 0
        self.env.flush_all()
        outcome.env.cache.set(outcome, outcome._fields["event_ref"], 0)
        again = outcome.with_context(confirmation_busy_ok=True)._append_one()
        self.assertEqual(again.id, outcome.event_ref)
        self.assertEqual(
            Event.search_count([("campaign_id", "=", campaign.id)]),
            entries,
            "no second entry",
        )

    def test_evidence_flags_a_missing_outcome(self):
        """A sent entry no outcome entry follows (removed in the database,
        the chain otherwise intact) is flagged on the report, in Spanish
        too; it is not while the email is still being sent."""
        [confirmation] = self.sent_request(deliver=False)
        campaign = confirmation.campaign_id
        self.assertEqual(campaign._get_missing_outcomes(), [])
        self.env["mail.mail"].process_email_queue()
        self.assertNotIn("Outcome missing", self.evidence_text(campaign))
        events = campaign.event_ids.sorted("sequence")
        self.assertEqual(events[-1].event_type, "delivered")
        sent = events.filtered(lambda e: e.event_type == "sent")
        self.env.flush_all()
        self.env.cr.execute(
            "DELETE FROM account_confirmation_event WHERE id = %s", (events[-1].id,)
        )
        self.env.cr.execute(
            "UPDATE account_confirmation_campaign SET evidence_head_sequence = %s, "
            "evidence_head_hash = %s WHERE id = %s",
            (events[-2].sequence, events[-2].hash, campaign.id),
        )
        self.env.invalidate_all()
        self.assertEqual(campaign._get_missing_outcomes(), list(sent))
        text = self.evidence_text(campaign)
        self.assertIn("Chain intact", text)
        self.assertIn(f"Outcome missing of entry {sent.sequence}", text)
        self.env["res.lang"]._activate_lang("es_ES")
        self.env["ir.module.module"]._load_module_terms(
            ["account_document_email"], ["es_ES"], overwrite=True
        )
        content, __ = (
            self.env["ir.actions.report"]
            .with_context(lang="es_ES")
            ._render_qweb_pdf(
                "account_document_email.action_report_confirmation_evidence",
                campaign.ids,
            )
        )
        self.assertIn("Falta el resultado", pdf_text(content))

    def test_closing_appends_pending_outcomes_then_only_late_entries(self):
        """A recorded outcome still pending is appended before the closing
        entry; after the closing, only a flagged late entry is appended, and
        the report shows it late."""
        [confirmation] = self.sent_request()
        campaign = confirmation.campaign_id
        pending = self.env["account.confirmation.outcome"]._record(
            confirmation, 0, "undelivered", {"reason": "test", "mail_id": 0}
        )
        self.assertEqual(campaign._get_missing_outcomes(), [])  # still sending
        campaign.with_user(self.auditor).action_close()
        types = campaign.event_ids.sorted("sequence").mapped("event_type")
        self.assertEqual(types[-2:], ["undelivered", "closed"])
        self.assertTrue(pending.event_ref)
        Event = self.env["account.confirmation.event"]
        with self.assertRaisesRegex(UserError, "only a late entry"):
            Event._append(campaign, "bounced", confirmation, {"reason": "x"})
        confirmation._log_event("bounced", reason="bounced")
        last = campaign.event_ids.sorted("sequence")[-1]
        self.assertTrue(json.loads(last.payload)["late"])
        self.assertIn("late: after the closing", self.evidence_text(campaign))
        self.assertEqual(campaign._check_evidence(), (True, None))

    def test_posting_resets_the_code_lock_and_records_the_renewal(self):
        """Posted after a bounce: the code lock and count start again (the
        partner with the letter may answer), the posted entry says the link
        was renewed, without the token."""
        [confirmation] = self.sent_request(require_code=True)
        confirmation.sudo().write({"state": "undelivered", "code_failures": 10})
        confirmation.sudo().code_locked = True
        confirmation.with_user(self.auditor).action_mark_posted()
        self.assertFalse(confirmation.code_locked)
        self.assertEqual(confirmation.sudo().code_failures, 0)
        self.assertTrue(confirmation._is_answerable())
        posted = confirmation.campaign_id.event_ids.sorted("sequence")[-1]
        self.assertEqual(posted.event_type, "posted")
        self.assertEqual(json.loads(posted.payload), {"link_renewed": True})

    # ------------------------------------------------------------------
    # Fourth re-review (outcomes after the queue's classification)
    # ------------------------------------------------------------------

    def outcome_types(self, confirmation):
        return self._outcomes(confirmation.campaign_id).mapped("event_type")

    def entry_types(self, confirmation):
        return confirmation.campaign_id.event_ids.sorted("sequence").mapped(
            "event_type"
        )

    def deliver_through(self, server):
        """The queue run against a real SMTP server ``server`` (now)."""
        self.env.company.write(server.company_values())
        # as the queue's time passing (a user writes nothing on these emails)
        self.env["mail.mail"].sudo().search([("state", "=", "outgoing")]).write(
            {"scheduled_date": fields.Datetime.now()}
        )
        with real_smtp_delivery():
            self.env["mail.mail"].process_email_queue()

    def test_greylisted_request_waits_then_is_delivered(self):
        """A 4xx (greylisting) puts the email back in the queue: nothing
        final is recorded, the request stays queued; delivered on the next
        try, it is sent with one delivered entry, and its answer counts."""
        [confirmation] = self.sent_request(deliver=False)
        mail = confirmation.sudo().document_email_mail_id
        handler = ScriptedHandler()
        handler.rcpt_replies[self.customer.email] = "451 4.7.1 Greylisted, try later"
        with SMTPTestServer(handler=handler) as server:
            self.deliver_through(server)
            self.assertEqual(mail.state, "outgoing")
            self.assertEqual(confirmation.state, "queued")
            self.assertEqual(self.outcome_types(confirmation), [])
            handler.rcpt_replies.clear()
            self.deliver_through(server)
            self.assertEqual(len(server.messages), 1)
        self.assertEqual(mail.state, "sent")
        self.assertEqual(confirmation.state, "sent")
        self.assertEqual(self.outcome_types(confirmation), ["delivered"])
        self.assertEqual(self.entry_types(confirmation)[-1], "delivered")
        self.assertNotIn("undelivered", self.entry_types(confirmation))
        self.assertEqual(self.answer(confirmation, answer="agree").status_code, 200)
        self.assertEqual(confirmation.state, "confirmed")

    def test_uncertain_request_shown_and_never_no_exception(self):
        """The connection drops after DATA: the email may have arrived. The
        request is shown uncertain (an uncertain entry), still answerable,
        and at the deadline has no reply, never "no exception"."""
        [confirmation] = self.sent_request(deliver=False, kind="negative")
        mail = confirmation.sudo().document_email_mail_id
        with SMTPTestServer(handler=DropAfterDataHandler()) as server:
            self.deliver_through(server)
        self.assertRecordValues(
            mail, [{"state": "exception", "document_uncertain": True}]
        )
        self.assertEqual(confirmation.state, "uncertain")
        self.assertIn("may have been delivered", confirmation.delivery_note)
        self.assertEqual(self.outcome_types(confirmation), ["uncertain"])
        self.assertEqual(self.entry_types(confirmation)[-1], "uncertain")
        self.assertTrue(confirmation._is_answerable())
        self.assertEqual(confirmation.campaign_id._get_missing_outcomes(), [])
        # at the deadline: still uncertain, never no exception
        confirmation.campaign_id.sudo().deadline = self.today - timedelta(days=1)
        self.cron_env["account.confirmation.request"]._close_unanswered()
        self.assertEqual(confirmation.state, "uncertain")
        self.assertIn(
            confirmation, confirmation.campaign_id._get_alternative_requests()
        )

    def test_undelivered_request_sent_when_delivered_again(self):
        """Refused for good (550): undelivered; queued again by the auditor
        and delivered, the request's current email makes it sent."""
        [confirmation] = self.sent_request(deliver=False)
        mail = confirmation.sudo().document_email_mail_id
        handler = ScriptedHandler()
        handler.rcpt_replies[self.customer.email] = "550 5.1.1 Mailbox full"
        with SMTPTestServer(handler=handler) as server:
            self.deliver_through(server)
            self.assertEqual(confirmation.state, "undelivered")
            mail.action_retry()
            handler.rcpt_replies.clear()
            self.deliver_through(server)
        self.assertEqual(mail.state, "sent")
        self.assertEqual(confirmation.state, "sent")
        self.assertEqual(self.outcome_types(confirmation), ["undelivered", "delivered"])
        self.assertEqual(self.answer(confirmation, answer="agree").status_code, 200)

    def worker_connection(self):
        """A real connection of its own to the database, as a worker's."""
        __, params = sql_db.connection_info_for(self.env.cr.dbname)
        connection = psycopg2.connect(**params)
        self.addCleanup(connection.close)
        self.env.cr.execute("SELECT pg_stat_clear_snapshot()")
        return connection

    def stop_worker(self, connection):
        """The worker's connection closed, and its backend gone (this
        transaction's view of the sessions read afresh)."""
        pid = connection.get_backend_pid()
        connection.close()
        for __ in range(100):
            self.env.cr.execute("SELECT pg_stat_clear_snapshot()")
            self.env.cr.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,))
            if not self.env.cr.fetchall():
                return pid
            time.sleep(0.05)
        raise AssertionError(f"connection {pid} still open")

    def claim(self, mail, pid, state):
        """``mail`` in ``state``, claimed by the connection ``pid`` as
        mail_mail_claim records a claim."""
        self.env.flush_all()
        self.env.cr.execute(
            """UPDATE mail_mail SET state = %s, document_claim_pid = %s,
                      document_claimed_until = statement_timestamp()
                          AT TIME ZONE 'UTC' + interval '30 minutes'
                WHERE id = %s""",
            (state, pid, mail.id),
        )
        self.env.invalidate_all()

    def lose_outcome(self, confirmation):
        """A worker killed after the server took the email, before its
        outcome: the email sent, still claimed by the dead worker's
        connection, no outcome, the request still queued."""
        mail = confirmation.sudo().document_email_mail_id
        pid = self.stop_worker(self.worker_connection())
        self.claim(mail, pid, "sent")
        return mail

    def test_lost_outcome_recorded_once_by_the_job_and_the_migration(self):
        """An email settled without its outcome (its worker killed) gets it
        from the outcomes' job, once, with its entry; so does one the
        migration finds; an outcome an older version appended is not
        appended again."""
        [confirmation] = self.sent_request(deliver=False)
        mail = self.lose_outcome(confirmation)
        Outcome = self.cron_env["account.confirmation.outcome"]
        for __ in range(2):
            Outcome._cron_append_pending()
            outcomes = self._outcomes(confirmation.campaign_id)
            self.assertEqual(outcomes.mapped("mail_ref"), [mail.id])
            self.assertEqual(self.entry_types(confirmation).count("delivered"), 1)
        self.assertEqual(confirmation.state, "sent")
        [migrated] = self.sent_request(
            self.vendor, deliver=False, partner_scope="vendor"
        )
        self.lose_outcome(migrated)
        for __ in range(2):
            self.run_migration("18.0.1.4.0")
            self.assertEqual(self.outcome_types(migrated), ["delivered"])
            self.assertEqual(self.entry_types(migrated).count("delivered"), 1)
        self.assertEqual(migrated.state, "sent")
        # appended by an older version, no outcome row: nothing again
        self.env.flush_all()
        self.env.cr.execute(
            "DELETE FROM account_confirmation_outcome WHERE request_id = %s",
            (migrated.id,),
        )
        self.run_migration("18.0.1.4.0")
        self.assertEqual(self.outcome_types(migrated), [])
        self.assertEqual(self.entry_types(migrated).count("delivered"), 1)

    def test_bounce_after_closing_recorded_once_with_its_email(self):
        """A bounce arriving after the closing is appended once, late, with
        the bounced email; the request keeps its state."""
        [confirmation] = self.sent_request()
        campaign = confirmation.campaign_id
        campaign.with_user(self.auditor).action_close()
        self.env["mail.notification"].search(
            [
                ("mail_message_id.model", "=", confirmation._name),
                ("mail_message_id.res_id", "=", confirmation.id),
            ]
        ).sudo().notification_status = "bounce"
        for __ in range(2):
            self.cron_env["account.confirmation.campaign"]._cron_follow_up()
        bounced = campaign.event_ids.filtered(lambda e: e.event_type == "bounced")
        self.assertEqual(len(bounced), 1)
        payload = json.loads(bounced.payload)
        self.assertTrue(payload["late"])
        self.assertEqual(payload["mail_id"], confirmation.document_email_mail_id.id)
        self.assertEqual(confirmation.state, "sent")
        self.assertEqual(campaign._check_evidence(), (True, None))

    def test_missing_outcome_paired_by_email(self):
        """The first email's outcome lost, the second request's delivered:
        the report names the first request's entry, not the second's."""
        [confirmation] = self.sent_request(deliver=False)
        mail = confirmation.sudo().document_email_mail_id
        self.env.flush_all()
        self.env.cr.execute(
            "UPDATE mail_mail SET state = 'exception' WHERE id = %s", (mail.id,)
        )
        self.env.invalidate_all()
        confirmation._log_event("second_request", mail_id=mail.id + 1000)
        confirmation._log_event("delivered", mail_id=mail.id + 1000)
        [sent] = confirmation.event_ids.filtered(lambda e: e.event_type == "sent")
        self.assertEqual(confirmation.campaign_id._get_missing_outcomes(), [sent])

    def test_queued_emails_cancelled_at_the_deadline_and_closing(self):
        """Still queued at the deadline or at the closing: the request's
        email is cancelled (never sent after), its outcome recorded before
        the closing entry."""
        [late] = self.sent_request(deliver=False)
        late.campaign_id.sudo().deadline = self.today - timedelta(days=1)
        self.cron_env["account.confirmation.campaign"]._cron_follow_up()
        [closed] = self.sent_request(self.vendor, deliver=False, partner_scope="vendor")
        closed.campaign_id.with_user(self.auditor).action_close()
        self.env["mail.mail"].process_email_queue()
        for confirmation in (late, closed):
            mail = confirmation.sudo().document_email_mail_id
            self.assertEqual(mail.state, "cancel")
            self.assertEqual(confirmation.state, "undelivered")
            self.assertEqual(self.outcome_types(confirmation), ["undelivered"])
        self.assertIn("deadline", late.delivery_note)
        self.assertEqual(self.entry_types(closed)[-2:], ["undelivered", "closed"])

    # ------------------------------------------------------------------
    # Fifth review (no response window, outcomes once, uncertain)
    # ------------------------------------------------------------------

    def test_delivery_after_the_deadline_never_no_exception(self):
        """Negative: refused (550), the deadline passes, the auditor retries
        the email three days later and it is delivered: the delivery is in
        the evidence, the request stays undelivered ("delivered after the
        deadline") and the next pass never makes it "no exception"."""
        [confirmation] = self.sent_request(deliver=False, kind="negative")
        mail = confirmation.sudo().document_email_mail_id
        handler = ScriptedHandler()
        handler.rcpt_replies[self.customer.email] = "550 5.1.1 Mailbox full"
        with SMTPTestServer(handler=handler) as server:
            self.deliver_through(server)
            self.assertEqual(confirmation.state, "undelivered")
            confirmation.campaign_id.sudo().deadline = self.today - timedelta(days=3)
            self.cron_env["account.confirmation.campaign"]._cron_follow_up()
            mail.action_retry()
            handler.rcpt_replies.clear()
            self.deliver_through(server)
            self.assertEqual(len(server.messages), 1)
        self.assertEqual(mail.state, "sent")
        self.assertEqual(self.outcome_types(confirmation), ["undelivered", "delivered"])
        self.assertEqual(confirmation.state, "undelivered")
        self.assertIn("after the deadline", confirmation.delivery_note)
        self.cron_env["account.confirmation.campaign"]._cron_follow_up()
        self.assertEqual(confirmation.state, "undelivered")

    def test_delivery_after_closing_recorded_late_never_sent(self):
        """An email delivered after the closing (one being sent then) is
        recorded late in the evidence; the request never becomes sent and a
        closed campaign is never passed at the deadline again."""
        [confirmation] = self.sent_request(deliver=False, kind="negative")
        campaign = confirmation.campaign_id
        campaign.with_user(self.auditor).action_close()
        mail = confirmation.sudo().document_email_mail_id
        self.assertEqual(mail.state, "cancel")
        # back in the queue, as an email a worker was sending at the closing
        mail.mark_outgoing()
        with SMTPTestServer() as server:
            self.deliver_through(server)
            self.assertEqual(len(server.messages), 1)
        self.assertEqual(confirmation.state, "undelivered")
        delivered = campaign.event_ids.filtered(lambda e: e.event_type == "delivered")
        self.assertTrue(json.loads(delivered.payload)["late"])
        campaign.sudo().deadline = self.today - timedelta(days=1)
        self.cron_env["account.confirmation.campaign"]._cron_follow_up()
        self.assertEqual(confirmation.state, "undelivered")

    def test_cancelled_email_sent_again_records_one_outcome(self):
        """An email cancelled (deadline) then passed to send() again: core
        skips it, and no second undelivered outcome nor entry appears."""
        [confirmation] = self.sent_request(deliver=False)
        confirmation._cancel_queued_emails("Cancelled: the deadline passed.")
        mail = confirmation.sudo().document_email_mail_id
        self.assertEqual(mail.state, "cancel")
        with real_smtp_delivery():
            mail.send()
        self.assertEqual(self.outcome_types(confirmation), ["undelivered"])
        self.assertEqual(self.entry_types(confirmation).count("undelivered"), 1)

    def uncertain_request(self, **values):
        [confirmation] = self.sent_request(deliver=False, **values)
        with SMTPTestServer(handler=DropAfterDataHandler()) as server:
            self.deliver_through(server)
        self.assertEqual(confirmation.state, "uncertain")
        return confirmation

    def test_uncertain_request_posted_or_opened(self):
        """Uncertain: the auditor may post the letter (the link renewed), and
        a partner opening the link proves the email arrived (opened)."""
        posted = self.uncertain_request()
        old_token = self.token(posted)
        posted.with_user(self.auditor).action_mark_posted()
        self.assertEqual(posted.state, "posted")
        self.assertNotEqual(self.token(posted), old_token)
        opened = self.uncertain_request()
        self.assertEqual(self.page(opened).status_code, 200)
        self.assertEqual(opened.state, "opened")

    def test_bounce_after_the_deadline_pass_undoes_no_exception(self):
        """Negative, delivered, no exception at the deadline; its email then
        bounces before the closing: undelivered, never "no exception"."""
        [confirmation] = self.sent_request(kind="negative")
        confirmation.sudo().sent_date = self.today - timedelta(days=10)
        confirmation.campaign_id.sudo().deadline = self.today - timedelta(days=1)
        self.cron_env["account.confirmation.campaign"]._cron_follow_up()
        self.assertEqual(confirmation.state, "no_exception")
        self.env["mail.notification"].search(
            [
                ("mail_message_id.model", "=", confirmation._name),
                ("mail_message_id.res_id", "=", confirmation.id),
            ]
        ).sudo().notification_status = "bounce"
        self.cron_env["account.confirmation.campaign"]._cron_follow_up()
        self.assertEqual(confirmation.state, "undelivered")
        self.assertEqual(self.entry_types(confirmation)[-1], "bounced")

    def test_deadline_pass_sweeps_lost_outcome_first(self):
        """Delivered on the deadline day, its worker killed before the
        outcome: the deadline pass records the delivery first (no reply),
        never "never taken by the mail server"."""
        [confirmation] = self.sent_request(deliver=False)
        mail = self.lose_outcome(confirmation)
        # taken by the server yesterday; its write_date (today) says nothing
        self.env.cr.execute(
            "UPDATE mail_mail SET document_sent_at = now() AT TIME ZONE 'UTC'"
            " - interval '1 day' WHERE id = %s",
            (mail.id,),
        )
        self.env.invalidate_all()
        confirmation.campaign_id.sudo().deadline = self.today - timedelta(days=1)
        self.cron_env["account.confirmation.request"]._close_unanswered()
        self.assertEqual(self.outcome_types(confirmation), ["delivered"])
        self.assertEqual(confirmation.state, "no_reply")

    def test_email_claimed_by_live_worker_left_to_it(self):
        """An email a live worker (another connection) claimed: the sweep
        skips it, the deadline pass neither cancels it nor marks its request,
        and the closing is refused until its worker is done."""
        [confirmation] = self.sent_request(deliver=False)
        mail = confirmation.sudo().document_email_mail_id
        worker = self.worker_connection()
        self.claim(mail, worker.get_backend_pid(), "outgoing")
        confirmation.campaign_id.sudo().deadline = self.today - timedelta(days=1)
        self.cron_env["account.confirmation.campaign"]._cron_follow_up()
        self.assertEqual(mail.state, "outgoing")
        self.assertEqual(confirmation.state, "queued")
        self.assertEqual(self.outcome_types(confirmation), [])
        with self.assertRaisesRegex(UserError, "being sent right now"):
            confirmation.campaign_id.with_user(self.auditor).action_close()
        # sent by that worker, which then dies before the outcome: swept
        self.claim(mail, worker.get_backend_pid(), "sent")
        self.cron_env["account.confirmation.outcome"]._cron_append_pending()
        self.assertEqual(self.outcome_types(confirmation), [])
        self.stop_worker(worker)
        self.cron_env["account.confirmation.outcome"]._cron_append_pending()
        self.assertEqual(self.outcome_types(confirmation), ["delivered"])

    # ------------------------------------------------------------------
    # Hostile review (the email as queued and as delivered, cancelling)
    # ------------------------------------------------------------------

    def test_manager_neither_changes_nor_deletes_the_request_email(self):
        """The billing manager (write access on the request) changes nor
        deletes the request's email through its chatter message, its letter
        or its mail.mail (the administrator neither); the queue still sends
        it as queued. Core checks only write access on the request."""
        [confirmation] = self.sent_request(deliver=False)
        manager = self.manager()
        message = confirmation.sudo().confirmation_message_ids
        self.assertEqual(len(message), 1)
        as_manager = message.with_user(manager)
        for change in (
            lambda: as_manager.write({"body": "<p>Other text</p>"}),
            lambda: as_manager.write({"attachment_ids": [(5, 0, 0)]}),
            # headers: a forged Message-Id would leave its bounce unmatched
            lambda: as_manager.write({"message_id": "<forged@example.com>"}),
            lambda: as_manager.write({"record_alias_domain_id": False}),
            lambda: as_manager.unlink(),
            lambda: message.attachment_ids.with_user(manager).write({"raw": b"x"}),
            lambda: message.attachment_ids.with_user(manager).unlink(),
        ):
            with self.assertRaisesRegex(UserError, "evidence"):
                change()
        mail = confirmation.sudo().document_email_mail_id
        admin = self.env.ref("base.user_admin")
        with self.assertRaisesRegex(UserError, "evidence"):
            mail.with_user(admin).write({"body_html": "<p>Other text</p>"})
        with self.assertRaisesRegex(UserError, "evidence"):
            mail.with_user(admin).unlink()
        with real_smtp_delivery():
            self.env["mail.mail"].process_email_queue()
        self.assertEqual(confirmation.state, "sent")
        [received] = self.messages_to(self.customer.email)
        self.assertNotIn(b"Other text", received["content"])
        self.assertTrue(pdf_parts(received["message"]))

    def test_chatter_route_neither_edits_nor_deletes_the_request_email(self):
        """Core's chatter edit/delete route sudoes the message: the
        administrator (and the author) still changes nor deletes the queued
        request email, its text or its letter, through the real route (its
        error says why)."""
        [confirmation] = self.sent_request(deliver=False)
        message = confirmation.sudo().confirmation_message_ids
        letters, body = message.attachment_ids, message.body
        self.assertTrue(letters)
        # the author gets past core's own checks, to the add-on's refusal
        self.assertIn(self.auditor, message.author_id.user_ids)
        refusals = {"admin": [], "campaign_auditor": []}
        for login, errors in refusals.items():
            self.authenticate(login, login)
            for text, files in (("<p>Other text</p>", []), ("", [])):
                params = {"message_id": message.id, "body": text}
                response = self.url_open(
                    "/mail/message/update_content",
                    json.dumps({"params": dict(params, attachment_ids=files)}),
                    headers={"Content-Type": "application/json"},
                )
                errors.append(response.json()["error"]["data"]["message"])
        # each of the author's attempts refused by the add-on (the
        # administrator may get core's "not found" first)
        for error in refusals["campaign_auditor"]:
            self.assertIn("it is evidence", error)
        message.invalidate_recordset()
        self.assertEqual(message.body, body)
        self.assertEqual(message.attachment_ids, letters)

    def test_request_mail_keeps_hidden_recipients_and_attachments(self):
        """Only the queue's fields change on the request's mail.mail: no
        hidden recipient (Bcc, dropped from the headers) nor attachment
        (core's unrestricted inverse writes as sudo) is added by a user."""
        [confirmation] = self.sent_request(deliver=False)
        mail = confirmation.sudo().document_email_mail_id
        letters = mail.attachment_ids
        admin = self.env.ref("base.user_admin")
        for vals in (
            {"email_bcc": "spy@example.com"},
            {"unrestricted_attachment_ids": [(5, 0, 0)]},
            # a faked delivery, long enough before the deadline
            {"state": "sent", "document_sent_at": "2020-01-01 00:00:00"},
            {"document_sent_at": "2020-01-01 00:00:00"},
        ):
            with self.assertRaisesRegex(UserError, "evidence"):
                mail.with_user(admin).write(vals)
        self.assertFalse(mail.email_bcc)
        self.assertEqual(mail.attachment_ids, letters)
        self.assertRecordValues(
            mail, [{"state": "outgoing", "document_sent_at": False}]
        )
        with real_smtp_delivery():
            self.env["mail.mail"].process_email_queue()
        self.assertEqual(mail.state, "sent")
        self.assertFalse(self.messages_to("spy@example.com"))

    def test_resend_of_the_request_email_refused_and_ignored(self):
        """Core's resend wizard does not send the request's message again
        (to an edited address, outside the evidence), and a mail.mail of the
        message the engine did not queue says nothing of the request."""
        [confirmation] = self.sent_request(deliver=False)
        message = confirmation.sudo().confirmation_message_ids
        own = confirmation.sudo().document_email_mail_id
        self.assertTrue(confirmation._is_confirmation_mail(own))
        other = own.sudo().copy({"mail_message_id": message.id})
        self.assertFalse(confirmation._is_confirmation_mail(other))
        # the email failed for the customer: core offers to resend it
        failed = {"notification_status": "exception"}
        notification = message.notification_ids.filtered(
            lambda n: n.res_partner_id == self.customer
        )
        notification.write(failed) if notification else notification.create(
            dict(
                failed,
                mail_message_id=message.id,
                res_partner_id=self.customer.id,
                notification_type="email",
            )
        )
        admin = self.env.ref("base.user_admin")
        wizard = (
            self.env["mail.resend.message"]
            .with_user(admin)
            .with_context(mail_message_to_resend=message.id)
            .create({})
        )
        self.assertTrue(wizard.partner_ids)
        with self.assertRaisesRegex(UserError, "second request"):
            wizard.resend_mail_action()

    def test_email_as_sent_file_cannot_change(self):
        """The email as queued (.txt named by the sent entry) is evidence
        like the email as delivered: no write, no delete."""
        [confirmation] = self.sent_request(deliver=False)
        [sent] = confirmation.event_ids.filtered(lambda e: e.event_type == "sent")
        file = self.env["ir.attachment"].browse(
            json.loads(sent.payload)["email_file_id"]
        )
        self.assertTrue(file.name.endswith(".txt"))
        for change in (
            lambda: file.with_user(self.auditor).write({"raw": b"forged"}),
            lambda: file.with_user(self.auditor).unlink(),
        ):
            with self.assertRaisesRegex(UserError, "evidence"):
                change()

    def test_author_still_edits_and_deletes_other_chatter_messages(self):
        """Core's chatter elsewhere: the author edits and deletes a note on
        a partner and on an invoice, and a note on the request itself."""
        [confirmation] = self.sent_request()
        author = new_test_user(
            self.env,
            "chatter_author",
            groups="account.group_account_manager,base.group_partner_manager",
            company_id=self.env.company.id,
        )
        for record in (self.customer, self.invoice, confirmation):
            record = record.with_user(author)
            note = record.message_post(
                body="Note", message_type="comment", subtype_xmlid="mail.mt_note"
            )
            record._message_update_content(note, body="Edited")
            self.assertIn("Edited", str(note.body))
            note.write({"body": "Written"})
            note.unlink()
            self.assertFalse(note.exists())

    def test_email_kept_as_the_server_accepted_it(self):
        """The bytes handed to SMTP for the request's email are kept on the
        request and their sha256 is in the delivered entry: the same as
        the bytes the real SMTP server received (aiosmtpd's content: the
        DATA lines with CRLF, dot-stuffing undone, without the final "."
        line). Only the auditor reads that file; nobody changes it."""
        [confirmation] = self.sent_request(deliver=False)
        with real_smtp_delivery():
            self.env["mail.mail"].process_email_queue()
        [received] = self.messages_to(self.customer.email)
        [delivered] = confirmation.event_ids.filtered(
            lambda e: e.event_type == "delivered"
        )
        payload = json.loads(delivered.payload)
        digest = hashlib.sha256(received["content"]).hexdigest()
        self.assertEqual(payload["delivered_sha256"], digest)
        file = self.env["ir.attachment"].browse(payload["delivered_file_id"])
        self.assertEqual(file.with_user(self.auditor).raw, received["content"])
        for header in (b"\r\nFrom: ", b"\r\nReply-To: ", b"application/pdf"):
            self.assertIn(header, file.raw)
        billing = new_test_user(
            self.env,
            "confirm_billing",
            groups="account.group_account_invoice",
            company_id=self.env.company.id,
        )
        for user in (billing, self.manager()):
            with self.assertRaises(AccessError):
                file.with_user(user).read(["raw"])
            with self.assertRaisesRegex(UserError, "evidence"):
                file.with_user(user).unlink()
        with self.assertRaisesRegex(UserError, "evidence"):
            file.with_user(self.auditor).write({"raw": b"forged"})
        text = re.sub(r"\s", "", self.evidence_text(confirmation.campaign_id))
        self.assertIn(digest, text)
        self.assertIn("Samebytes", text)

    def test_posting_cancels_the_queued_email(self):
        """Bounced while its email still waits in the queue: posted by the
        auditor, the queued email (with the dead link) is cancelled, its
        outcome recorded, and it never reaches the server."""
        [confirmation] = self.sent_request(deliver=False)
        mail = confirmation.sudo().document_email_mail_id
        self.assertEqual(mail.state, "outgoing")
        confirmation._mark_undelivered("bounced", "bounced")
        confirmation.with_user(self.auditor).action_mark_posted()
        self.assertEqual(mail.state, "cancel")
        with real_smtp_delivery():
            self.env["mail.mail"].process_email_queue()
        self.assertFalse(self.messages_to(self.customer.email))
        outcome = self._outcomes(confirmation.campaign_id)
        self.assertEqual(outcome.event_type, "undelivered")

    def test_other_company_reads_no_outcome(self):
        """An auditor of company B reads none of company A's outcomes."""
        [confirmation] = self.sent_request()
        outcome = self._outcomes(confirmation.campaign_id)
        self.assertTrue(outcome)
        company_b = self.env["res.company"].create({"name": "Company B"})
        auditor_b = new_test_user(
            self.env,
            "auditor_b",
            groups="account_document_email.group_confirmation_auditor",
            company_id=company_b.id,
            company_ids=[company_b.id],
        )
        Outcome = self.env["account.confirmation.outcome"].with_user(auditor_b)
        self.assertFalse(Outcome.search([("id", "=", outcome.id)]))
        with self.assertRaises(AccessError):
            Outcome.browse(outcome.id).read(["event_type"])
        self.assertTrue(
            outcome.with_user(self.auditor).read(["event_type"]), "its own company's"
        )

    # ------------------------------------------------------------------
    # Sixth review (time to answer, bounces at the closing)
    # ------------------------------------------------------------------

    def bounce(self, confirmation):
        """The request's email bounces (as the bounce processing marks it)."""
        self.env["mail.notification"].search(
            [
                ("mail_message_id.model", "=", confirmation._name),
                ("mail_message_id.res_id", "=", confirmation.id),
            ]
        ).sudo().notification_status = "bounce"

    def test_posted_or_opened_after_the_deadline_is_no_reply(self):
        """Negative: a letter posted after the deadline, or an uncertain
        email first opened after it, had no time to be answered: the next
        pass makes it no reply, never "no exception"."""
        Request = self.cron_env["account.confirmation.request"]
        opened = self.uncertain_request(kind="negative")
        [posted] = self.sent_request(
            self.vendor, deliver=False, kind="negative", partner_scope="both"
        )
        (posted | opened).campaign_id.sudo().deadline = self.today - timedelta(days=1)
        Request._close_unanswered()
        self.assertRecordValues(
            posted | opened, [{"state": "undelivered"}, {"state": "uncertain"}]
        )
        posted.with_user(self.auditor).action_mark_posted()
        self.assertEqual(self.page(opened).status_code, 200)
        self.assertRecordValues(
            posted | opened, [{"state": "posted"}, {"state": "opened"}]
        )
        Request._close_unanswered()
        self.assertRecordValues(
            posted | opened, [{"state": "no_reply"}, {"state": "no_reply"}]
        )

    def test_minimum_days_to_answer(self):
        """Negative: delivered on the deadline day is no reply; delivered the
        campaign's minimum days before it is no exception. The minimum is
        frozen by the approval."""
        [late] = self.sent_request(kind="negative")
        [timely] = self.sent_request(self.vendor, kind="negative", partner_scope="both")
        self.assertEqual(late.campaign_id.min_answer_days, 7)
        with self.assertRaisesRegex(UserError, "approved this campaign"):
            late.campaign_id.with_user(self.auditor).min_answer_days = 1
        late.sudo().sent_date = self.today - timedelta(days=1)
        timely.sudo().sent_date = self.today - timedelta(days=8)
        (late | timely).campaign_id.sudo().deadline = self.today - timedelta(days=1)
        self.cron_env["account.confirmation.campaign"]._cron_follow_up()
        self.assertRecordValues(
            late | timely, [{"state": "no_reply"}, {"state": "no_exception"}]
        )

    def test_minimum_days_to_answer_is_at_least_one(self):
        """Zero days would count a request delivered on the deadline day."""
        campaign = self.campaign()
        refused = self.assertRaises(psycopg2.IntegrityError)
        with mute_logger("odoo.sql_db"), refused, self.env.cr.savepoint():
            campaign.min_answer_days = 0
            campaign.flush_recordset()

    def test_closing_records_a_bounce_first(self):
        """Negative, no exception at the deadline pass; its email bounces
        before the closing: the closing makes it undelivered before its
        counts, the bounce recorded in time (not late)."""
        [confirmation] = self.sent_request(kind="negative")
        confirmation.sudo().sent_date = self.today - timedelta(days=10)
        campaign = confirmation.campaign_id
        campaign.sudo().deadline = self.today - timedelta(days=1)
        self.cron_env["account.confirmation.request"]._close_unanswered()
        self.assertEqual(confirmation.state, "no_exception")
        self.bounce(confirmation)
        campaign.with_user(self.auditor).action_close()
        self.assertEqual(confirmation.state, "undelivered")
        events = campaign.event_ids.sorted("sequence")
        self.assertEqual(events[-2:].mapped("event_type"), ["bounced", "closed"])
        self.assertNotIn("late", json.loads(events[-2].payload))
        self.assertEqual(json.loads(events[-1].payload)["states"], {"undelivered": 1})
