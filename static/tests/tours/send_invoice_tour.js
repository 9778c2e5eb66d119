import { registry } from "@web/core/registry";

// Invoice form > envelope > wizard prefilled > Send > confirm > success
registry.category("web_tour.tours").add("account_document_email_invoice_tour", {
  steps: () => [
    {
      content: "Click the envelope on the posted invoice",
      trigger: ".o_form_view button[name='action_send_document_email']",
      run: "click",
    },
    {
      content: "To is the invoice's partner",
      trigger: ".modal .o_field_widget[name='partner_ids'] .o_tag:contains(partner_a)",
    },
    {
      content: "The subject names the invoice",
      trigger: ".modal .o_field_widget[name='subject'] input:value(Invoice INV/)",
    },
    {
      content: "The body comes from the template",
      trigger:
        ".modal .o_field_widget[name='body']:contains(Please find attached invoice)",
    },
    {
      content: "The invoice's official PDF is listed, made when sent",
      trigger: ".modal .o_field_widget[name='document_files']:contains(.pdf)",
    },
    {
      content: "Send",
      trigger: ".modal .modal-footer button[name='action_send']",
      run: "click",
    },
    {
      content: "Confirm",
      trigger:
        ".modal:not(.o_inactive_modal) .modal-footer button.btn-primary:contains(Ok)",
      run: "click",
    },
    {
      content: "Success notification",
      trigger:
        ".o_notification:has(.o_notification_bar.bg-success):contains(was sent to)",
    },
  ],
});
