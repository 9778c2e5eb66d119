"""A company's documents server carries only the add-on's emails, and sends
them from an address its account may use (issue "Send only our mail")."""

import contextlib
from email.utils import getaddresses

from odoo.tests import TransactionCase, new_test_user, tagged
from odoo.tools import config

from .common import (
    SMTP_USER,
    RecordingHandler,
    SMTPTestServer,
    forget_send_marks,
    free_port,
)
from .common import real_smtp_delivery as real_smtp

# senders of emails the add-on did not create: a password reset from another
# domain, company A's account and email, company B's account, nobody
SENDERS = (
    "noreply@other.example",
    "docs@a.example.com",
    "billing@a.example.com",
    "b@b.example.com",
    False,
)


def addresses(header):
    """[(name, address)] of a received header."""
    return getaddresses([str(header or "")])


class AccountOnlyHandler(RecordingHandler):
    """Like Microsoft 365 or Google: refuses any MAIL FROM but its account."""

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if address != SMTP_USER:
            return (
                f"550 5.7.60 SendAsDenied; {SMTP_USER} not allowed to send as {address}"
            )
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"


@contextlib.contextmanager
def config_smtp(port):
    """Odoo's own outgoing server from the configuration file (no server
    record), as on a database with no outgoing server."""
    keys = ("smtp_server", "smtp_port", "smtp_ssl", "smtp_user", "smtp_password")
    saved = {key: config.get(key) for key in keys}
    config.options.update(
        smtp_server="127.0.0.1",
        smtp_port=port,
        smtp_ssl=False,
        smtp_user=False,
        smtp_password=False,
    )
    try:
        yield
    finally:
        config.options.update(saved)


@tagged("post_install", "-at_install")
class TestServerScope(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.MailServer = cls.env["ir.mail_server"].sudo()
        # databases start without any outgoing server of their own
        cls.MailServer.search([]).active = False
        cls.company_a = cls.env.company
        cls.company_a.email = "billing@a.example.com"
        cls.company_b = cls.env["res.company"].create(
            {"name": "Company B", "email": "billing@b.example.com"}
        )

    def setUp(self):
        super().setUp()
        forget_send_marks(self)

    def _own_server(self, company, port=587, **values):
        company.write(
            {
                "document_smtp_use_default": False,
                "document_smtp_host": "127.0.0.1",
                "document_smtp_port": port,
                "document_smtp_encryption": "none",
                "document_smtp_user": "docs@a.example.com",
                "document_smtp_pass": "pw",
                **values,
            }
        )
        return company.document_mail_server_id

    def _answers(self):
        """Odoo's choice for each sender: connect() without a server, and
        the mail queue (which passes every server)."""
        everyone = self.MailServer.search([], order="sequence, id")
        return {
            sender: (
                self.MailServer._find_mail_server(sender),
                self.MailServer._find_mail_server(sender, everyone),
            )
            for sender in SENDERS
        }

    def assertSameChoiceAsWithoutOurServers(self):
        ours = self.MailServer.search([("document_company_id", "!=", False)])
        self.assertTrue(ours)
        answers = self._answers()
        ours.active = False
        without = self._answers()
        ours.active = True
        self.assertEqual(answers, without)
        return answers

    def test_no_other_server_smtp_from_config(self):
        self._own_server(self.company_a)
        # a company without email nor account: a server without from_filter
        self._own_server(
            self.company_b,
            document_smtp_authentication=False,
            document_smtp_user=False,
        )
        self.company_b.email = False
        self.assertFalse(self.company_b.document_mail_server_id.from_filter)
        answers = self.assertSameChoiceAsWithoutOurServers()
        for sender in SENDERS:
            self.assertFalse(answers[sender][0][0], "config SMTP for every sender")

    def test_another_default_server(self):
        default = self.MailServer.create(
            {"name": "Default", "smtp_host": "smtp.default.example", "sequence": 60}
        )
        self._own_server(self.company_a)
        answers = self.assertSameChoiceAsWithoutOurServers()
        for sender in SENDERS:
            self.assertEqual(answers[sender][0][0], default)

    def test_two_companies_each_its_own_server(self):
        self._own_server(self.company_a)
        self._own_server(self.company_b, document_smtp_user="b@b.example.com")
        self.assertSameChoiceAsWithoutOurServers()

    def test_core_notification_while_our_server_is_down(self):
        """A chatter notification never goes to the company's server, even
        from its own account, and goes out while that server is down."""
        self._own_server(self.company_a, port=free_port())  # nothing listens
        # its author writes from the account of the company's own server
        author = self.env["res.partner"].create(
            {"name": "Author", "email": "docs@a.example.com"}
        )
        follower = self.env["res.partner"].create(
            {"name": "Follower", "email": "follower@customer.example"}
        )
        record = self.env["res.partner"].create({"name": "Anything"})
        with SMTPTestServer() as default_smtp, SMTPTestServer() as config_server:
            hand_made = self.MailServer.create(
                {
                    "name": "Default",
                    "smtp_host": "127.0.0.1",
                    "smtp_port": default_smtp.port,
                    "sequence": 60,
                }
            )
            for label, received in (
                ("another default server", default_smtp),
                ("SMTP from the configuration", config_server),
            ):
                with self.subTest(label), config_smtp(config_server.port):
                    message = record.with_context(
                        mail_notify_force_send=False
                    ).message_post(
                        author_id=author.id,
                        body="Hello",
                        partner_ids=follower.ids,
                        message_type="comment",
                        subtype_xmlid="mail.mt_comment",
                    )
                    mail = self.env["mail.mail"].search(
                        [("mail_message_id", "=", message.id)]
                    )
                    self.assertFalse(mail.mail_server_id)
                    with real_smtp():
                        mail.send()
                    self.assertEqual(
                        message.notification_ids.notification_status, "sent"
                    )
                    self.assertEqual(len(received.messages), 1)
                    self.assertEqual(
                        received.messages[0]["rcpt_tos"], ["follower@customer.example"]
                    )
                hand_made.active = False

    def test_in_flight_marks_only_the_email_being_sent(self):
        with SMTPTestServer() as smtp:
            server = self._own_server(self.company_a, port=smtp.port)
            values = {
                "subject": "Shared Message-Id",
                "body_html": "<p>Hi</p>",
                "email_from": "docs@a.example.com",
                "email_to": "customer@customer.example",
                "message_id": "<shared.1@a.example.com>",
                "auto_delete": False,
            }
            ours = self.env["mail.mail"].create(dict(values, mail_server_id=server.id))
            other = self.env["mail.mail"].create(values)
            with real_smtp():
                ours.send()
            self.assertEqual(len(smtp.messages), 1)
        self.assertEqual(ours.state, "sent")
        other.invalidate_recordset()
        self.assertEqual((other.state, other.failure_reason), ("outgoing", False))


@tagged("post_install", "-at_install")
class TestSenderAccepted(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env["ir.mail_server"].sudo().search([]).active = False
        cls.company = cls.env.company
        cls.company.email = "billing@company.example.com"
        cls.salesperson = new_test_user(
            cls.env,
            login="sally",
            name="Sally Sales",
            email="sally@company.example.com",
        )

    def setUp(self):
        super().setUp()
        forget_send_marks(self)

    def _mail(self, email_from, **values):
        return self.env["mail.mail"].create(
            {
                "subject": "Invoice",
                "body_html": "<p>Your invoice</p>",
                "email_from": email_from,
                "email_to": "customer@customer.example",
                "auto_delete": False,
                **values,
            }
        )

    def test_sender_becomes_the_account_reply_to_the_salesperson(self):
        with SMTPTestServer(
            "starttls", auth=True, handler=AccountOnlyHandler()
        ) as smtp:
            self.company.write(smtp.company_values())
            server = self.company.document_mail_server_id
            mail = self._mail(
                self.salesperson.email_formatted, mail_server_id=server.id
            )
            with real_smtp():
                mail.send()
            self.assertEqual(mail.state, "sent", mail.failure_reason)
            [received] = smtp.messages
        self.assertEqual(received["mail_from"], SMTP_USER)
        self.assertEqual(
            addresses(received["message"]["From"]), [("Sally Sales", SMTP_USER)]
        )
        self.assertIn(
            ("Sally Sales", "sally@company.example.com"),
            addresses(received["message"]["Reply-To"]),
        )

    def test_sender_the_account_accepts_is_kept(self):
        with SMTPTestServer(
            "starttls", auth=True, handler=AccountOnlyHandler()
        ) as smtp:
            self.company.write(smtp.company_values())
            server = self.company.document_mail_server_id
            mail = self._mail(f'"Docs" <{SMTP_USER}>', mail_server_id=server.id)
            with real_smtp():
                mail.send()
            [received] = smtp.messages
        self.assertEqual(addresses(received["message"]["From"]), [("Docs", SMTP_USER)])
        self.assertEqual(
            addresses(received["message"]["Reply-To"]), [("Docs", SMTP_USER)]
        )

    def test_default_service_keeps_core_sender(self):
        """A company on the default service sends as core does, while another
        company has its own server (its account is not this sender's)."""
        other = self.env["res.company"].create({"name": "Other"})
        with SMTPTestServer() as own, SMTPTestServer() as default_smtp:
            other.write(own.company_values())
            self.company.document_smtp_use_default = True
            mail = self._mail(self.salesperson.email_formatted)
            with config_smtp(default_smtp.port), real_smtp():
                mail.send()
            self.assertEqual(mail.state, "sent", mail.failure_reason)
            self.assertFalse(own.messages)
            [received] = default_smtp.messages
        self.assertEqual(
            addresses(received["message"]["From"]),
            [("Sally Sales", "sally@company.example.com")],
        )
