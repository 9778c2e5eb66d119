from datetime import date

from lxml import etree

from odoo.tests import TransactionCase, tagged

from odoo.addons.account.tests.common import AccountTestInvoicingCommon

from .aged_common import DATE_AT, AgedReceivableMixin


def aged(not_due=0.0, p1=0.0, p2=0.0, p3=0.0, p4=0.0, older=0.0):
    amounts = {
        "not_due": not_due,
        "period_1": p1,
        "period_2": p2,
        "period_3": p3,
        "period_4": p4,
        "older": older,
    }
    return dict(amounts, total=sum(amounts.values()))


@tagged("post_install", "-at_install")
class TestAgedReceivable(AgedReceivableMixin, AccountTestInvoicingCommon):
    """Expectations computed by hand at DATE_AT = 2024-06-30."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # one invoice per boundary; powers of two show any misplaced amount
        cls.ages = cls.create_customer("Ages Ltd")
        for days, amount in (
            (0, 1),
            (1, 2),
            (30, 4),
            (31, 8),
            (60, 16),
            (61, 32),
            (90, 64),
            (91, 128),
            (120, 256),
            (121, 512),
        ):
            cls.create_receivable(cls.ages, amount, days)
        # dated before, due after the date
        cls.create_receivable(cls.ages, 1024, -10, invoice_date=date(2024, 6, 25))
        # another company's invoice
        cls.other = cls.setup_other_company(name="Other Company")["company"]
        cls.create_receivable(cls.ages, 2048, 0, company=cls.other)

        cls.payer = cls.create_customer("Payer Ltd")
        cls.invoice_paid_before = cls.create_receivable(cls.payer, 1000, 10)
        cls.pay(cls.invoice_paid_before, 300, date(2024, 6, 25))
        cls.invoice_paid_after = cls.create_receivable(cls.payer, 500, 45)
        cls.pay(cls.invoice_paid_after, 200, date(2024, 7, 5))
        cls.create_receivable(cls.payer, 50, 5, move_type="out_refund")
        cls.create_receivable(cls.payer, 9999, 3, post=False)
        cls.create_receivable(cls.payer, 7777, -1)  # dated 2024-07-01

        # EUR at 2 per USD until 2024-06-29, then 2.5
        cls.eur = cls.setup_other_currency(
            "EUR", rates=[("2024-01-01", 2.0), ("2024-06-29", 2.5)]
        )
        cls.foreigner = cls.create_customer("Foreigner GmbH")
        cls.create_receivable(cls.foreigner, 300, 10, currency=cls.eur)
        cls.invoice_eur_paid = cls.create_receivable(
            cls.foreigner, 200, 60, currency=cls.eur
        )
        # 200 EUR paid at 2.5: 80 USD against 100 USD, plus an exchange difference
        cls.pay(cls.invoice_eur_paid, 200, date(2024, 6, 29), currency=cls.eur)

        cls.nobody = cls.create_customer("No Receivable Ltd")
        cls.customers = cls.ages | cls.payer | cls.foreigner | cls.nobody

    def assert_aged(self, partners, date_at, expected, interval_days=30):
        result = partners._get_aged_receivable(date_at, interval_days)
        self.assertEqual(
            {partner.name: result[partner.id] for partner in partners},
            {partner.name: amounts for partner, amounts in expected.items()},
        )

    def test_company_currency(self):
        self.assertEqual(self.env.company.currency_id.name, "USD")
        self.assertEqual(
            self.invoice_eur_paid.line_ids.filtered("date_maturity").balance, 100.0
        )

    def test_buckets_at_each_boundary(self):
        self.assert_aged(
            self.ages,
            DATE_AT,
            {self.ages: aged(1025, 6, 24, 96, 384, 512)},
        )

    def test_interval_days(self):
        self.assert_aged(
            self.ages, DATE_AT, {self.ages: aged(1025, 30, 480, 512)}, interval_days=60
        )

    def test_payments_credit_note_draft_and_later_invoice(self):
        """700 left of the invoice paid before the date, all 500 of the one
        paid after it, the open credit note negative in its own bucket; the
        draft and the invoice dated after the date do not count."""
        self.assertEqual(self.invoice_paid_after.amount_residual, 300.0)
        self.assert_aged(self.payer, DATE_AT, {self.payer: aged(p1=650, p2=500)})
        # a month later the second payment counts and everything has aged
        self.assert_aged(
            self.payer,
            date(2024, 7, 31),
            {self.payer: aged(p1=7777, p2=650, p3=300)},
        )

    def test_second_currency_in_company_currency(self):
        """150 USD open (300 EUR at 2); the EUR invoice paid at 2.5 before
        the date is settled, exchange difference included, not before."""
        self.assert_aged(self.foreigner, DATE_AT, {self.foreigner: aged(p1=150)})
        self.assert_aged(
            self.foreigner,
            date(2024, 6, 28),
            {self.foreigner: aged(p1=150, p2=100)},
        )

    def test_other_company(self):
        self.assert_aged(
            self.ages, DATE_AT, {self.ages: aged(1025, 6, 24, 96, 384, 512)}
        )
        self.assert_aged(
            self.ages.with_company(self.other),
            DATE_AT,
            {self.ages: aged(not_due=2048)},
        )

    def test_all_partners_and_partner_without_receivable(self):
        everyone = self.env["res.partner"]._get_aged_receivable(DATE_AT)
        self.assertEqual(
            set(everyone), set((self.ages | self.payer | self.foreigner).ids)
        )
        self.assertEqual(everyone[self.payer.id], aged(p1=650, p2=500))
        self.assert_aged(self.nobody, DATE_AT, {self.nobody: aged()})
        before_anything = self.customers._get_aged_receivable(date(2023, 12, 31))
        self.assertEqual(set(before_anything), set(self.customers.ids))
        self.assertEqual(before_anything[self.payer.id], aged())

    def test_open_items(self):
        items = self.payer._get_aged_receivable_items(DATE_AT)[self.payer.id]
        self.assertEqual(
            [
                (
                    i["name"],
                    i["due_date"],
                    i["days_overdue"],
                    i["amount"],
                    i["open_amount"],
                )
                for i in items
            ],
            [
                (self.invoice_paid_after.name, date(2024, 5, 16), 45, 500.0, 500.0),
                (self.invoice_paid_before.name, date(2024, 6, 20), 10, 1000.0, 700.0),
                (items[2]["name"], date(2024, 6, 25), 5, -50.0, -50.0),
            ],
        )
        self.assertTrue(items[2]["name"].startswith("RINV"))
        self.assertEqual(
            sum(i["open_amount"] for i in items),
            self.payer._get_aged_receivable(DATE_AT)[self.payer.id]["total"],
        )

    def test_context_options(self):
        partner = self.payer.with_context(
            aged_date_at="2024-07-31", aged_interval_days=60
        )
        self.assertEqual(
            partner._get_aged_receivable_options(), (date(2024, 7, 31), 60)
        )
        summary = partner._get_aged_receivable_summary()
        self.assertEqual(summary["total"], 8727.0)
        self.assertEqual(summary["date_at"], date(2024, 7, 31))

    def test_recipient_invoice_address(self):
        self.assertEqual(self.payer._get_document_email_partners(), self.payer)
        billing = self.env["res.partner"].create(
            {
                "name": "Billing",
                "type": "invoice",
                "email": "billing@payer.example.com",
                "parent_id": self.payer.id,
            }
        )
        self.assertEqual(self.payer._get_document_email_partners(), billing)
        self.payer.email = "payer@payer.example.com"
        self.assertEqual(self.payer._get_document_email_partners(), self.payer)
        self.assertEqual(self.payer._get_document_email_company(), self.env.company)

    # ------------------------------------------------------------------
    # Payables, contacts, currencies, activity (issue #14)
    # ------------------------------------------------------------------

    def test_payables_positive_and_apart_from_receivables(self):
        vendor = self.create_customer("Vendor SA")
        for days, amount in ((0, 100), (31, 200), (121, 400)):
            self.create_receivable(vendor, amount, days, move_type="in_invoice")
        self.create_receivable(vendor, 30, 31, move_type="in_refund")
        self.create_receivable(vendor, 5, 1)  # a sale to the vendor
        self.assertEqual(
            vendor._get_aged_balance(DATE_AT, 30, "liability_payable")[vendor.id],
            aged(not_due=100, p2=170, older=400),
        )
        self.assertEqual(
            vendor._get_aged_balance(DATE_AT, 30, "asset_receivable")[vendor.id],
            aged(p1=5),
        )
        self.assertEqual(vendor._get_aged_receivable(DATE_AT)[vendor.id], aged(p1=5))
        everyone = self.env["res.partner"]._get_aged_balance(
            DATE_AT, 30, "liability_payable"
        )
        self.assertEqual(set(everyone), {vendor.id})
        items = vendor._get_aged_balance_items(DATE_AT, "liability_payable")
        self.assertEqual(
            sorted(i["open_amount"] for i in items[vendor.id]), [-30.0, 100, 200, 400]
        )

    def test_contact_stands_for_its_company(self):
        contact = self.env["res.partner"].create(
            {"name": "Jane", "parent_id": self.ages.id, "type": "contact"}
        )
        expected = aged(1025, 6, 24, 96, 384, 512)
        self.assertEqual(contact._get_aged_receivable(DATE_AT)[contact.id], expected)
        self.assertEqual(
            len(contact._get_aged_receivable_items(DATE_AT)[contact.id]), 11
        )
        wizard = self.env["account.aged.receivable.wizard"].create(
            {"date_at": DATE_AT, "partner_ids": contact.ids}
        )
        wizard._onchange_partner_ids()
        self.assertEqual(wizard.partner_ids, self.ages)
        wizard.partner_ids = contact
        wizard.action_list()
        self.assertEqual(wizard.line_ids.partner_id, self.ages)
        self.assertEqual(wizard.line_ids.total, expected["total"])
        self.assertEqual(wizard._get_partners(), self.ages)

    def test_in_the_partners_currency(self):
        """300 EUR open at the date; 200 EUR more before the payment."""
        by_currency = self.foreigner._get_aged_balance_by_currency(DATE_AT)
        self.assertEqual(by_currency, {self.foreigner.id: {self.eur: aged(p1=300)}})
        self.assertEqual(
            self.foreigner._get_aged_balance_by_currency(date(2024, 6, 28)),
            {self.foreigner.id: {self.eur: aged(p1=300, p2=200)}},
        )
        items = self.foreigner._get_aged_balance_items(
            date(2024, 6, 28), by_currency=True
        )[self.foreigner.id]
        self.assertEqual(
            [(i["currency"], i["amount"], i["open_amount"]) for i in items],
            [(self.eur, 200.0, 200.0), (self.eur, 300.0, 300.0)],
        )
        # one row per partner and currency on screen
        wizard = self.env["account.aged.receivable.wizard"].create(
            {"date_at": DATE_AT, "by_currency": True}
        )
        wizard.action_list()
        rows = {
            (line.partner_id, line.currency_id): line.total for line in wizard.line_ids
        }
        usd = self.env.company.currency_id
        self.assertEqual(
            rows,
            {
                (self.ages, usd): 2047.0,
                (self.payer, usd): 1150.0,
                (self.foreigner, self.eur): 300.0,
            },
        )
        wizard.by_currency = False
        wizard.action_list()
        self.assertEqual(
            wizard.line_ids.filtered(
                lambda line: line.partner_id == self.foreigner
            ).total,
            150.0,
        )

    def test_list_headings_show_day_ranges(self):
        lines = self.env["account.aged.receivable.line"]

        def headings(**context):
            arch = lines.with_context(**context).get_views([(False, "list")])
            return [
                (node.get("name"), node.get("string"))
                for node in etree.fromstring(arch["views"]["list"]["arch"]).xpath(
                    "//field"
                )
                if node.get("name") != "currency_id"
            ]

        self.assertEqual(
            headings(aged_interval_days=30),
            [
                ("partner_id", "Customer"),
                ("not_due", "Not due"),
                ("period_1", "1-30"),
                ("period_2", "31-60"),
                ("period_3", "61-90"),
                ("period_4", "91-120"),
                ("older", "Over 120"),
                ("total", None),
            ],
        )
        self.assertEqual(
            headings(aged_interval_days=15, aged_account_type="liability_payable"),
            [
                ("partner_id", "Vendor"),
                ("not_due", "Not due"),
                ("period_1", "1-15"),
                ("period_2", "16-30"),
                ("period_3", "31-45"),
                ("period_4", "46-60"),
                ("older", "Over 60"),
                ("total", None),
            ],
        )

    def test_row_opens_the_open_items_at_the_date(self):
        wizard = self.env["account.aged.receivable.wizard"].create(
            {"date_at": DATE_AT, "partner_ids": self.payer.ids}
        )
        wizard.action_list()
        action = wizard.line_ids.action_open_items()
        self.assertEqual(action["res_model"], "account.move.line")
        lines = self.env["account.move.line"].search(action["domain"])
        # the invoice paid after the date is still open at it
        self.assertEqual(
            lines.move_id,
            self.invoice_paid_after
            | self.invoice_paid_before
            | lines.move_id.filtered(lambda m: m.move_type == "out_refund"),
        )
        self.assertEqual(len(lines), 3)
        self.assertEqual(
            set(lines.mapped("account_id.account_type")), {"asset_receivable"}
        )

    def test_period_activity(self):
        activity = self.payer._get_balance_activity(date(2024, 6, 1), DATE_AT)[
            self.payer.id
        ]
        [(currency, values)] = activity.items()
        self.assertEqual(currency, self.env.company.currency_id)
        self.assertEqual(values["opening"], 500.0)
        self.assertEqual(
            sorted((line["kind"], line["amount"]) for line in values["lines"]),
            [("credit_note", -50.0), ("invoice", 1000.0), ("payment", -300.0)],
        )
        self.assertEqual(values["closing"], 1150.0)
        self.assertEqual(
            values["closing"],
            self.payer._get_aged_receivable(DATE_AT)[self.payer.id]["total"],
        )
        in_eur = self.foreigner._get_balance_activity(
            date(2024, 6, 1), DATE_AT, by_currency=True
        )[self.foreigner.id]
        self.assertEqual(list(in_eur), [self.eur])
        self.assertEqual(
            (in_eur[self.eur]["opening"], in_eur[self.eur]["closing"]), (200.0, 300.0)
        )


@tagged("post_install", "-at_install")
class TestAgedReceivableDemo(TransactionCase):
    """The demo database shows a real picture: every bucket has money, one
    customer is billed in euros, payables too."""

    def test_demo_covers_every_bucket(self):
        danube = self.env.ref(
            "account_document_email.demo_aged_customer_danube", raise_if_not_found=False
        )
        if not danube:
            self.skipTest("installed without demo data")
        partners = self.env["res.partner"].with_company(
            self.env.ref("base.main_company")
        )
        today = date.today()
        demo = partners.browse(
            [
                self.env.ref(f"account_document_email.demo_aged_customer_{name}").id
                for name in ("andes", "baltic", "cordillera", "danube")
            ]
        )
        balances = demo._get_aged_balance(today)
        for bucket in ("not_due", "period_1", "period_2", "period_3", "period_4"):
            self.assertTrue(
                any(amounts[bucket] > 0 for amounts in balances.values()), bucket
            )
        self.assertTrue(any(amounts["older"] > 0 for amounts in balances.values()))
        # the partial payment of Andes' oldest invoice is reconciled with it
        andes = self.env.ref("account_document_email.demo_aged_customer_andes")
        self.assertEqual(
            balances[andes.id],
            {
                "not_due": 1200.0,
                "period_1": 850.0,
                "period_2": 1300.0,
                "period_3": 0.0,
                "period_4": 0.0,
                "older": 0.0,
                "total": 3350.0,
            },
        )
        eur = self.env.ref("base.EUR")
        self.assertEqual(
            demo.browse(danube.id)._get_aged_balance_by_currency(today)[danube.id][eur][
                "total"
            ],
            3700.0,
        )
        vendor = self.env.ref("account_document_email.demo_aged_vendor_eastern")
        payables = partners.browse(vendor.id)._get_aged_balance(
            today, 30, "liability_payable"
        )
        self.assertEqual(payables[vendor.id]["total"], 3900.0)
