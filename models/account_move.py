from odoo import models
from odoo.exceptions import UserError

# core's Send alerts the wizard already covers: it checks the recipients
# itself (and lets the user type one), and reusing the existing PDF is the aim
HANDLED_CORE_ALERTS = {"account_missing_email", "account_pdf_exist"}


class AccountMove(models.Model):
    _name = "account.move"
    _inherit = ["account.move", "document.email.mixin"]

    def _get_document_email_partners(self):
        """An entry's partner only when it has exactly one: otherwise the
        user types the recipient."""
        self.ensure_one()
        if self.move_type == "entry":
            partners = self.partner_id | self.line_ids.partner_id
            return partners if len(partners) == 1 else partners.browse()
        return self.partner_id

    def _get_document_email_refusal(self):
        self.ensure_one()
        if self.is_purchase_document(include_receipts=True):
            return self.env._(
                "%(document)s is a vendor bill or refund: it is not sent from here.",
                document=self.display_name,
            )
        return False

    def _get_document_email_template_xmlid(self):
        self.ensure_one()
        if self.move_type == "entry":
            kind = "journal_entry"
        elif self.debit_origin_id:
            kind = "debit_note"
        elif self.move_type in ("out_refund", "in_refund"):
            kind = "credit_note"
        else:
            kind = "invoice"
        return f"account_document_email.mail_template_{kind}"

    def _get_document_email_kind(self):
        self.ensure_one()
        if self.move_type == "entry":
            return self.env._("journal entry"), self.env._("journal entries")
        if self.debit_origin_id:
            return self.env._("debit note"), self.env._("debit notes")
        if self.move_type in ("out_refund", "in_refund"):
            return self.env._("credit note"), self.env._("credit notes")
        return self.env._("invoice"), self.env._("invoices")

    def _get_document_email_report_xmlids(self):
        self.ensure_one()
        journal_entry = "account_document_email.action_report_journal_entry"
        if self.move_type == "entry":
            return [journal_entry, f"{journal_entry}_full"]
        return [
            "account.account_invoices",
            "account.account_invoices_without_payment",
            journal_entry,
        ]

    def _get_document_email_reports(self):
        """Core's Send report first (the partner's invoice template, if any)."""
        reports = super()._get_document_email_reports()
        if not self._document_email_sent_as_core():
            return reports
        send = self.env["account.move.send"]
        return send._get_default_pdf_report_id(self) | reports

    # ------------------------------------------------------------------
    # The official PDF and e-invoice files, as core's Send makes them
    # ------------------------------------------------------------------

    def _document_email_sent_as_core(self):
        """Core's Send can send this move: a posted customer document."""
        self.ensure_one()
        return self.state == "posted" and self.is_sale_document(include_receipts=True)

    def _document_email_uses_official_files(self, report):
        """Sent with its official files: core's Send report was chosen."""
        self.ensure_one()
        send = self.env["account.move.send"]
        return (
            self._document_email_sent_as_core()
            and report == send._get_default_pdf_report_id(self)
        )

    def _document_email_sending_data(self):
        """{move: the settings core's Send collects for it, sending by email}."""
        send = self.env["account.move.send"]
        return {
            move: {
                "sending_methods": {"email"},
                "invoice_edi_format": send._get_default_invoice_edi_format(move),
                "extra_edis": send._get_default_extra_edis(move),
                "pdf_report": send._get_default_pdf_report_id(move),
                "author_user_id": self.env.user.id,
                "author_partner_id": self.env.user.partner_id.id,
            }
            for move in self
        }

    def _document_email_core_alerts(self, moves_data):
        alerts = self.env["account.move.send"]._get_alerts(self, moves_data)
        return {
            key: alert
            for key, alert in alerts.items()
            if key not in HANDLED_CORE_ALERTS
        }

    def _document_email_make_official_files(self, keep_errors=False):
        """Core's Send generation of the official PDF and e-invoice files for
        the moves that have none yet (a blocking alert or a generation error
        is raised, so nothing is sent nor kept; with ``keep_errors``, the
        error is also posted on the move, as core's scheduled Send does)."""
        missing = self.filtered(lambda move: not move.invoice_pdf_report_id)
        if not missing:
            return
        # the filestore GC waits while core and the localisations write the
        # files and their rows (ir.attachment.create, the moves' env too)
        missing = missing.with_context(document_email_hold_gc=True)
        send = missing.env["account.move.send"]
        moves_data = missing._document_email_sending_data()
        send._raise_danger_alerts(missing._document_email_core_alerts(moves_data))
        send._generate_invoice_documents(moves_data)
        failed = {move: data for move, data in moves_data.items() if data.get("error")}
        if failed and keep_errors:
            send._hook_if_errors(failed, allow_raising=False)
        if failed:
            raise UserError(
                "\n".join(
                    f"{move.display_name}: {send._format_error_text(data['error'])}"
                    for move, data in failed.items()
                )
            )

    def _document_email_official_files_to_make(self, report):
        """The moves sent with official files that have none yet."""
        return self.filtered(
            lambda move: (
                move._document_email_uses_official_files(report)
                and not move.invoice_pdf_report_id
            )
        )

    def _get_document_email_files_apart(self, report):
        """The moves whose official files are still to make and go through a
        government's web service (one of core's Send extra EDIs applies:
        TicketBAI, NAV, MyInvois, SInvoice...): their localisation commits
        there when core's Send allows it (``account.move.send._can_commit``)."""
        send = self.env["account.move.send"]
        return self._document_email_official_files_to_make(report).filtered(
            send._get_default_extra_edis
        )

    def _make_document_email_files_apart(self, report):
        """This move's official files, in a transaction the localisation may
        commit; its row locked first, so that two workers never submit it to
        the government at once (core's lock, "being sent by another
        process"). An error is kept on the move and raised."""
        self.ensure_one()
        self.env["res.company"]._with_locked_records(self)
        self._document_email_make_official_files(keep_errors=True)

    def _get_document_email_files(self, report):
        official = self.filtered(
            lambda m: m._document_email_uses_official_files(report)
        )
        others = self - official
        files = super(AccountMove, others)._get_document_email_files(report)
        official._document_email_make_official_files()
        send = self.env["account.move.send"]
        for move in official:
            files[move.id] = [
                {"name": file.name, "raw": file.raw, "mimetype": file.mimetype}
                for file in send._get_invoice_extra_attachments(move)
            ]
        return files

    def _get_document_email_files_made_when_sent(self, report):
        if not self._document_email_uses_official_files(report):
            return super()._get_document_email_files_made_when_sent(report)
        send = self.env["account.move.send"]
        files = send._get_placeholder_mail_attachments_data(
            self
        ) + send._get_invoice_extra_attachments_data(self)
        return [file["name"] for file in files]

    def _get_document_email_alerts(self, report):
        """Core's Send alerts for the files still to make; for one move, also
        the e-invoice errors core's Send would raise."""
        moves = self._document_email_official_files_to_make(report)
        if not moves:
            return super()._get_document_email_alerts(report)
        moves_data = moves._document_email_sending_data()
        alerts = moves._document_email_core_alerts(moves_data)
        messages = [alert["message"] for alert in alerts.values()]
        if len(moves) == 1:
            send = self.env["account.move.send"]
            send._hook_invoice_document_before_pdf_report_render(
                moves, moves_data[moves]
            )
            if error := moves_data[moves].get("error"):
                messages.append(send._format_error_text(error))
        return messages

    def _document_email_write(self, values):
        # the add-on's fields alone change: no line to re-sync nor balance to
        # check (each write would do both, 20 times a chunk), and the invoice
        # was not modified by hand (core's vendor-bill auto-post reads that)
        moves = self.with_context(
            skip_invoice_sync=True,
            check_move_validity=False,
            skip_is_manually_modified=True,
        )
        return super(AccountMove, moves)._document_email_write(values)

    def _document_email_after_send(self):
        """As after core's Send: the move counts as sent."""
        self.filtered(lambda move: not move.is_move_sent).is_move_sent = True

    def _document_email_groupable(self):
        """Customer invoices and credit notes only (never vendor bills)."""
        return bool(self) and all(
            move.move_type in ("out_invoice", "out_refund") for move in self
        )

    def _get_document_email_summary(self):
        values = super()._get_document_email_summary()
        if self.move_type == "out_refund" and values.get("amount"):
            values["amount"] = -values["amount"]  # owed to the customer
        if self.is_invoice(include_receipts=True) and self.invoice_date_due:
            values["due_date"] = self.invoice_date_due
        return values

    def _get_document_email_sent_state(self):
        return {move.id: move.is_move_sent for move in self}

    def _restore_document_email_sent_state(self, states):
        """Not sent after all: no longer counted as sent unless it was."""
        self.filtered(
            lambda move: move.is_move_sent and not states.get(move.id, True)
        ).is_move_sent = False
