import { registry } from "@web/core/registry";
import { stepUtils } from "@web_tour/tour_service/tour_utils";

const tours = registry.category("web_tour.tours");

const ACTIVE_MODAL = ".modal:not(.o_inactive_modal)";

function successNotification(text) {
  return {
    content: `Success notification: ${text}`,
    trigger: `.o_notification:has(.o_notification_bar.bg-success):contains(${text})`,
  };
}

// Send > "Send now?" > Ok
function sendAndConfirmSteps() {
  return [
    {
      content: "Send",
      trigger: `${ACTIVE_MODAL} .modal-footer button[name='action_send']`,
      run: "click",
    },
    {
      content: "Confirm",
      trigger: `${ACTIVE_MODAL} .modal-footer button.btn-primary:contains(Ok)`,
      run: "click",
    },
  ];
}

// Form > envelope > wizard prefilled for one partner > send > confirm > success
function envelopeSendSteps(partner, subject) {
  return [
    {
      content: "Click the envelope",
      trigger: ".o_form_view button[name='action_send_document_email']",
      run: "click",
    },
    {
      content: "To is the document's partner",
      trigger: `.modal .o_field_widget[name='partner_ids'] .o_tag:contains(${partner})`,
    },
    {
      content: "The subject comes from the document's template",
      trigger: `.modal .o_field_widget[name='subject'] input:value(${subject})`,
    },
    {
      content: "The PDF is attached",
      trigger: ".modal .o_field_widget[name='attachment_ids']:contains(.pdf)",
    },
    ...sendAndConfirmSteps(),
    successNotification("was sent to"),
  ];
}

// The batch dialog: every document waiting for the background job, none
// skipped or failed yet
function batchResultSteps(count) {
  return [
    {
      content: "The batch opens",
      trigger: `.modal .o_form_view div[name='pending_count']:contains(${count})`,
    },
    {
      trigger: ".modal .o_form_view div[name='skipped_count']:contains(0)",
    },
    {
      trigger: ".modal .o_form_view div[name='failed_count']:contains(0)",
    },
    {
      content: "Close the batch",
      trigger: ".modal .modal-footer button:contains(Close)",
      run: "click",
    },
    {
      trigger: "body:not(:has(.modal))",
    },
  ];
}

// Settings > outgoing server for documents > save > test connection > test email
tours.add("account_document_email_settings", {
  steps: () => [
    {
      content: "The block is shown to an administrator",
      trigger: "#document_email_smtp_setting:contains(Outgoing server for documents)",
    },
    {
      content: "Use a server of the company's own",
      trigger:
        "#document_email_smtp_setting div[name='smtp_use_default_service'] input:checked",
      run: "click",
    },
    {
      trigger:
        "#document_email_smtp_setting div[name='smtp_use_default_service'] input:not(:checked)",
    },
    {
      trigger: "#document_email_smtp_setting div[name='smtp_host'] input",
      run: "edit 127.0.0.1",
    },
    {
      content: "No encryption (sets the port to 25)",
      trigger: "#document_email_smtp_setting div[name='smtp_encryption'] select",
      run: "selectByLabel None",
    },
    {
      trigger: "#document_email_smtp_setting div[name='smtp_port'] input:value(25)",
    },
    {
      content: "The test server's port",
      trigger: "#document_email_smtp_setting div[name='smtp_port'] input",
      run: async (helpers) => {
        await helpers.edit(localStorage.getItem("account_document_email.smtp_port"));
      },
    },
    {
      content: "No authentication",
      trigger:
        "#document_email_smtp_setting div[name='smtp_authentication'] input:checked",
      run: "click",
    },
    {
      trigger:
        "#document_email_smtp_setting div[name='smtp_authentication'] input:not(:checked)",
    },
    {
      content: "Save (the page reloads)",
      trigger: ".o_control_panel .o_form_button_save",
      run: "click",
    },
    {
      content: "The saved settings are shown again",
      trigger:
        "#document_email_smtp_setting div[name='smtp_host'] input:value(127.0.0.1)",
    },
    {
      trigger: ".o_control_panel:not(:has(.o_dirty_warning))",
    },
    {
      content: "Test the connection",
      trigger:
        "#document_email_smtp_setting button[name='action_smtp_test_connection']",
      run: "click",
    },
    successNotification("Connection test successful"),
    {
      content: "Address of the test email",
      trigger: "#document_email_smtp_setting div[name='smtp_test_email_to'] input",
      run: "edit tester@example.com",
    },
    {
      content: "Send the test email",
      trigger:
        "#document_email_smtp_setting button[name='action_smtp_send_test_email']",
      run: "click",
    },
    successNotification("A test email was sent to tester@example.com"),
  ],
});

// Invoice list > select two > Action > Send by email > batch result
tours.add("account_document_email_invoice_list_tour", {
  steps: () => [
    {
      content: "Select the first invoice",
      trigger:
        ".o_list_view .o_data_row:contains(Tour Batch A) .o_list_record_selector input",
      run: "check",
    },
    {
      content: "Select the second invoice",
      trigger:
        ".o_list_view .o_data_row:contains(Tour Batch B) .o_list_record_selector input",
      run: "check",
    },
    {
      content: "Open the Action menu",
      trigger: ".o_control_panel .o_cp_action_menus .dropdown-toggle",
      run: "click",
    },
    {
      content: "Send by email",
      trigger: ".o-dropdown--menu .dropdown-item:contains(Send by email)",
      run: "click",
    },
    {
      content: "The wizard is for two documents",
      trigger:
        ".modal .alert-info:contains(documents):has(div[name='document_count']:contains(2))",
    },
    ...sendAndConfirmSteps(),
    ...batchResultSteps(2),
  ],
});

tours.add("account_document_email_payment_advice_tour", {
  steps: () => envelopeSendSteps("partner_b", "Payment advice P"),
});

tours.add("account_document_email_journal_entry_tour", {
  steps: () => envelopeSendSteps("partner_a", "Journal entry MISC/"),
});

tours.add("account_document_email_sale_order_tour", {
  steps: () => envelopeSendSteps("partner_a", "Quotation S"),
});

// Aged Receivables > send by email > List > confirmation letters > batch result
tours.add("account_document_email_confirmation_letter_tour", {
  url: "/odoo",
  steps: () => [
    ...stepUtils.goToAppSteps("account.menu_finance", "Open Invoicing"),
    {
      trigger: ".o_menu_sections button:contains(Reporting)",
      run: "click",
    },
    {
      trigger: ".dropdown-item:contains(Aged Receivables)",
      run: "click",
    },
    {
      trigger: ".modal div[name=date_at] input",
      run: "edit 06/30/2024",
    },
    {
      content: "Choose to send by email",
      trigger: ".modal div[name=send_by_email] input",
      run: "check",
    },
    {
      trigger: ".modal button[name=action_letter]:contains(Send Confirmation Letters)",
    },
    {
      content: "List",
      trigger: ".modal button[name=action_list]",
      run: "click",
    },
    {
      trigger: ".o_list_view .o_data_row:contains(Tour Customer A):contains(1,234.50)",
    },
    {
      trigger: ".o_list_view .o_data_row:contains(Tour Customer B):contains(678.25)",
    },
    {
      content: "Send the confirmation letters",
      trigger:
        ".o_control_panel button[name=action_letter]:contains(Send Confirmation Letters)",
      run: "click",
    },
    {
      content: "The email wizard opens for the listed customers",
      trigger:
        ".modal .o_form_view div[name=document_names]:contains(Tour Customer A):contains(Tour Customer B)",
    },
    {
      trigger:
        ".modal div[name=report_id] input:value(Receivables Confirmation Letter)",
    },
    {
      trigger: ".modal div[name=document_count]:contains(2)",
    },
    ...sendAndConfirmSteps(),
    ...batchResultSteps(2),
  ],
});
