import { registry } from "@web/core/registry";

function assertValue(expected) {
  return function () {
    if (!this.anchor.value.includes(expected)) {
      throw new Error(`Expected "${expected}" in "${this.anchor.value}"`);
    }
  };
}

registry.category("web_tour.tours").add("account_document_email_register_payment", {
  steps: () => [
    {
      content: "Open Register Payment on the invoice",
      trigger: "button#account_invoice_payment_btn",
      run: "click",
    },
    {
      content: "Choose to send the receipt by email",
      trigger: ".modal div[name=send_receipt_by_email] input",
      run: "check",
    },
    {
      content: "Create the payment",
      trigger: ".modal button[name=action_create_payments]",
      run: "click",
    },
    {
      content: "The email wizard opens on the payment, addressed to the customer",
      trigger: ".modal .o_field_widget[name=partner_ids] .o_tag:contains(partner_a)",
    },
    {
      content: "The subject comes from the receipt template",
      trigger: ".modal .o_field_widget[name=subject] input",
      run: assertValue("Payment receipt"),
    },
    {
      content: "The receipt PDF is attached",
      trigger: ".modal .o_field_widget[name=attachment_ids] .o_attachment",
    },
    {
      content: "Cancel the email",
      trigger: ".modal .modal-footer button[special=cancel]",
      run: "click",
    },
    {
      content: "The dialog is closed",
      trigger: "body:not(:has(.modal))",
    },
    {
      content: "Back on the invoice, shown as paid",
      trigger: ".o_form_view .ribbon:contains(Paid)",
    },
  ],
});
