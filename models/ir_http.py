import re

from werkzeug.exceptions import HTTPException, LengthRequired

from odoo import models
from odoo.http import request

# the balance confirmation page, its errors included
CONFIRMATION_PATH = re.compile(r"/my/confirmation(/|$)")
CONFIRMATION_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "Cache-Control": "no-store",
}


class IrHttp(models.AbstractModel):
    _inherit = "ir.http"

    @classmethod
    def _pre_dispatch(cls, rule, args):
        """The page's forms send their length: a chunked body (no length to
        check before reading it) is refused with 411."""
        httprequest = request.httprequest
        if (
            cls._is_confirmation_page()
            and "chunked" in httprequest.headers.get("Transfer-Encoding", "").lower()
        ):
            raise LengthRequired()
        return super()._pre_dispatch(rule, args)

    @classmethod
    def _post_dispatch(cls, response):
        result = super()._post_dispatch(response)
        if cls._is_confirmation_page():
            response.headers.update(CONFIRMATION_HEADERS)
        return result

    @classmethod
    def _handle_error(cls, exception):
        """Errors of the page (404, 400, 413) carry its headers too."""
        response = super()._handle_error(exception)
        if not cls._is_confirmation_page():
            return response
        if isinstance(response, HTTPException):
            response = response.get_response(request.httprequest.environ)
        response.headers.update(CONFIRMATION_HEADERS)
        return response

    @classmethod
    def _is_confirmation_page(cls):
        return bool(CONFIRMATION_PATH.match(request.httprequest.path))
