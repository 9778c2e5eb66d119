from odoo import models


class SaleOrder(models.Model):
    _name = "sale.order"
    _inherit = ["sale.order", "document.email.mixin"]

    def _get_document_email_group(self):
        return "sales_team.group_sale_salesman"

    def _document_email_groupable(self):
        return True

    def _get_document_email_template_xmlid(self):
        return "account_document_email.mail_template_sale_order"

    def _get_document_email_kind(self):
        self.ensure_one()
        if self.state in ("draft", "sent"):
            return self.env._("quotation"), self.env._("quotations")
        return self.env._("order"), self.env._("orders")

    def _get_document_email_report_xmlids(self):
        return ["sale.action_report_saleorder", "sale.action_report_pro_forma_invoice"]

    def _document_email_after_send(self):
        """As core's mark_so_as_sent: an emailed quotation becomes "sent"."""
        self.filtered(lambda order: order.state == "draft").with_context(
            tracking_disable=True
        ).write({"state": "sent"})
