# Copyright 2026 account_document_email developers
# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
{
    "name": "Send Documents by Email",
    "summary": "Email invoices, orders, payments and statements from their own screen",
    "version": "18.0.1.0.0",
    "category": "Accounting/Accounting",
    "website": "https://github.com/account-document-email/account_document_email",
    "author": "account_document_email developers",
    "license": "LGPL-3",
    "depends": [
        "account",
        "sale",
        "account_debit_note",
        "account_check_printing",
        "portal",
    ],
    "data": [
        "security/ir.model.access.csv",
        "data/mail_template_data.xml",
        "report/report_journal_entry.xml",
        "wizards/document_email_wizard_views.xml",
        "wizards/document_email_result_views.xml",
        "views/res_config_settings_views.xml",
        "views/account_move_views.xml",
        "views/sale_order_views.xml",
        "report/aged_receivable_templates.xml",
        "wizards/account_aged_receivable_wizard_views.xml",
        "report/report_payment_advice.xml",
        "views/account_payment_views.xml",
        "wizards/account_payment_register_views.xml",
        "wizards/print_prenumbered_checks_views.xml",
        "security/account_confirmation_security.xml",
        "data/account_confirmation_data.xml",
        "views/confirmation_portal_templates.xml",
        "report/account_confirmation_templates.xml",
        "views/account_confirmation_views.xml",
    ],
    "demo": [
        "demo/res_company_demo.xml",
    ],
    "assets": {
        "web.assets_tests": [
            "account_document_email/static/tests/tours/*.js",
        ],
    },
    "installable": True,
    "application": False,
}
