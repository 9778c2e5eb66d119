"""A company's server may cap the emails per SMTP connection and per minute;
the queue respects both for the add-on's emails only (issue 12, "SMTP limits
per company server")."""

from datetime import timedelta

from aiosmtpd.smtp import SMTP

from odoo import fields
from odoo.exceptions import ValidationError
from odoo.tests import TransactionCase, tagged

from odoo.addons.account_document_email.models.mail_mail import SLICE_PARAM

from .common import (
    RecordingHandler,
    SMTPTestServer,
    forget_send_marks,
    real_smtp_delivery,
)


class SessionRecordingHandler(RecordingHandler):
    """Also notes the client's address and port of each message: one port
    per SMTP connection."""

    async def handle_DATA(self, server, session, envelope):
        answer = await super().handle_DATA(server, session, envelope)
        with self.lock:
            self.messages[-1]["peer"] = session.peer
        return answer


class ClosingAtRcptHandler(RecordingHandler):
    """Answers the Nth RCPT TO of its life with 421 (the server shutting
    down): that message was refused before DATA."""

    def __init__(self, close_at):
        super().__init__()
        self.close_at = close_at
        self.rcpt_commands = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self.lock:
            self.rcpt_commands += 1
            closing = self.rcpt_commands == self.close_at
        if closing:
            return "421 4.3.2 Service shutting down, closing transmission channel"
        envelope.rcpt_tos.append(address)
        return "250 OK"


class DataCommandSMTP(SMTP):
    """Lets the handler answer the DATA command itself (handle_DATA only
    sees a message already received): an error instead of 354, or the
    connection closed while the client waits for 354."""

    async def smtp_DATA(self, arg):
        answer = self.event_handler.answer_data_command()
        if answer == "close":
            self.transport.close()
            return
        if answer:
            await self.push(answer)
            return
        await super().smtp_DATA(arg)


class DataCommandHandler(RecordingHandler):
    """Answers the first DATA command of its life with ANSWER ("close": the
    connection closed there), the others with 354; notes every RSET."""

    smtp_class = DataCommandSMTP

    def __init__(self, answer):
        super().__init__()
        self.answer = answer
        self.data_commands = 0
        self.resets = 0

    def answer_data_command(self):
        with self.lock:
            self.data_commands += 1
            return self.answer if self.data_commands == 1 else None

    async def handle_RSET(self, server, session, envelope):
        with self.lock:
            self.resets += 1
        return "250 OK"


class MalformedEndOfDataHandler(RecordingHandler):
    """Stores the first message, then answers its end of data with a line
    that is no SMTP reply (no code): the server may well have taken it."""

    async def handle_DATA(self, server, session, envelope):
        answer = await super().handle_DATA(server, session, envelope)
        return "Message accepted" if len(self.messages) == 1 else answer


class RefusingRecipientsHandler(RecordingHandler):
    """Answers RCPT TO with the code set for the address (250 otherwise)."""

    def __init__(self, answers):
        super().__init__()
        self.answers = answers

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        answer = self.answers.get(address)
        if answer:
            return answer
        envelope.rcpt_tos.append(address)
        return "250 OK"


def sessions(smtp):
    """The number of messages each SMTP connection carried, in order."""
    counts = {}
    for message in smtp.messages:
        counts[message["peer"]] = counts.get(message["peer"], 0) + 1
    return list(counts.values())


@tagged("post_install", "-at_install")
class TestSmtpLimits(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # databases start without any outgoing server of their own
        cls.env["ir.mail_server"].sudo().search([]).active = False
        cls.company = cls.env.company
        cls.company.email = "billing@company.example.com"
        cls.customer = cls.env["res.partner"].create(
            {"name": "Customer", "email": "customer@customer.example"}
        )
        cls.author = cls.env["res.partner"].create(
            {"name": "Author", "email": "author@company.example.com"}
        )

    def setUp(self):
        super().setUp()
        forget_send_marks(self)

    def _queue(self, count, mail_server=False):
        """Queued emails like the add-on's: one per message, each with the
        customer's notification, through the given server."""
        mails = self.env["mail.mail"]
        for index in range(count):
            message = self.customer.with_context(
                mail_notify_force_send=False
            ).message_post(
                author_id=self.author.id,
                body=f"Document {index}",
                subject=f"Document {index}",
                partner_ids=self.customer.ids,
                message_type="comment",
                subtype_xmlid="mail.mt_comment",
            )
            mails |= self.env["mail.mail"].search(
                [("mail_message_id", "=", message.id)]
            )
        self.assertEqual(len(mails), count)
        # kept after sending, as the add-on's emails are
        mails.write(
            {"mail_server_id": mail_server and mail_server.id, "auto_delete": False}
        )
        return mails

    def _own_server(self, smtp, **limits):
        self.company.write(smtp.company_values(**limits))
        return self.company.document_mail_server_id

    def _save_settings(self, **values):
        self.env["res.config.settings"].create(values).execute()

    def test_settings_synced_to_the_server(self):
        with SMTPTestServer() as smtp:
            self._save_settings(
                **smtp.settings_values(smtp_max_per_connection=20),
                smtp_max_per_minute=30,
            )
        server = self.company.document_mail_server_id
        self.assertEqual(
            (server.document_max_per_connection, server.document_max_per_minute),
            (20, 30),
        )
        values = self.env["res.config.settings"].default_get(
            ["smtp_max_per_connection", "smtp_max_per_minute"]
        )
        self.assertEqual(values["smtp_max_per_connection"], 20)
        self.assertEqual(values["smtp_max_per_minute"], 30)
        self._save_settings(
            **smtp.settings_values(smtp_max_per_connection=0, smtp_max_per_minute=0)
        )
        self.assertEqual(
            (server.document_max_per_connection, server.document_max_per_minute),
            (0, 0),
        )
        with self.assertRaises(ValidationError):
            self.company.document_smtp_max_per_minute = -1

    def test_new_connection_after_the_limit(self):
        with SMTPTestServer(handler=SessionRecordingHandler()) as smtp:
            server = self._own_server(smtp, smtp_max_per_connection=2)
            mails = self._queue(5, server)
            with real_smtp_delivery():
                mails.send()
            self.assertEqual(sessions(smtp), [2, 2, 1])
            subjects = sorted(m["message"]["Subject"] for m in smtp.messages)
        self.assertEqual(subjects, [f"Document {index}" for index in range(5)])
        self.assertEqual(set(mails.mapped("state")), {"sent"})

    def test_without_limit_one_connection(self):
        with SMTPTestServer(handler=SessionRecordingHandler()) as smtp:
            mails = self._queue(5, self._own_server(smtp))
            with real_smtp_delivery():
                mails.send()
            self.assertEqual(sessions(smtp), [5])

    def test_per_minute_limit_waits_not_fails(self):
        cron = self.env.ref("mail.ir_cron_mail_scheduler_action")
        with SMTPTestServer() as smtp:
            server = self._own_server(smtp, smtp_max_per_minute=2)
            mails = self._queue(5, server)
            with real_smtp_delivery():
                mails.send()
            self.assertEqual(len(smtp.messages), 2)
            sent = mails.filtered(lambda mail: mail.state == "sent")
            waiting = mails - sent
            self.assertEqual(len(sent), 2)
            self.assertTrue(all(sent.mapped("document_sent_at")))
            self.assertEqual(set(waiting.mapped("state")), {"outgoing"})
            retry_at = waiting[0].scheduled_date
            now = fields.Datetime.now()
            self.assertTrue(now < retry_at <= now + timedelta(minutes=2))
            self.assertEqual(set(waiting.mapped("scheduled_date")), {retry_at})
            reason = (
                "Waiting for the provider's limit (2 per minute); next attempt "
                f"at {retry_at:%H:%M} UTC."
            )
            self.assertEqual(set(waiting.mapped("failure_reason")), {reason})
            notifications = waiting.mail_message_id.notification_ids
            self.assertEqual(len(notifications), 3)
            self.assertEqual(
                set(notifications.mapped("notification_status")), {"ready"}
            )
            self.assertTrue(
                self.env["ir.cron.trigger"].search(
                    [("cron_id", "=", cron.id), ("call_at", "=", retry_at)]
                )
            )
            # within the same minute, sending again sends nothing more
            with real_smtp_delivery():
                waiting.send()
            self.assertEqual(len(smtp.messages), 2)
            self.assertEqual(set(waiting.mapped("state")), {"outgoing"})
            # a minute later the next two go out, the last one waits again
            # (the server's slots are counted over the last minute for all
            # workers)
            self.env.flush_all()
            self.env.cr.execute(
                "UPDATE mail_mail SET document_sent_at = document_sent_at - interval "
                "'2 minutes' "
                "WHERE id IN %s",
                [tuple(sent.ids)],
            )
            self.env.cr.execute(
                "UPDATE document_mail_server_slot SET taken_at = "
                "taken_at - interval '2 minutes' WHERE server_id = %s",
                [server.id],
            )
            self.env.invalidate_all()
            with real_smtp_delivery():
                waiting.send()
            self.assertEqual(len(smtp.messages), 4)
        self.assertEqual(waiting.mapped("state").count("sent"), 2)
        self.assertEqual(waiting.mapped("state").count("outgoing"), 1)
        self.assertFalse(mails.filtered(lambda mail: mail.state == "exception"))
        subjects = [m["message"]["Subject"] for m in smtp.messages]
        self.assertEqual(len(set(subjects)), 4, "no email delivered twice")

    def test_core_email_unaffected(self):
        """Limits of a company's server never touch an email it does not
        carry: core's choice of server, one connection, all delivered."""
        with (
            SMTPTestServer() as own,
            SMTPTestServer(handler=SessionRecordingHandler()) as default_smtp,
        ):
            self._own_server(own, smtp_max_per_connection=1, smtp_max_per_minute=1)
            self.env["ir.mail_server"].sudo().create(
                {
                    "name": "Default",
                    "smtp_host": "127.0.0.1",
                    "smtp_port": default_smtp.port,
                    "sequence": 60,
                }
            )
            mails = self._queue(3)
            with real_smtp_delivery():
                mails.send()
            self.assertFalse(own.messages)
            self.assertEqual(sessions(default_smtp), [3])
        self.assertEqual(set(mails.mapped("state")), {"sent"})
        self.assertFalse(any(mails.mapped("failure_reason")))

    def test_421_after_one_recipient_got_it_is_not_sent_again(self):
        """Core sends one message per recipient partner, all with the email's
        Message-Id: the first is accepted, the second refused with 421 before
        DATA. A retry would send it to the first again: the email is left
        uncertain (never outgoing), the recipient not reached failed with a
        reason, and the queue sends nothing more."""
        second = self.env["res.partner"].create(
            {"name": "Second", "email": "second@customer.example"}
        )
        with SMTPTestServer(handler=ClosingAtRcptHandler(close_at=2)) as smtp:
            server = self._own_server(smtp)
            message = self.customer.with_context(
                mail_notify_force_send=False
            ).message_post(
                author_id=self.author.id,
                body="Document",
                subject="Document",
                partner_ids=(self.customer | second).ids,
                message_type="comment",
                subtype_xmlid="mail.mt_comment",
            )
            mail = self.env["mail.mail"].search([("mail_message_id", "=", message.id)])
            self.assertEqual(len(mail.recipient_ids), 2)
            mail.write({"mail_server_id": server.id, "auto_delete": False})
            with real_smtp_delivery():
                mail.send()
            self.assertEqual(len(smtp.messages), 1)
            self.assertEqual((mail.state, mail.document_uncertain), ("exception", True))
            self.assertIn("not sent again automatically", mail.failure_reason)
            statuses = sorted(mail.notification_ids.mapped("notification_status"))
            self.assertEqual(statuses, ["exception", "sent"])
            failed = mail.notification_ids.filtered(
                lambda n: n.notification_status == "exception"
            )
            self.assertIn("Delivered to", failed.failure_reason)
            mail.scheduled_date = fields.Datetime.now()
            with real_smtp_delivery():
                self.env["mail.mail"].process_email_queue()
            self.assertEqual(len(smtp.messages), 1, "nobody got it twice")

    def test_bad_slice_parameter_falls_back_to_the_default(self):
        """A slice size that is no whole number ("20.0", "abc") never stops
        the queue: core's emails and ours are all delivered."""
        params = self.env["ir.config_parameter"].sudo()
        with (
            SMTPTestServer() as own,
            SMTPTestServer(handler=SessionRecordingHandler()) as default_smtp,
        ):
            server = self._own_server(own)
            self.env["ir.mail_server"].sudo().create(
                {
                    "name": "Default",
                    "smtp_host": "127.0.0.1",
                    "smtp_port": default_smtp.port,
                    "sequence": 60,
                }
            )
            for value in ("abc", "20.0"):
                params.set_param(SLICE_PARAM, value)
                mails = self._queue(2) | self._queue(2, server)
                with real_smtp_delivery():
                    mails.send()
                self.assertEqual(set(mails.mapped("state")), {"sent"}, value)
            self.assertEqual(len(own.messages), 4)
            self.assertEqual(len(default_smtp.messages), 4)

    def test_data_command_refused_resets_the_session(self):
        """The server answers DATA itself with an error (no 354): nothing was
        taken; the session is reset before the next email, which goes; the
        refused email waits (4xx) or fails (5xx), never uncertain."""
        for answer, state in (
            ("451 4.3.0 Try again later", "outgoing"),
            ("554 5.7.1 Not allowed", "exception"),
        ):
            self._refuse_data_command(answer, state)

    def _refuse_data_command(self, answer, state):
        handler = DataCommandHandler(answer)
        with SMTPTestServer(handler=handler) as smtp:
            mails = self._queue(2, self._own_server(smtp))
            with real_smtp_delivery():
                mails.send()
            self.assertEqual(handler.data_commands, 2, answer)
            self.assertEqual(len(smtp.messages), 1, answer)
            self.assertEqual(
                smtp.messages[0]["message"]["Subject"], "Document 1", answer
            )
        self.assertGreaterEqual(handler.resets, 1, answer)
        self.assertEqual(mails[0].state, state, answer)
        self.assertFalse(mails[0].document_uncertain, answer)
        self.assertEqual(mails[1].state, "sent", answer)

    def test_data_command_answered_421_closes_the_session(self):
        """The server answers DATA itself with 421 (shutting down): nothing
        was taken, the email waits, never uncertain; the session is closed,
        so the next email waits too (never sent on it), and both go once
        the queue runs again."""
        handler = DataCommandHandler("421 4.3.2 Service shutting down")
        with SMTPTestServer(handler=handler) as smtp:
            mails = self._queue(2, self._own_server(smtp))
            with real_smtp_delivery():
                mails.send()
            self.assertEqual(handler.data_commands, 1)
            self.assertFalse(smtp.messages)
            self.assertEqual(set(mails.mapped("state")), {"outgoing"})
            self.assertFalse(any(mails.mapped("document_uncertain")))
            self.assertEqual(handler.resets, 0, "closed, not reset")
            mails.scheduled_date = fields.Datetime.now()
            with real_smtp_delivery():
                self.env["mail.mail"].process_email_queue()
            subjects = sorted(m["message"]["Subject"] for m in smtp.messages)
        self.assertEqual(subjects, ["Document 0", "Document 1"], "each once")
        self.assertEqual(set(mails.mapped("state")), {"sent"})

    def test_malformed_end_of_data_reply_is_uncertain(self):
        """After the whole message the server answers with no reply code
        (smtplib: -1): only a well-formed 4xx/5xx says it was not taken, so
        the email is left uncertain and never sent again; the session is
        closed, the next email goes on a new one."""
        with SMTPTestServer(handler=MalformedEndOfDataHandler()) as smtp:
            mails = self._queue(2, self._own_server(smtp))
            with real_smtp_delivery():
                mails.send()
            self.assertEqual(
                (mails[0].state, mails[0].document_uncertain), ("exception", True)
            )
            self.assertIn("may have been delivered", mails[0].failure_reason)
            mails.scheduled_date = fields.Datetime.now()
            with real_smtp_delivery():
                self.env["mail.mail"].process_email_queue()
            self.assertEqual(mails[1].state, "sent")
            subjects = [m["message"]["Subject"] for m in smtp.messages]
        self.assertEqual(subjects, ["Document 0", "Document 1"], "each once")

    def test_421_for_one_of_several_recipients_requeues_the_email(self):
        """One message to three addresses: the first refused (550), the second
        answered 421 (the server closes): nothing was handed over, the whole
        email waits for the next attempt; nothing is marked delivered."""
        refused = {
            "a@customer.example": "550 5.1.1 No such user",
            "b@customer.example": "421 4.3.2 Service shutting down",
        }
        with SMTPTestServer(handler=RefusingRecipientsHandler(refused)) as smtp:
            mail = self._queue(1, self._own_server(smtp))
            mail.write(
                {
                    "recipient_ids": [(5,)],
                    "email_to": "a@customer.example, b@customer.example, "
                    "c@customer.example",
                }
            )
            with real_smtp_delivery():
                mail.send()
            self.assertFalse(smtp.messages)
        self.assertEqual(mail.state, "outgoing")
        self.assertFalse(mail.document_uncertain)
        self.assertFalse(mail.document_sent_at)
        self.assertIn("Temporarily refused", mail.failure_reason)

    def test_disconnect_waiting_for_354_requeues_never_uncertain(self):
        """The server closes the connection while the client waits for its
        answer to DATA: no byte of the message was sent, so the email waits
        for the next attempt (never uncertain), as does the next one."""
        handler = DataCommandHandler("close")
        with SMTPTestServer(handler=handler) as smtp:
            mails = self._queue(2, self._own_server(smtp))
            with real_smtp_delivery():
                mails.send()
            self.assertEqual(handler.data_commands, 1)
            self.assertFalse(smtp.messages)
        self.assertEqual(set(mails.mapped("state")), {"outgoing"})
        self.assertFalse(any(mails.mapped("document_uncertain")))
        self.assertIn("Temporarily refused", mails[0].failure_reason)
