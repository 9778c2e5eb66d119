import math
import os

from odoo import http
from odoo.http import request
from odoo.tools import consteq, float_round

# what a partner may attach to their answer
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
UPLOAD_EXTENSIONS = {
    ".pdf", ".png", ".jpg", ".jpeg", ".csv", ".txt",
    ".xls", ".xlsx", ".ods", ".doc", ".docx", ".odt",
}  # fmt: skip


class ConfirmationController(http.Controller):
    """The partner's personal page: see the balance, confirm or dispute it.
    Only the request matching both the id and the token is ever read."""

    def _get_request(self, request_id, access_token):
        """The request (sudo) when the token matches and the link is still
        valid, else None: every failure looks the same from outside."""
        confirmation = (
            request.env["account.confirmation.request"].sudo().browse(request_id)
        )
        if not (access_token and isinstance(access_token, str)):
            return None
        if not confirmation.exists() or not confirmation.access_token:
            return None
        if not consteq(confirmation.access_token, access_token):
            return None
        if not confirmation._is_link_valid():
            return None
        # the page and what it records speak the partner's language
        lang = confirmation.partner_id.lang or confirmation.company_id.partner_id.lang
        request.update_context(lang=lang)
        return confirmation.with_context(lang=lang)

    def _render(self, confirmation, error=None):
        return request.render(
            "account_document_email.confirmation_page",
            {
                "confirmation": confirmation,
                "company": confirmation.company_id,
                "res_company": confirmation.company_id,
                "items": confirmation._get_open_items(),
                "direction": confirmation._get_direction(),
                "error": error,
                "no_header": True,
                "no_footer": True,
            },
        )

    @http.route(
        "/my/confirmation/<int:request_id>",
        type="http",
        auth="public",
        methods=["GET"],
        sitemap=False,
    )
    def confirmation_page(self, request_id, access_token=None, **kwargs):
        confirmation = self._get_request(request_id, access_token)
        if not confirmation:
            return request.not_found()
        confirmation._mark_opened()
        return self._render(confirmation)

    @http.route(
        "/my/confirmation/<int:request_id>/answer",
        type="http",
        auth="public",
        methods=["POST"],
        csrf=True,
        sitemap=False,
    )
    def confirmation_answer(self, request_id, access_token=None, answer=None, **post):
        confirmation = self._get_request(request_id, access_token)
        if not confirmation:
            return request.not_found()
        if not confirmation._is_answerable():
            # a second answer changes nothing: the page shows the first one
            return self._render(confirmation)
        if request.env.user._is_internal():
            # ISA 505: the partner answers, not someone of the company
            return self._render(
                confirmation,
                error=request.env._(
                    "You are signed in as a user of %(company)s: only the "
                    "partner may answer. Sign out or use a private window.",
                    company=confirmation.company_id.name,
                ),
            )
        agree = answer == "agree"
        amount = 0.0
        if not agree:
            amount = self._parse_amount(post.get("their_balance"), confirmation)
            if amount is None:
                return self._render(
                    confirmation, error=request.env._("Enter your balance.")
                )
        upload = post.get("attachment")
        file = None
        if upload and upload.filename:
            file, error = self._read_upload(upload)
            if error:
                return self._render(confirmation, error=error)
        confirmation._record_answer(
            agree,
            amount,
            (post.get("comment") or "").strip(),
            file=file,
            ip=request.httprequest.remote_addr,
        )
        return request.redirect(confirmation.get_portal_url())

    def _parse_amount(self, text, confirmation):
        """The typed balance, rounded, or None when it is not an amount."""
        try:
            value = float((text or "").replace(",", ""))
        except ValueError:
            return None
        if not math.isfinite(value) or abs(value) >= 1e15:
            return None
        return float_round(value, precision_rounding=confirmation.currency_id.rounding)

    def _read_upload(self, upload):
        """((name, bytes), None) or (None, the reason it is refused)."""
        extension = os.path.splitext(upload.filename)[1].lower()
        if extension not in UPLOAD_EXTENSIONS:
            return None, request.env._(
                "Attach a PDF, an image, a spreadsheet or a text document."
            )
        content = upload.read(MAX_UPLOAD_BYTES + 1)
        if len(content) > MAX_UPLOAD_BYTES:
            return None, request.env._("The file is larger than 10 MB.")
        return (upload.filename, content), None
