import { registry } from "@web/core/registry";
import { stepUtils } from "@web_tour/tour_service/tour_utils";

registry.category("web_tour.tours").add("account_document_email_aged_receivable", {
  url: "/odoo",
  steps: () => [
    ...stepUtils.goToAppSteps("account.menu_finance", "Open Invoicing"),
    {
      content: "Open the Reporting menu",
      trigger: ".o_menu_sections button:contains(Reporting)",
      run: "click",
    },
    {
      content: "Open Aged Receivables",
      trigger: ".dropdown-item:contains(Aged Receivables)",
      run: "click",
    },
    {
      content: "Set the date",
      trigger: ".modal div[name=date_at] input",
      run: "edit 06/30/2024",
    },
    {
      content: "Choose to send by email",
      trigger: ".modal div[name=send_by_email] input",
      run: "click",
    },
    {
      trigger: ".modal button[name=action_statement]:contains(Send Statements)",
    },
    {
      content: "List",
      trigger: ".modal button[name=action_list]",
      run: "click",
    },
    {
      content: "One row per customer",
      trigger: ".o_list_view .o_data_row:contains(Tour Customer A):contains(1,234.50)",
    },
    {
      trigger: ".o_list_view .o_data_row:contains(Tour Customer B):contains(678.25)",
    },
    {
      content: "Headings with the day ranges of the interval",
      trigger: ".o_list_view th[data-name=period_2]:contains(31-60)",
    },
    {
      trigger: ".o_list_view th[data-name=older]:contains(Over 120)",
    },
    {
      content: "The totals row",
      trigger: ".o_list_view tfoot:contains(1,912.75)",
    },
    {
      content: "Sort by total",
      trigger: ".o_list_view th[data-name=total]",
      run: "click",
    },
    {
      trigger: ".o_list_view .o_data_row:first-child:contains(Tour Customer B)",
    },
    {
      content: "Send the statements",
      trigger:
        ".o_control_panel button[name=action_statement]:contains(Send Statements)",
      run: "click",
    },
    {
      content: "The email wizard opens for both customers",
      trigger:
        ".modal .o_form_view div[name=document_names]:contains(Tour Customer A):contains(Tour Customer B)",
    },
    {
      trigger: ".modal div[name=report_id] input:value(Customer Statement)",
    },
    {
      trigger: ".modal div[name=document_count]:contains(2)",
    },
    {
      content: "Close the wizard",
      trigger: ".modal .o_form_button_cancel, .modal button[special=cancel]",
      run: "click",
    },
    {
      trigger: "body:not(:has(.modal))",
    },
    {
      content: "A customer's row opens their open items",
      trigger: ".o_list_view .o_data_row:contains(Tour Customer A) td[name=partner_id]",
      run: "click",
    },
    {
      trigger: ".o_breadcrumb:contains(Open items of Tour Customer A)",
    },
    {
      trigger: ".o_list_view .o_data_row:contains(INV/):contains(1,234.50)",
    },
  ],
});
