// Screenshots of the running demo (make run) for static/description/.
// usage: node scripts/screenshots.mjs [http://localhost:8069] [out folder]
// Needs playwright-core (scripts/screenshots.sh installs it) and Debian's chromium.
import {chromium} from "playwright-core";

const base = process.argv[2] || "http://localhost:8069";
const out = process.argv[3] || "static/description";

async function rpc(page, model, method, args, kwargs = {}) {
    return page.evaluate(
        async ([model, method, args, kwargs]) => {
            const response = await fetch("/web/dataset/call_kw", {
                method: "POST",
                headers: {"Content-Type": "application/json"},
                body: JSON.stringify({
                    jsonrpc: "2.0",
                    method: "call",
                    params: {model, method, args, kwargs},
                }),
            });
            return (await response.json()).result;
        },
        [model, method, args, kwargs]
    );
}

const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
});
const page = await browser.newPage({viewport: {width: 1280, height: 900}});
try {
    await page.goto(`${base}/web/login`);
    await page.fill("input[name=login]", "admin");
    await page.fill("input[name=password]", "admin");
    await page.click("button[type=submit]");
    await page.waitForURL(/\/odoo/);

    // 1. Settings: the outgoing server block
    await page.goto(`${base}/odoo/settings#general_settings`);
    const block = page.locator("#document_email_smtp_setting");
    await block.scrollIntoViewIfNeeded();
    await page.waitForTimeout(500);
    await page.screenshot({path: `${out}/settings.png`});

    // 2. The wizard on a posted customer invoice
    const [invoice] = await rpc(page, "account.move", "search_read", [
        [
            ["move_type", "=", "out_invoice"],
            ["state", "=", "posted"],
            ["partner_id.email", "!=", false],
        ],
    ], {fields: ["id"], limit: 1});
    await page.goto(`${base}/odoo/action-account.action_move_out_invoice_type/${invoice.id}`);
    await page.click("button[name=action_send_document_email]");
    // the PDF rendered in the dialog, or (an invoice's official PDF) its name
    await page.waitForSelector(
        ".modal .o_field_widget[name=attachment_ids] .o_attachment, " +
            ".modal .o_field_widget[name=document_files] span"
    );
    await page.waitForTimeout(500);
    await page.screenshot({path: `${out}/wizard.png`});
    await page.click(".modal .modal-footer button[name=action_send]");
    await page.click(".modal:not(.o_inactive_modal) .modal-footer button.btn-primary");
    await page.waitForSelector(".o_notification");
    await page.waitForTimeout(300);
    await page.screenshot({path: `${out}/sent.png`});

    // 3. Aged receivables on screen
    await page.goto(`${base}/odoo/action-account_document_email.action_account_aged_receivable_wizard`);
    await page.click(".modal button[name=action_list]");
    await page.waitForSelector(".o_list_view .o_data_row");
    await page.waitForTimeout(500);
    await page.screenshot({path: `${out}/aged_receivables.png`});
} finally {
    await browser.close();
}
