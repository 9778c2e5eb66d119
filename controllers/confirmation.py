import contextlib
import math
import os

from psycopg2.errors import LockNotAvailable

from odoo import http
from odoo.http import request
from odoo.tools import SQL, float_round

# what a partner may attach to their answer
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
# the answer's other fields; the page's other requests carry less: werkzeug
# refuses a larger body (413) before Odoo spools it
MAX_FORM_BYTES = 64 * 1024
MAX_COMMENT_CHARS = 2000
MAX_NAME_CHARS = 128
# our tokens are 64 ASCII characters (36 for links sent before 18.0.1.2.0):
# anything far from that is not one
MAX_TOKEN_CHARS = 128
# the longest a visitor waits for the campaign's evidence, busy elsewhere
LOCK_TIMEOUT = "3s"
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
        if not self._is_token_shaped(access_token):
            return None
        if not confirmation.exists():
            return None
        if not confirmation._check_confirmation_token(access_token):
            return None
        if not confirmation._is_link_valid():
            return None
        # the page and what it records speak the partner's language
        lang = confirmation.partner_id.lang or confirmation.company_id.partner_id.lang
        request.update_context(lang=lang)
        # the pages' forms carry the token the visitor gave: none is stored
        return confirmation.with_context(lang=lang, confirmation_token=access_token)

    def _is_token_shaped(self, access_token):
        """consteq compares ASCII text only: any other token is simply wrong."""
        return (
            isinstance(access_token, str)
            and 0 < len(access_token) <= MAX_TOKEN_CHARS
            and access_token.isascii()
        )

    def _render(self, confirmation, template, values=None, **kw):
        return request.render(
            f"account_document_email.{template}",
            {
                "confirmation": confirmation,
                "company": confirmation.company_id,
                "res_company": confirmation.company_id,
                "no_header": True,
                "no_footer": True,
                "access_token": confirmation.env.context["confirmation_token"],
                **(values or {}),
            },
            **kw,
        )

    def _render_page(self, confirmation, error=None, **kw):
        """The balance, its open items and the answer (its form or as recorded)."""
        values = {
            "items": confirmation._get_open_items(),
            "direction": confirmation._get_direction(),
            "error": error,
            "max_comment_chars": MAX_COMMENT_CHARS,
        }
        return self._render(confirmation, "confirmation_page", values, **kw)

    @http.route(
        "/my/confirmation/<int:request_id>",
        type="http",
        auth="public",
        methods=["GET"],
        sitemap=False,
        max_content_length=MAX_FORM_BYTES,
    )
    def confirmation_page(self, request_id, access_token=None, **kwargs):
        """The letterhead and a button: a GET (a mail scanner's too) shows no
        figures and marks nothing."""
        confirmation = self._get_request(request_id, access_token)
        if not confirmation:
            return request.not_found()
        return self._render(confirmation, "confirmation_landing")

    @http.route(
        "/my/confirmation/<int:request_id>/open",
        type="http",
        auth="public",
        methods=["POST"],
        csrf=True,
        sitemap=False,
        max_content_length=MAX_FORM_BYTES,
    )
    def confirmation_open(self, request_id, access_token=None, **kwargs):
        """The button pressed: someone opened the request."""
        confirmation = self._get_request(request_id, access_token)
        if not confirmation:
            return request.not_found()
        code_mail = self._while_head_free(self._open, confirmation)
        if code_mail is None:
            return self._render_busy()
        # sent once the transaction committed, on a new cursor: no lock held
        # while SMTP talks, a busy head or a failed commit sends nothing
        if code_mail:
            code_mail.send_after_commit()
        return self._render_page(confirmation)

    def _open(self, confirmation):
        """Opened, and the code queued when one is needed (sent by the caller)."""
        confirmation._mark_opened(**self._visitor())
        if confirmation._needs_code() and confirmation._is_answerable():
            return confirmation._send_answer_code(**self._visitor())
        return request.env["mail.mail"]

    def _while_head_free(self, action, *args):
        """``action``'s result, ``action`` appending to the evidence and
        waiting a few seconds at most for the campaign's head; None when the
        head stayed busy: nothing of it is kept."""
        cr = request.env.cr
        try:
            with cr.savepoint(), self._lock_timeout(cr):
                return action(*args)
        except LockNotAvailable:
            return None

    @contextlib.contextmanager
    def _lock_timeout(self, cr):
        """LOCK_TIMEOUT for the block only: the savepoint's rollback undoes it,
        and its end restores the previous value, which SET LOCAL would not."""
        cr.execute(SQL("SHOW lock_timeout"))
        previous = cr.fetchone()[0]
        cr.execute(SQL("SELECT set_config('lock_timeout', %s, true)", LOCK_TIMEOUT))
        yield
        # what the block wrote waits for locks under the timeout too
        request.env.flush_all()
        cr.execute(SQL("SELECT set_config('lock_timeout', %s, true)", previous))

    def _render_busy(self):
        """Try again shortly: no figure, no name of the request."""
        error = request.env._(
            "Your request could not be recorded just now. Please try again in a moment."
        )
        return request.render(
            "account_document_email.confirmation_busy",
            {"error": error, "no_header": True, "no_footer": True},
            status=503,
        )

    @http.route(
        "/my/confirmation/<int:request_id>/answer",
        type="http",
        auth="public",
        methods=["POST"],
        csrf=True,
        sitemap=False,
        max_content_length=MAX_UPLOAD_BYTES + MAX_FORM_BYTES,
    )
    def confirmation_answer(self, request_id, access_token=None, answer=None, **post):
        confirmation = self._get_request(request_id, access_token)
        if not confirmation:
            return request.not_found()
        refusal = self._refuse_answer(confirmation)
        if refusal:
            return refusal
        response = self._while_head_free(self._answer, confirmation, answer, post)
        return self._render_busy() if response is None else response

    def _answer(self, confirmation, answer, post):
        values, error = self._read_answer(confirmation, answer, post)
        if (
            not error
            and confirmation._needs_code()
            and not confirmation._check_answer_code(post.get("code"))
        ):
            error = request.env._(
                "This code is wrong or no longer valid. Open the link "
                "again for a new code."
            )
        if error:
            return self._render_page(confirmation, error=error)
        confirmation._record_answer(
            **values,
            ip=request.httprequest.remote_addr,
            user_agent=self._visitor()["user_agent"],
        )
        return self._render_page(confirmation)

    def _visitor(self):
        """What the evidence records of who acted on the page."""
        httprequest = request.httprequest
        return {
            "ip": httprequest.remote_addr or "",
            "user_agent": (httprequest.user_agent.string or "")[:MAX_NAME_CHARS],
        }

    def _refuse_answer(self, confirmation):
        """The page to show instead of reading the answer, or None."""
        Attempt = request.env["account.confirmation.attempt"].sudo()
        if not Attempt._count_answer(confirmation):
            error = request.env._(
                "Too many answers were sent from this link. Try again in 10 minutes."
            )
            return self._render_page(confirmation, error=error, status=429)
        if not confirmation._is_answerable():
            # a second answer changes nothing: the page shows the first one
            return self._render_page(confirmation)
        if request.env.user._is_internal():
            # ISA 505: the partner answers, not someone of the company
            error = request.env._(
                "You are signed in as a user of %(company)s: only the "
                "partner may answer. Sign out or use a private window.",
                company=confirmation.company_id.name,
            )
            return self._render_page(confirmation, error=error)
        return None

    def _read_answer(self, confirmation, answer, post):
        """(the answer's values for _record_answer, None) or (None, the reason
        it is refused)."""
        agree = answer == "agree"
        amount = 0.0
        if not agree:
            amount = self._parse_amount(
                self._text(post.get("their_balance")), confirmation
            )
            if amount is None:
                return None, request.env._("Enter your balance.")
        comment = self._text(post.get("comment"))
        if len(comment) > MAX_COMMENT_CHARS:
            return None, request.env._(
                "Your comment is longer than %(max)s characters: shorten it, "
                "or attach a file.",
                max=MAX_COMMENT_CHARS,
            )
        responder = (
            self._text(post.get("responder_name"))[:MAX_NAME_CHARS],
            self._text(post.get("responder_role"))[:MAX_NAME_CHARS],
        )
        if not all(responder):
            return None, request.env._("Enter your name and your position.")
        upload = post.get("attachment")
        file = None
        if getattr(upload, "filename", None):
            file, error = self._read_upload(upload)
            if error:
                return None, error
        return {
            "agree": agree,
            "their_amount": amount,
            "comment": comment,
            "file": file,
            "responder": responder,
        }, None

    def _text(self, value):
        """A form field as typed, stripped; a file sent in its place is no text."""
        return value.strip() if isinstance(value, str) else ""

    def _parse_amount(self, text, confirmation):
        """The typed balance, rounded, or None when it is not an amount."""
        try:
            value = float(text.replace(",", ""))
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
