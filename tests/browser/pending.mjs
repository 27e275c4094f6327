// A pending order in a real browser (Debian's Chromium driven by playwright-core), against the real `api`
// binary, on a brand with a connected Shopify shop: a click, then a purchase only the storefront pixel
// reported, shows on the Attribution page as a pending order, counted apart from conversions and revenue;
// the shop's signed `orders/create` webhook for the same order verifies it, and after a reload it counts.
// Every scenario saves a screenshot; any wrong behaviour exits 1 with a message naming the scenario. On
// success prints one JSON line with the click id and the webhook's receipt.
//
//   BASE_URL=http://127.0.0.1:8080 INTERNAL_URL=http://127.0.0.1:8081 EMAIL=... PASSWORD=... INGEST_TOKEN=... \
//   PIXEL_ID=... LINK_ID=... LINK_CODE=... SHOP_DOMAIN=... WEBHOOK_SECRET=... ORDER_ID=... \
//   SCREENSHOT_DIR=target/e2e-screenshots \
//   node tests/browser/pending.mjs
//
//   TIMEOUT_MS  how long to wait for each step (default 15000); CHROMIUM  the browser (default /usr/bin/chromium)
import { createHmac } from "node:crypto";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

/** The order Shopify sends: its amount in shop money (47.73 USD) is what the pixel reports too. */
const ORDER_FIXTURE = new URL("../fixtures/shopify/orders_create_note_attributes.json", import.meta.url);
const AMOUNT = "47.73";
const CURRENCY = "USD";

function settings(env) {
  const required = ["BASE_URL", "INTERNAL_URL", "EMAIL", "PASSWORD", "INGEST_TOKEN", "PIXEL_ID", "LINK_ID", "LINK_CODE", "SHOP_DOMAIN", "WEBHOOK_SECRET", "ORDER_ID"];
  for (const name of required) {
    if (!env[name]) throw new Error(`${name} is required`);
  }
  return {
    base: env.BASE_URL.replace(/\/$/, ""),
    // The API's internal listener, where click batches go (INTERNAL_BIND_ADDR).
    internal: env.INTERNAL_URL.replace(/\/$/, ""),
    email: env.EMAIL,
    password: env.PASSWORD,
    ingestToken: env.INGEST_TOKEN,
    pixelId: env.PIXEL_ID,
    link: { id: env.LINK_ID, code: env.LINK_CODE },
    shopDomain: env.SHOP_DOMAIN,
    webhookSecret: env.WEBHOOK_SECRET,
    orderId: env.ORDER_ID,
    screenshots: env.SCREENSHOT_DIR || "target/e2e-screenshots",
    timeoutMs: Number(env.TIMEOUT_MS || 15000),
    chromium: env.CHROMIUM || "/usr/bin/chromium",
  };
}

function check(condition, message) {
  if (!condition) throw new Error(message);
}

function expectEqual(what, actual, expected) {
  check(actual === expected, `${what} is ${JSON.stringify(actual)}, want ${JSON.stringify(expected)}`);
}

const config = settings(process.env);
mkdirSync(config.screenshots, { recursive: true });
let scenario = "start";

async function shot(page, name) {
  await page.screenshot({ path: join(config.screenshots, `pending-${name}.png`), fullPage: true });
}

async function signIn(page, email, password) {
  await page.goto(`${config.base}/brand/sign-in`);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
}

/** Posts one click for a link the way the edge's queue consumer does; returns its click id. */
async function recordClick(link) {
  const id = crypto.randomUUID().replaceAll("-", "");
  const clicks = [{
    v: 1, click_id: id, code: link.code, link_id: link.id, occurred_at_ms: Date.now() - 60_000,
    visitor_id: crypto.randomUUID().replaceAll("-", ""), new_visitor: true, bot: false,
  }];
  const response = await fetch(`${config.internal}/internal/clicks`, {
    method: "POST",
    headers: { authorization: `Bearer ${config.ingestToken}`, "content-type": "application/json" },
    body: JSON.stringify({ clicks }),
  });
  const summary = await response.json();
  check(response.status === 200 && summary.stored === 1, `the click was not stored: ${JSON.stringify(summary)}`);
  return id;
}

/** A purchase reported by the storefront pixel with the click id the landing page kept. */
async function purchase(csRef, orderId) {
  const response = await fetch(`${config.base}/v1/pixel/events`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ pixel_id: config.pixelId, event: "purchase", cs_ref: csRef, order_id: orderId, value: AMOUNT, currency: CURRENCY }),
  });
  check(response.status === 202, `the purchase was answered with ${response.status}`);
}

/** The shop's `orders/create` webhook for the order, carrying the click id in its cart attributes, signed
 * as Shopify signs it (base64 HMAC-SHA256 of the raw body with the shop's secret); returns the receipt. */
async function orderCreated(csRef, orderId) {
  const order = JSON.parse(readFileSync(ORDER_FIXTURE, "utf8"));
  const id = Number(orderId);
  check(Number.isSafeInteger(id) && String(id) === orderId, `ORDER_ID ${orderId} is not a Shopify order id`);
  const now = new Date().toISOString().replace(/\.\d+Z$/, "Z");
  Object.assign(order, {
    id, admin_graphql_api_id: `gid://shopify/Order/${id}`, created_at: now, processed_at: now, updated_at: now,
    currency: CURRENCY, total_price: AMOUNT, test: false, cancelled_at: null,
    total_price_set: { shop_money: { amount: AMOUNT, currency_code: CURRENCY }, presentment_money: { amount: AMOUNT, currency_code: CURRENCY } },
    note_attributes: [{ name: "gift_wrap", value: "no" }, { name: "cs_ref", value: csRef }],
  });
  const body = JSON.stringify(order);
  const response = await fetch(`${config.base}/v1/webhooks/shopify`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-shopify-shop-domain": config.shopDomain,
      "x-shopify-topic": "orders/create",
      "x-shopify-webhook-id": crypto.randomUUID(),
      "x-shopify-triggered-at": new Date().toISOString(),
      "x-shopify-hmac-sha256": createHmac("sha256", config.webhookSecret).update(body, "utf8").digest("base64"),
    },
    body,
  });
  const receipt = await response.json();
  check(response.status === 200 && receipt.status === "processed", `the webhook was answered with ${response.status} ${JSON.stringify(receipt)}`);
  return receipt;
}

/** A first delivery signed with the shop's secret (a `shop/update` Shopify sends when the shop changes):
 * it proves the connection, so the shop is the brand's and the brand has a server-side source. */
async function proveShop() {
  const body = JSON.stringify({ domain: config.shopDomain });
  const response = await fetch(`${config.base}/v1/webhooks/shopify`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-shopify-shop-domain": config.shopDomain,
      "x-shopify-topic": "shop/update",
      "x-shopify-webhook-id": crypto.randomUUID(),
      "x-shopify-triggered-at": new Date().toISOString(),
      "x-shopify-hmac-sha256": createHmac("sha256", config.webhookSecret).update(body, "utf8").digest("base64"),
    },
    body,
  });
  check(response.status === 200, `the proving delivery was answered with ${response.status} ${await response.text()}`);
}

/** The period's totals at the top of the Attribution page. */
async function totals(page) {
  const total = async (name) => (await page.locator(`[data-total="${name}"]`).textContent()).trim();
  return {
    clicks: await total("clicks"),
    conversions: await total("conversions"),
    revenue: await total("revenue"),
    pending: await total("pending_conversions"),
    pendingRevenue: await total("pending_revenue"),
  };
}

/** The link's row of the By link table: its conversions, revenue and pending cells. */
async function linkReport(page, code) {
  const row = page.locator("#by-link + .table-scroll tbody tr").filter({ has: page.getByRole("link", { name: code, exact: true }) });
  return row.evaluate((tr) => ({
    clicks: tr.cells[1].textContent.trim(),
    conversions: tr.cells[3].textContent.trim(),
    revenue: tr.cells[4].textContent.trim(),
    pending: tr.cells[6].textContent.trim(),
  }));
}

async function main() {
  const browser = await chromium.launch({
    executablePath: config.chromium,
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const pageErrors = [];
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    page.setDefaultTimeout(config.timeoutMs);
    page.on("pageerror", (error) => pageErrors.push(String(error)));

    scenario = "sign in";
    await signIn(page, config.email, config.password);
    await page.waitForURL(`${config.base}/brand/attribution/links`);

    scenario = "the shop's first signed delivery proves the connection";
    await proveShop();

    scenario = "a click, then a purchase only the pixel reported";
    const clickId = await recordClick(config.link);
    await purchase(clickId, config.orderId);

    scenario = "the pixel's order is pending";
    await page.goto(`${config.base}/brand/attribution`);
    const order = page.locator(`tr[data-order-id="${config.orderId}"]`);
    const pendingRow = page.locator(`tr[data-order-id="${config.orderId}"][data-status="pending"]`);
    await pendingRow.waitFor();
    await pendingRow.locator("span.status").getByText("Pending", { exact: true }).waitFor();
    expectEqual("rows for the order", await order.count(), 1);
    const credit = (await pendingRow.locator("td.credit").textContent()).replace(/\s+/g, " ");
    check(credit.includes(`Click ${clickId.slice(0, 8)} at `), `the pending order's credit reads ${credit}`);
    const before = await totals(page);
    expectEqual("the period's clicks", before.clicks, "1");
    expectEqual("the period's conversions while pending", before.conversions, "0");
    expectEqual("the period's revenue while pending", before.revenue, "—");
    expectEqual("the period's pending orders", before.pending, "1");
    expectEqual("the period's pending revenue", before.pendingRevenue, `${AMOUNT} ${CURRENCY}`);
    const linkBefore = await linkReport(page, config.link.code);
    check(linkBefore.conversions === "0" && linkBefore.revenue === "—" && linkBefore.pending === `1 · ${AMOUNT} ${CURRENCY}`,
      `the link's report row while pending shows ${JSON.stringify(linkBefore)}`);
    await shot(page, "01-pending");

    scenario = "the shop confirms the order";
    const receipt = await orderCreated(clickId, config.orderId);

    scenario = "the order is verified";
    await page.reload();
    const verifiedRow = page.locator(`tr[data-order-id="${config.orderId}"][data-status="verified"]`);
    await verifiedRow.waitFor();
    await verifiedRow.locator("span.status").getByText("Verified", { exact: true }).waitFor();
    expectEqual("rows for the order", await order.count(), 1);
    const verifiedCredit = (await verifiedRow.locator("td.credit").textContent()).replace(/\s+/g, " ");
    check(verifiedCredit.includes(`Click ${clickId.slice(0, 8)} at `), `the verified order's credit reads ${verifiedCredit}`);
    expectEqual("the verified order's credited revenue", (await verifiedRow.locator("td.num").textContent()).trim(), `${AMOUNT} ${CURRENCY}`);
    const after = await totals(page);
    expectEqual("the period's clicks", after.clicks, "1");
    expectEqual("the period's conversions once verified", after.conversions, "1");
    expectEqual("the period's revenue once verified", after.revenue, `${AMOUNT} ${CURRENCY}`);
    expectEqual("the period's pending orders once verified", after.pending, "0");
    expectEqual("the period's pending revenue once verified", after.pendingRevenue, "—");
    const linkAfter = await linkReport(page, config.link.code);
    check(linkAfter.conversions === "1" && linkAfter.revenue === `${AMOUNT} ${CURRENCY}` && linkAfter.pending === "—",
      `the link's report row once verified shows ${JSON.stringify(linkAfter)}`);
    await shot(page, "02-verified");

    check(pageErrors.length === 0, `the pages threw: ${pageErrors.join("; ")}`);
    process.stdout.write(JSON.stringify({ click_id: clickId, receipt }) + "\n");
  } finally {
    await browser.close();
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    process.stderr.write(`pending (${scenario}): ${error.stack || error.message}\n`);
    process.exit(1);
  },
);
