import { registry } from "@web/core/registry";

// A visitor (not logged in) opens the personal link and disputes the balance.
registry.category("web_tour.tours").add("account_document_email_confirmation_answer", {
  steps: () => [
    {
      content: "The link shows a button, not the balance yet",
      trigger: ".o_confirmation_landing:not(:has(.o_confirmation_amount))",
    },
    {
      content: "View my balance",
      trigger: ".o_confirmation_open",
      run: "click",
    },
    {
      content: "The page shows the balance and the open items",
      trigger: ".o_confirmation_page .o_confirmation_amount:contains(1,234.50)",
    },
    {
      trigger: ".o_confirmation_items td:contains(INV/)",
    },
    {
      content: "I do not agree",
      trigger: "#answer_disagree",
      run: "click",
    },
    {
      content: "Their balance",
      trigger: "input[name=their_balance]",
      run: "edit 1000",
    },
    {
      content: "Their comment",
      trigger: "textarea[name=comment]",
      run: "edit Invoice paid on 28 June by transfer",
    },
    {
      content: "Say who answers",
      trigger: "input[name=responder_name]",
      run: "edit Ana Perez",
    },
    {
      trigger: "input[name=responder_role]",
      run: "edit Accounts payable",
    },
    {
      content: "Send the answer",
      trigger: ".o_confirmation_submit",
      run: "click",
    },
    {
      content: "The recorded answer is shown",
      trigger:
        ".o_confirmation_answered .o_confirmation_their_balance:contains(1,000.00)",
    },
    {
      trigger: ".o_confirmation_answered:contains(Invoice paid on 28 June)",
    },
    {
      trigger: "body:not(:has(.o_confirmation_form))",
    },
  ],
});
