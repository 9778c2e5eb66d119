"""Invoices whose official files a localisation makes by committing
(l10n_es_edi_tbai: TicketBAI submits each invoice to the Basque Government,
then commits when core's Send allows it), sent as one batch and processed by
a real child process (tests/queue_child.py: outside test mode, where core's
Send lets them commit). The web service is unreachable, as from a Basque
customer's server without network. Each chunk commits whole: never an email
without its line's stage, nor a line queued without its email."""

import json
import signal

from odoo.tests import tagged

from .test_queue_processes import ChildProcessCase

TBAI_ERROR = "Error when sending the invoice to TicketBAI:"


@tagged("post_install", "-at_install")
class TestTicketBaiBatch(ChildProcessCase):
    """Runs in a database of its own with l10n_es_edi_tbai installed
    (scripts/test.sh); skipped elsewhere."""

    def setUp(self):
        super().setUp()
        if "l10n_es_edi_tbai.document" not in self.env:
            self.skipTest("l10n_es_edi_tbai is not installed in this database")

    def _batch(self, count):
        created = json.loads(self._run("tbai-batch", str(count)))
        self.addCleanup(self._cleanup_basque_batch, created)
        return created

    def _cleanup_basque_batch(self, created):
        moves = tuple(created["basque"] + [created["normal"]])
        with self.registry.cursor() as cr:
            cr.execute(
                "DELETE FROM document_email_batch WHERE id = %s", [created["batch"]]
            )
            cr.execute(
                "DELETE FROM mail_message WHERE model = 'account.move' "
                "AND res_id IN %s",
                [moves],
            )
            cr.execute(
                "SELECT l10n_es_tbai_post_document_id FROM account_move "
                "WHERE id IN %s AND l10n_es_tbai_post_document_id IS NOT NULL",
                [moves],
            )
            submissions = tuple(row[0] for row in cr.fetchall())
            cr.execute("DELETE FROM account_move WHERE id IN %s", [moves])
            if submissions:
                # the next batch starts a new TicketBAI chain
                cr.execute(
                    "DELETE FROM l10n_es_edi_tbai_document WHERE id IN %s",
                    [submissions],
                )
            cr.execute(
                "DELETE FROM ir_attachment WHERE res_model = 'account.move' "
                "AND res_id IN %s",
                [moves],
            )

    def _committed(self, created):
        """{move id: (line stage, line reason, [its emails], the email its
        line links, its TicketBAI submissions, its PDF, its chatter)} as
        committed by the children."""
        moves = tuple(created["basque"] + [created["normal"]])
        with self.registry.cursor() as cr:
            cr.execute(
                "SELECT l.res_id, l.stage, l.reason, "
                "       array_remove(array_agg(DISTINCT mm.id), NULL), l.mail_id, "
                "       count(DISTINCT d.id), bool_or(a.id IS NOT NULL), "
                "       string_agg(DISTINCT msg.body, ' ') "
                "  FROM document_email_batch_line l "
                "  JOIN account_move m ON m.id = l.res_id "
                "  LEFT JOIN mail_message msg "
                "    ON msg.model = 'account.move' AND msg.res_id = m.id "
                "  LEFT JOIN mail_mail mm ON mm.mail_message_id = msg.id "
                "  LEFT JOIN l10n_es_edi_tbai_document d "
                "    ON d.id = m.l10n_es_tbai_post_document_id "
                "  LEFT JOIN ir_attachment a ON a.res_model = 'account.move' "
                "   AND a.res_id = m.id AND a.res_field = 'invoice_pdf_report_file' "
                " WHERE l.batch_id = %s AND l.res_id IN %s "
                " GROUP BY l.res_id, l.stage, l.reason, l.mail_id",
                [created["batch"], moves],
            )
            return {row[0]: row[1:] for row in cr.fetchall()}

    def _assert_whole(self, committed):
        """Never an email without its line's stage, nor the reverse."""
        for stage, _reason, mails, line_mail, *_rest in committed.values():
            if stage == "queued":
                self.assertEqual(mails, [line_mail], "a queued line has its email")
            else:
                self.assertEqual(mails, [], "no email without its line queued")

    def _assert_each_queued_or_failed(self, created):
        """The main company's invoice queued with its PDF; each Basque one
        failed with TicketBAI's error, its submission kept, its error on the
        invoice as core's scheduled Send keeps it; nothing left to do."""
        committed = self._committed(created)
        self._assert_whole(committed)
        stage, reason, mails, _mail, submissions, pdf, _chatter = committed[
            created["normal"]
        ]
        self.assertEqual((stage, len(mails), submissions, pdf), ("queued", 1, 0, True))
        for move_id in created["basque"]:
            stage, reason, mails, _mail, submissions, pdf, chatter = committed[move_id]
            self.assertEqual((stage, mails, submissions, pdf), ("error", [], 1, False))
            self.assertIn(TBAI_ERROR, reason)
            self.assertIn(TBAI_ERROR, chatter)
        # the first one reached for the unreachable service, the next ones
        # wait for it (TicketBAI's chain)
        reasons = [committed[move_id][1] for move_id in created["basque"]]
        self.assertIn("Failed to establish a new connection", reasons[0])
        self.assertIn("has not been posted", reasons[-1])

    def test_killed_when_ticketbai_commits_then_resumed(self):
        created = self._batch(3)
        child = self._child("tbai-process", "10", "kill")
        _out, err = child.communicate(timeout=300)
        self.assertEqual(child.returncode, -signal.SIGKILL, err[-3000:])
        committed = self._committed(created)
        self._assert_whole(committed)
        # the submission's outcome is kept, nothing else of the chunk
        self.assertEqual(committed[created["basque"][0]][4], 1)
        self.assertEqual(
            {move_id: stage for move_id, (stage, *_rest) in committed.items()},
            dict.fromkeys(committed, "pending"),
        )
        # the next scheduled run: one call per Basque invoice, its files
        # made apart, then the chunk itself renders without committing
        self.assertEqual(json.loads(self._run("tbai-process", "10")), 4)
        self._assert_each_queued_or_failed(created)
