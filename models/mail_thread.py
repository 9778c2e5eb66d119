import email.policy
import logging
import re
from email import message_from_string

from odoo import api, models
from odoo.tools import email_normalize, email_split, html2plaintext
from odoo.tools.mail import decode_message_header, mail_header_msgid_re

_logger = logging.getLogger(__name__)

# headers naming the email a bounce answers: its own (the returned message's
# or headers'), Microsoft's copy of it, Gmail's DSN field, and a reply's
MESSAGE_ID_HEADERS = (
    "Message-Id",
    "X-Microsoft-Original-Message-ID",
    "X-Original-Message-ID",
    "In-Reply-To",
    "References",
)
# bounces without a DSN (RFC 3464): who sends them, what they are called
BOUNCE_SENDER_RE = re.compile(
    r"^(mailer-daemon|postmaster|microsoftexchange[0-9a-f]*)$", re.IGNORECASE
)
BOUNCE_SUBJECT_RE = re.compile(
    r"undeliver|delivery status notification|mail delivery (failed|failure)"
    r"|returned mail|delivery (has )?failed|failure notice|non.?delivery",
    re.IGNORECASE,
)
# a line telling why: an enhanced status code (5.1.1), else an SMTP reply
ENHANCED_STATUS_RE = re.compile(r"^.*\b[45]\.\d{1,3}\.\d{1,3}\b.*$", re.MULTILINE)
SMTP_REPLY_RE = re.compile(r"^.*\b[45]\d\d[ -].*$", re.MULTILINE)
# where a bounce without DSN starts quoting the original (its To and Cc)
ORIGINAL_COPY_RE = re.compile(
    r"^[ \t]*-+[ \t]*(this is a copy of|original message|the original message"
    r"|a copy of the original|below this line)",
    re.IGNORECASE | re.MULTILINE,
)
MAX_REFERENCES = 64


def address_re(address):
    """``address`` alone, not inside a longer one."""
    return re.compile(rf"(?<![\w.+-]){re.escape(address)}(?![\w-])", re.IGNORECASE)


class MailThread(models.AbstractModel):
    """Bounces of the add-on's own emails: matched to the email they answer
    even when core cannot (no returned message, several recipients, no DSN),
    with the DSN's reason. Any other incoming email is left to core."""

    _inherit = "mail.thread"

    @api.model
    def _message_parse_extract_bounce(self, email_message, message_dict):
        values = super()._message_parse_extract_bounce(email_message, message_dict)
        mail = self._document_find_answered_mail(email_message, message_dict)
        if not mail:
            return values
        if not values["is_bounce"] and not self._document_is_plain_bounce(message_dict):
            # a person's reply: core routes it to the document
            return values
        failures, reports = self._document_bounce_failures(email_message, mail)
        values.update(
            is_bounce=True,
            bounced_message=mail.mail_message_id,
            bounced_msg_ids=[mail.message_id],
            document_bounce={"mail": mail, "failures": failures, "reports": reports},
        )
        if failures:
            address = next(iter(failures))
            values["bounced_email"] = address
            values["bounced_partner"] = self._document_partners_of(address)
        return values

    @api.model
    def _routing_handle_bounce(self, email_message, message_dict):
        ours = message_dict.get("document_bounce")
        if not ours:
            return super()._routing_handle_bounce(email_message, message_dict)
        mail, failures = ours["mail"], ours["failures"]
        if not failures:
            # a delay or success report (Action: delayed, delivered): no bounce
            _logger.info(
                "Delivery report for %s without failure: %s",
                mail.message_id,
                ", ".join(ours["reports"]) or "none",
            )
            return None
        # core's handling (partners' bounce counters, chatter envelope) for
        # each address that bounced, then the add-on's own
        for address in filter(None, failures):
            super()._routing_handle_bounce(
                email_message,
                dict(
                    message_dict,
                    bounced_email=address,
                    bounced_partner=self._document_partners_of(address),
                ),
            )
        mail._document_receive_bounce(failures)
        return None

    @api.model
    def _document_partners_of(self, address):
        return (
            self.env["res.partner"].sudo().search([("email_normalized", "=", address)])
        )

    @api.model
    def _document_is_plain_bounce(self, message_dict):
        """A bounce core does not recognise (no DSN, sent by a postmaster):
        only asked of emails answering one of the add-on's."""
        sender = (email_split(message_dict.get("email_from") or "") or [""])[0]
        local = sender.split("@", 1)[0]
        return bool(
            BOUNCE_SENDER_RE.match(local)
            or BOUNCE_SUBJECT_RE.search(message_dict.get("subject") or "")
        )

    @api.model
    def _document_find_answered_mail(self, email_message, message_dict):
        """The add-on's email this one names (returned message or headers,
        DSN, In-Reply-To/References, or its text), or an empty recordset."""
        references = self._document_message_references(email_message)
        for key in ("in_reply_to", "references"):
            references += mail_header_msgid_re.findall(message_dict.get(key) or "")
        references = [ref.strip() for ref in references if ref.strip()]
        if not references:
            return self.env["mail.mail"]
        return (
            self.env["mail.mail"]
            .sudo()
            .search(
                [
                    ("document_email", "=", True),
                    ("message_id", "in", references[:MAX_REFERENCES]),
                ],
                order="id desc",
                limit=1,
            )
        )

    @api.model
    def _document_message_references(self, email_message):
        """Message-IDs in every part: headers of the returned message (or of
        text/rfc822-headers), DSN fields, and the text of bounces that quote
        the original's headers in their body."""
        references = []
        for part in email_message.walk():
            if part.get_content_type() == "text/rfc822-headers":
                part = message_from_string(part.get_content(), policy=email.policy.SMTP)
            for header in MESSAGE_ID_HEADERS:
                value = decode_message_header(part, header) or ""
                references += mail_header_msgid_re.findall(value)
        for text in self._document_bounce_texts(email_message, returned=True):
            references += mail_header_msgid_re.findall(text)
        return references

    @api.model
    def _document_bounce_texts(self, part, returned=False):
        """The text of the bounce's parts (plain, else HTML as text); the
        returned message's own text only when ``returned``."""
        if part.get_content_type() == "message/rfc822" and not returned:
            return []
        if part.is_multipart():
            return [
                text
                for sub in part.get_payload()
                for text in self._document_bounce_texts(sub, returned)
            ]
        if part.get_content_maintype() != "text" or part.get_filename():
            return []
        try:
            content = part.get_content()
        except (LookupError, ValueError):
            return []
        if part.get_content_subtype() == "html":
            content = html2plaintext(content)
        return [content] if isinstance(content, str) else []

    @api.model
    def _document_bounce_failures(self, email_message, mail):
        """({address: reason} of the recipients of ``mail`` that bounced,
        [the DSN's actions]): from the DSN's recipient fields, else from the
        bounce's text (a line with a status code naming the recipient)."""
        recipients = mail._get_document_recipient_emails()
        failures, reports = self._document_dsn_failures(email_message)
        if reports:
            return failures, reports
        texts = [
            ORIGINAL_COPY_RE.split(text, 1)[0]
            for text in self._document_bounce_texts(email_message)
        ]
        reason = self._document_text_reason(texts)
        # Exim names them in a header; others only in their text
        texts.append(str(email_message.get("X-Failed-Recipients") or ""))
        named = {
            address
            for address in recipients
            if any(address_re(address).search(text) for text in texts)
        }
        if not named and len(recipients) == 1:
            named = recipients
        # a bounce naming none of several recipients: still a bounce ("")
        return dict.fromkeys(sorted(named) or [""], reason), []

    @api.model
    def _document_dsn_failures(self, email_message):
        """({address: "Status 5.1.1: diagnostic"} of the failed recipients of
        the message/delivery-status part, [every recipient's action])."""
        failures, reports = {}, []
        for part in email_message.walk():
            if part.get_content_type() != "message/delivery-status":
                continue
            for fields_ in part.get_payload()[1:]:
                action = (fields_.get("Action") or "").strip().lower()
                recipient = fields_.get("Final-Recipient") or fields_.get(
                    "Original-Recipient"
                )
                address = email_normalize((recipient or "").partition(";")[2].strip())
                reports.append(action or "failed")
                if address and action in ("failed", ""):
                    failures[address] = self._document_dsn_reason(fields_)
        return failures, reports

    @api.model
    def _document_dsn_reason(self, fields_):
        status = " ".join((fields_.get("Status") or "").split())
        diagnostic = " ".join((fields_.get("Diagnostic-Code") or "").split())
        if status and diagnostic:
            return self.env._(
                "Status %(status)s: %(diagnostic)s",
                status=status,
                diagnostic=diagnostic,
            )
        return self.env._("Status %(status)s", status=status or diagnostic or "5.0.0")

    @api.model
    def _document_text_reason(self, texts):
        """The bounce's line giving the reason (status code), else its start."""
        for pattern in (ENHANCED_STATUS_RE, SMTP_REPLY_RE):
            for text in texts:
                found = pattern.search(text)
                if found:
                    return " ".join(found.group(0).split())[:500]
        start = " ".join(" ".join(texts).split())
        return start[:300] or self.env._("Undelivered (no reason given)")
