from odoo import models
from odoo.exceptions import UserError


class BasePartnerMergeAutomaticWizard(models.TransientModel):
    _inherit = "base.partner.merge.automatic.wizard"

    def _merge(self, partner_ids, dst_partner=None, extra_checks=True):
        self._check_confirmation_requests(partner_ids)
        return super()._merge(partner_ids, dst_partner, extra_checks)

    def _check_confirmation_requests(self, partner_ids):
        """Refuse to merge partners asked in the same campaign: a campaign asks
        a partner once, and the merge would delete one request, its answer
        with it, to keep that rule."""
        requests = (
            self.env["account.confirmation.request"]
            .sudo()
            .search([("partner_id", "in", list(partner_ids))])
        )
        campaigns = [
            campaign
            for campaign, asked in requests.grouped("campaign_id").items()
            if len(asked.partner_id) > 1
        ]
        if campaigns:
            raise UserError(
                self.env._(
                    "These contacts cannot be merged: they were asked to confirm "
                    "their balances in the same campaign (%(campaigns)s), and "
                    "merging them would delete a request and its answer.",
                    campaigns=", ".join(campaign.name for campaign in campaigns),
                )
            )
