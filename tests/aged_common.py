"""Receivables at known ages around a fixed date, for the aged receivables
tests: invoices due a given number of days before ``DATE_AT``."""

from datetime import date, timedelta

from odoo import Command

DATE_AT = date(2024, 6, 30)


class AgedReceivableMixin:
    @classmethod
    def create_customer(cls, name, **values):
        return cls.env["res.partner"].create(dict(name=name, **values))

    @classmethod
    def create_receivable(
        cls,
        partner,
        amount,
        days_overdue=0,
        move_type="out_invoice",
        invoice_date=None,
        post=True,
        company=None,
        currency=None,
    ):
        """An invoice (or credit note) without taxes nor payment terms, due
        ``days_overdue`` days before ``DATE_AT`` (dated that day unless
        ``invoice_date`` says otherwise)."""
        due = DATE_AT - timedelta(days=days_overdue)
        env = cls.env(context=dict(cls.env.context, default_move_type=move_type))
        move = (
            env["account.move"]
            .with_company(company or cls.env.company)
            .create(
                {
                    "move_type": move_type,
                    "partner_id": partner.id,
                    "invoice_date": invoice_date or due,
                    "invoice_date_due": due,
                    "invoice_payment_term_id": False,
                    "currency_id": (currency or env.company.currency_id).id,
                    "invoice_line_ids": [
                        Command.create(
                            {"name": "Service", "price_unit": amount, "tax_ids": []}
                        )
                    ],
                }
            )
        )
        if post:
            move.action_post()
        return move

    @classmethod
    def pay(cls, invoice, amount, payment_date, currency=None):
        """A payment registered on the invoice at ``payment_date``."""
        values = {"payment_date": payment_date, "amount": amount}
        if currency:
            values["currency_id"] = currency.id
        cls.env["account.payment.register"].with_context(
            active_model="account.move", active_ids=invoice.ids
        ).create(values)._create_payments()
