// The brand dashboard in a real browser (Debian's Chromium driven by playwright-core), against the real
// `api` binary: sign in, add creators and campaigns, create links through the form, copy a short URL and
// read it back from the clipboard, filter by creator and by campaign, see clicks and a credited order,
// deactivate a link and keep its clicks, keep typed values on a validation error, sign out, and check that
// another brand's session sees none of it. Every scenario saves a screenshot; any wrong behaviour exits 1
// with a message naming the scenario. On success prints one JSON line with what was created.
//
//   BASE_URL=http://127.0.0.1:8080 INTERNAL_URL=http://127.0.0.1:8081 EMAIL=... PASSWORD=... OTHER_EMAIL=... \
//   OTHER_PASSWORD=... OTHER_LINK_CODE=... INGEST_TOKEN=... PIXEL_ID=... SCREENSHOT_DIR=target/e2e-screenshots \
//   node tests/browser/dashboard.mjs
//
//   TIMEOUT_MS  how long to wait for each step (default 15000); CHROMIUM  the browser (default /usr/bin/chromium)
import { mkdirSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";
import { chromium } from "playwright-core";

const SHORT_URL = /^https:\/\/trk\.creatorscore\.io\/[abcdefghjkmnpqrstuvwxyz23456789]{8}$/;

function settings(env) {
  const required = ["BASE_URL", "INTERNAL_URL", "EMAIL", "PASSWORD", "OTHER_EMAIL", "OTHER_PASSWORD", "OTHER_LINK_CODE", "INGEST_TOKEN", "PIXEL_ID"];
  for (const name of required) {
    if (!env[name]) throw new Error(`${name} is required`);
  }
  return {
    base: env.BASE_URL.replace(/\/$/, ""),
    // The API's internal listener, where click batches go (INTERNAL_BIND_ADDR).
    internal: env.INTERNAL_URL.replace(/\/$/, ""),
    email: env.EMAIL,
    password: env.PASSWORD,
    otherEmail: env.OTHER_EMAIL,
    otherPassword: env.OTHER_PASSWORD,
    otherLinkCode: env.OTHER_LINK_CODE,
    ingestToken: env.INGEST_TOKEN,
    pixelId: env.PIXEL_ID,
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
// The page the scenario was on, so that a failure can say what it showed.
let current = null;

/// Where the page was and what it said when a scenario failed, with a screenshot of it.
async function failureReport() {
  if (!current) return "";
  try {
    await current.screenshot({ path: join(config.screenshots, "dashboard-failure.png"), fullPage: true });
    const text = (await current.locator("main").innerText({ timeout: 1000 }).catch(() => "")).slice(0, 1500);
    return `\nthe page: ${current.url()}\n${text}\n(screenshot: dashboard-failure.png)`;
  } catch (error) {
    return `\n(the page could not be read: ${error.message})`;
  }
}

async function shot(page, name) {
  await page.screenshot({ path: join(config.screenshots, `dashboard-${name}.png`), fullPage: true });
}

async function signIn(page, email, password) {
  await page.goto(`${config.base}/brand/sign-in`);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
}

/** The rows of the Tracking Links table: code, status, clicks, creator and campaign of each. */
async function linkRows(page) {
  return page.$$eval("table.links tbody tr", (rows) =>
    rows.map((row) => ({
      id: row.dataset.linkId,
      code: row.dataset.code,
      creator: row.cells[1].textContent.trim(),
      campaign: row.cells[2].textContent.trim(),
      clicks: Number(row.querySelector("td.clicks").textContent),
      conversions: Number(row.querySelector("td.conversions").textContent),
      status: row.querySelector("td.status").textContent.trim(),
      trash: Boolean(row.querySelector("a.trash")),
    })),
  );
}

/** The Tracking Links rows at `url`, read in a page of their own (the current page stays as it is). */
async function linkRowsAt(page, url) {
  const other = await page.context().newPage();
  try {
    await other.goto(url);
    return await linkRows(other);
  } finally {
    await other.close();
  }
}

/** Fills and submits the New Link form. */
async function newLink(page, fields) {
  await page.goto(`${config.base}/brand/attribution/links/new`);
  await page.getByLabel("Destination URL").fill(fields.destination);
  if (fields.campaign) await page.getByLabel("Campaign", { exact: true }).selectOption({ label: fields.campaign });
  if (fields.creator) await page.getByLabel("Creator", { exact: true }).selectOption({ label: fields.creator });
  if (fields.platform) await page.getByLabel("Platform").selectOption({ label: fields.platform });
  if (fields.contentType) await page.getByLabel("Content Type").selectOption({ label: fields.contentType });
  if (fields.promo) await page.getByLabel("Promo Code").fill(fields.promo);
  if (fields.share) await page.getByLabel("Share Revenue").check();
  await page.getByRole("button", { name: "Create Link" }).click();
  await page.waitForLoadState("load");
}

/** A local shop whose every page is gone: a 404 for any request, on a port of its own choosing. */
async function goneShop() {
  const server = createServer((request, response) => response.writeHead(404).end("gone"));
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, url: `http://127.0.0.1:${server.address().port}/products/discontinued` };
}

/** Reloads `url` until `locator(page)` is visible (what a background task writes shows up on a reload). */
async function reloadUntil(page, url, locator, what, limitMs) {
  const deadline = Date.now() + limitMs;
  for (;;) {
    await page.goto(url);
    if (await locator(page).count() > 0) return;
    check(Date.now() < deadline, `gave up after ${limitMs} ms waiting for ${what}`);
    await page.waitForTimeout(500);
  }
}

/** Posts clicks for a link the way the edge's queue consumer does; returns their click ids. */
async function recordClicks(link, count) {
  const ids = Array.from({ length: count }, () => crypto.randomUUID().replaceAll("-", ""));
  const clicks = ids.map((id, i) => ({
    v: 1, click_id: id, code: link.code, link_id: link.id, occurred_at_ms: Date.now() - 60_000 + i,
    visitor_id: crypto.randomUUID().replaceAll("-", ""), new_visitor: true, bot: false,
  }));
  const response = await fetch(`${config.internal}/internal/clicks`, {
    method: "POST",
    headers: { authorization: `Bearer ${config.ingestToken}`, "content-type": "application/json" },
    body: JSON.stringify({ clicks }),
  });
  const summary = await response.json();
  check(response.status === 200 && summary.stored === count, `clicks were not stored: ${JSON.stringify(summary)}`);
  return ids;
}

/** A purchase reported by the storefront pixel with the click id the landing page kept. */
async function purchase(csRef, orderId) {
  const response = await fetch(`${config.base}/v1/pixel/events`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ pixel_id: config.pixelId, event: "purchase", cs_ref: csRef, order_id: orderId, value: "129.99", currency: "USD" }),
  });
  check(response.status === 202, `the purchase was answered with ${response.status}`);
}

async function main() {
  const browser = await chromium.launch({
    executablePath: config.chromium,
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const pageErrors = [];
  try {
    const context = await browser.newContext({ permissions: ["clipboard-read", "clipboard-write"], viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    current = page;
    page.setDefaultTimeout(config.timeoutMs);
    page.on("pageerror", (error) => pageErrors.push(String(error)));

    scenario = "sign in";
    await page.goto(`${config.base}/brand/attribution/links`);
    check(new URL(page.url()).pathname === "/brand/sign-in", `an anonymous visit was not sent to sign in: ${page.url()}`);
    await signIn(page, config.email, "not the password");
    await page.getByText("Incorrect email or password.").waitFor();
    expectEqual("the email kept after a failed sign-in", await page.getByLabel("Email").inputValue(), config.email);
    await signIn(page, config.email, config.password);
    await page.waitForURL(`${config.base}/brand/attribution/links`);
    await page.getByRole("heading", { name: "Tracking Links" }).waitFor();
    const session = (await context.cookies()).find((c) => c.name === "cs_session");
    check(session && session.httpOnly && session.sameSite === "Lax" && session.expires > Date.now() / 1000,
      `the session cookie is not HttpOnly, SameSite=Lax and expiring: ${JSON.stringify(session)}`);
    await shot(page, "01-signed-in");

    scenario = "create creators and campaigns";
    for (const [name, handle] of [["Jessica", "@jessica"], ["Sam", ""]]) {
      await page.goto(`${config.base}/brand/creators`);
      await page.getByLabel("Name").fill(name);
      if (handle) await page.getByLabel("Handle").fill(handle);
      await page.getByRole("button", { name: "Add creator" }).click();
      await page.getByText("Creator added.").waitFor();
    }
    await page.getByRole("cell", { name: "@jessica", exact: true }).waitFor();
    for (const name of ["Spring drop", "Summer"]) {
      await page.goto(`${config.base}/brand/campaigns`);
      await page.getByLabel("Name").fill(name);
      await page.getByRole("button", { name: "Add campaign" }).click();
      await page.getByText("Campaign added.").waitFor();
    }
    await page.getByRole("cell", { name: "Spring drop", exact: true }).waitFor();
    await shot(page, "02-creators-and-campaigns");

    scenario = "create a link through the form";
    await newLink(page, {
      destination: "https://shop.example/products/serum?variant=2", campaign: "Spring drop", creator: "Jessica (@jessica)",
      platform: "Instagram", contentType: "Reel", promo: "JESS20", share: true,
    });
    await page.getByRole("heading", { name: "Link created" }).waitFor();
    const shortUrl = (await page.locator(".created .short-url-text").textContent()).trim();
    check(SHORT_URL.test(shortUrl), `the new link's short URL is ${shortUrl}`);
    const jessLink = { id: new URL(page.url()).pathname.split("/").pop(), code: shortUrl.split("/").pop() };
    await shot(page, "03-link-created");

    scenario = "copy the short URL";
    await page.locator(".created button[data-copy]").click();
    await page.locator("#status").getByText(`Copied ${shortUrl} to the clipboard`).waitFor();
    expectEqual("the clipboard", await page.evaluate(() => navigator.clipboard.readText()), shortUrl);
    await shot(page, "04-copied");

    scenario = "a validation error keeps the typed values";
    await newLink(page, { destination: "ftp://shop.example/tee", campaign: "Summer", creator: "Sam", platform: "TikTok", promo: "jess20" });
    await page.getByText("destination_url must use http or https").waitFor();
    expectEqual("the destination kept", await page.getByLabel("Destination URL").inputValue(), "ftp://shop.example/tee");
    expectEqual("the promo code kept", await page.getByLabel("Promo Code").inputValue(), "jess20");
    expectEqual("the platform kept", await page.getByLabel("Platform").inputValue(), "tiktok");
    const samId = await page.getByLabel("Creator", { exact: true }).inputValue();
    check(samId !== "", "the creator choice was lost");
    expectEqual("the destination field's state", await page.getByLabel("Destination URL").getAttribute("aria-invalid"), "true");
    await shot(page, "05-validation-error");
    // Fixing the URL leaves the promo code, which another active link uses (compared case-insensitively).
    await page.getByLabel("Destination URL").fill("https://shop.example/products/tee");
    await page.getByRole("button", { name: "Create Link" }).click();
    await page.getByText("another active link of this brand already uses this promo code").waitFor();
    await page.getByLabel("Promo Code").fill("SAM10");
    await page.getByRole("button", { name: "Create Link" }).click();
    await page.getByRole("heading", { name: "Link created" }).waitFor();
    const samLink = { id: new URL(page.url()).pathname.split("/").pop() };

    scenario = "filter by creator and by campaign";
    await page.goto(`${config.base}/brand/attribution/links`);
    let rows = await linkRows(page);
    expectEqual("links listed", rows.length, 2);
    expectEqual("the newest link first", rows[0].id, samLink.id);
    await page.getByLabel("Creator", { exact: true }).selectOption({ label: "Jessica (@jessica)" });
    await page.waitForURL(/creator_id=/);
    rows = await linkRows(page);
    check(rows.length === 1 && rows[0].id === jessLink.id && rows[0].creator === "Jessica (@jessica)",
      `filtering by Jessica shows ${JSON.stringify(rows)}`);
    await shot(page, "06-filtered-by-creator");
    // The filter lives in the URL: a bookmark opens the same list.
    const bookmark = page.url();
    await page.goto(bookmark);
    expectEqual("links at the bookmarked URL", (await linkRows(page)).length, 1);
    await page.goto(`${config.base}/brand/attribution/links`);
    await page.getByLabel("Campaign", { exact: true }).selectOption({ label: "Summer" });
    await page.waitForURL(/campaign_id=/);
    rows = await linkRows(page);
    check(rows.length === 1 && rows[0].id === samLink.id && rows[0].campaign === "Summer",
      `filtering by Summer shows ${JSON.stringify(rows)}`);
    await shot(page, "07-filtered-by-campaign");

    scenario = "clicks and a credited order";
    const clickIds = await recordClicks(jessLink, 2);
    await purchase(clickIds[1], "A-1001");
    await page.goto(`${config.base}/brand/attribution/links`);
    rows = await linkRows(page);
    const jessRow = rows.find((r) => r.id === jessLink.id);
    check(jessRow && jessRow.clicks === 2 && jessRow.conversions === 1, `the link's row shows ${JSON.stringify(jessRow)}`);
    await page.goto(`${config.base}/brand/attribution`);
    expectEqual("the period's clicks", (await page.locator('[data-total="clicks"]').textContent()).trim(), "2");
    expectEqual("the period's revenue", (await page.locator('[data-total="revenue"]').textContent()).trim(), "129.99 USD");
    const order = page.locator('tr[data-order-id="A-1001"]');
    const credit = (await order.locator("td.credit").textContent()).replace(/\s+/g, " ");
    check(credit.includes(`Click ${clickIds[1].slice(0, 8)} at `), `the order's credit reads ${credit}`);
    await page.locator("#by-creator + .table-scroll").getByRole("link", { name: "Jessica (@jessica)" }).waitFor();
    check(await page.locator("figure.chart svg rect").count() >= 30, "the chart has no bar per day");
    await shot(page, "08-attribution");

    scenario = "export the links and orders as CSV";
    await page.goto(`${config.base}/brand/attribution/links`);
    const [linksCsv] = await Promise.all([page.waitForEvent("download"), page.getByRole("link", { name: "Export CSV" }).click()]);
    const linksText = readFileSync(await linksCsv.path(), "utf8");
    check(linksText.startsWith("id,code,short_url,"), `the links export starts ${linksText.slice(0, 40)}`);
    check(linksText.includes(`,${jessLink.code},`) && linksText.includes("\r\n"), "the links export lacks Jessica's link");
    await page.goto(`${config.base}/brand/attribution`);
    const [ordersCsv] = await Promise.all([page.waitForEvent("download"), page.getByRole("link", { name: "Orders", exact: true }).click()]);
    const ordersText = readFileSync(await ordersCsv.path(), "utf8");
    check(ordersText.startsWith("order_id,status,") && ordersText.includes("A-1001,"), `the orders export reads ${ordersText.slice(0, 200)}`);

    scenario = "add a webhook endpoint and send it a test event";
    await page.getByRole("link", { name: "Webhooks", exact: true }).click();
    await page.getByRole("heading", { name: "Webhooks", level: 1 }).waitFor();
    await page.getByLabel("Endpoint URL").fill("https://hooks.brand.example/creatorscore");
    await page.getByLabel("conversion.created", { exact: false }).check();
    await page.getByRole("button", { name: "Add endpoint" }).click();
    await page.getByText("Its signing secret is shown only now").waitFor();
    check((await page.locator("code.secret").textContent()).startsWith("whsec_"), "no signing secret shown");
    await shot(page, "09-webhook-added");
    await page.getByRole("link", { name: "https://hooks.brand.example/creatorscore" }).click();
    await page.getByRole("button", { name: "Send test event" }).click();
    await page.getByText("Test event queued").waitFor();
    await page.getByRole("cell", { name: "webhook.test" }).waitFor();
    await shot(page, "09-webhook-test-event");

    scenario = "UTM tags follow the platform and the campaign until edited";
    await page.goto(`${config.base}/brand/attribution/links/new`);
    expectEqual("utm_medium to start", await page.getByLabel("UTM medium").inputValue(), "creator");
    await page.getByLabel("Platform").selectOption({ label: "TikTok" });
    expectEqual("utm_source after TikTok", await page.getByLabel("UTM source").inputValue(), "tiktok");
    await page.getByLabel("Campaign", { exact: true }).selectOption({ label: "Spring drop" });
    expectEqual("utm_campaign after the campaign", await page.getByLabel("UTM campaign").inputValue(), "Spring drop");
    await page.getByLabel("UTM source").fill("tiktok-bio");
    await page.getByLabel("Platform").selectOption({ label: "Instagram" });
    expectEqual("an edited utm_source", await page.getByLabel("UTM source").inputValue(), "tiktok-bio");
    await shot(page, "10-utm-prefilled");

    scenario = "a broken destination is flagged";
    const shop = await goneShop();
    let brokenLink;
    try {
      await newLink(page, { destination: shop.url, creator: "Sam", platform: "YouTube" });
      await page.getByRole("heading", { name: "Link created" }).waitFor();
      brokenLink = { id: new URL(page.url()).pathname.split("/").pop() };
      // The API checks a new link's destination within its next pass (every 30 s).
      await reloadUntil(page, `${config.base}/brand/attribution/links`,
        (p) => p.locator(`tr[data-link-id="${brokenLink.id}"] .badge.broken`, { hasText: "Broken destination (404)" }),
        "the broken destination to be flagged", 90_000);
    } finally {
      shop.server.close();
    }
    await shot(page, "10-broken-destination");
    await page.goto(`${config.base}/brand/attribution/links/${brokenLink.id}`);
    await page.locator("dd.destination-check").getByText("Broken destination (404)").waitFor();

    scenario = "download the QR code";
    await page.goto(`${config.base}/brand/attribution/links/${samLink.id}`);
    const qr = page.locator("section.qr img.qr-code");
    await qr.waitFor();
    check(await qr.evaluate((img) => img.complete && img.naturalWidth > 0), "the QR code image did not load");
    const [png] = await Promise.all([page.waitForEvent("download"), page.locator("a.qr-download-png").click()]);
    const pngBytes = readFileSync(await png.path());
    check(pngBytes.subarray(1, 4).toString() === "PNG", "the PNG download is not a PNG");
    check(png.suggestedFilename().endsWith("-qr.png"), `the PNG is named ${png.suggestedFilename()}`);
    const [svg] = await Promise.all([page.waitForEvent("download"), page.locator("a.qr-download-svg").click()]);
    check(readFileSync(await svg.path(), "utf8").includes("<svg"), "the SVG download is not an SVG");
    await shot(page, "10-qr-code");

    scenario = "import links from a CSV file with a bad row";
    await page.goto(`${config.base}/brand/attribution/links`);
    await page.locator("a#import-csv").click();
    // The upload form's page, loaded: a file set on a page still being replaced would be lost, and the
    // form would then refuse to submit without it.
    await page.waitForURL(`${config.base}/brand/attribution/links/import`);
    const csv = "destination_url,creator,platform,utm_source,promo_code\r\n" +
      "https://shop.example/products/mask,Jessica,instagram,instagram,MASK15\r\n" +
      "not a url,Sam,tiktok,,\r\n";
    await page.locator("#csv_file").setInputFiles({ name: "links.csv", mimeType: "text/csv", buffer: Buffer.from(csv) });
    expectEqual("files chosen", await page.locator("#csv_file").evaluate((input) => input.files.length), 1);
    await page.locator("button#check-import").click();
    const preview = page.locator("table.import-preview");
    await preview.waitFor();
    expectEqual("rows with errors in the preview", await preview.locator("tr.invalid").count(), 1);
    check((await preview.locator("tr.invalid ul.errors").textContent()).includes("destination_url"),
      "the bad row's error does not name destination_url");
    expectEqual("links before confirming", (await linkRowsAt(page, `${config.base}/brand/attribution/links`)).length, 3);
    await shot(page, "10-import-preview");
    await page.locator("button#confirm-import").click();
    const results = page.locator("table.import-results");
    await results.waitFor();
    await page.getByText("1 link created.").waitFor();
    const importedUrl = (await results.locator("a.short-url").first().textContent()).trim();
    check(SHORT_URL.test(importedUrl), `the imported link's short URL is ${importedUrl}`);
    await shot(page, "10-import-results");

    scenario = "deactivate a link";
    await page.goto(`${config.base}/brand/attribution/links`);
    await page.getByRole("link", { name: `Deactivate link ${jessLink.code}` }).click();
    await page.getByRole("heading", { name: `Deactivate link ${jessLink.code}?` }).waitFor();
    await shot(page, "09-confirm-deactivation");
    await page.getByRole("button", { name: "Deactivate link" }).click();
    await page.getByText("Link deactivated.").waitFor();
    rows = await linkRows(page);
    const gone = rows.find((r) => r.id === jessLink.id);
    check(gone && gone.status === "Inactive" && gone.clicks === 2 && gone.conversions === 1 && !gone.trash,
      `the deactivated link's row shows ${JSON.stringify(gone)}`);
    await shot(page, "10-deactivated");

    scenario = "sign out";
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByText("You are signed out.").waitFor();
    await page.goto(`${config.base}/brand/attribution/links`);
    check(new URL(page.url()).pathname === "/brand/sign-in", `after sign-out the links page opened: ${page.url()}`);
    await shot(page, "11-signed-out");

    scenario = "another brand sees none of it";
    const other = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    const otherPage = await other.newPage();
    otherPage.setDefaultTimeout(config.timeoutMs);
    current = otherPage;
    await signIn(otherPage, config.otherEmail, config.otherPassword);
    await otherPage.waitForURL(`${config.base}/brand/attribution/links`);
    const otherRows = await linkRows(otherPage);
    check(otherRows.length === 1 && otherRows[0].code === config.otherLinkCode,
      `the other brand's list shows ${JSON.stringify(otherRows)}`);
    await shot(otherPage, "12-other-brand-on-a-phone");
    const peek = await otherPage.goto(`${config.base}/brand/attribution/links/${jessLink.id}`);
    expectEqual("another brand's link page status", peek.status(), 404);
    const filtered = await otherPage.goto(`${config.base}/brand/attribution/links?creator_id=${samId}`);
    expectEqual("a filter on another brand's creator", filtered.status(), 200);
    expectEqual("links under another brand's creator", (await linkRows(otherPage)).length, 0);
    await otherPage.goto(`${config.base}/brand/attribution`);
    check(!(await otherPage.content()).includes(jessLink.code), "the other brand's attribution page names this brand's link");
    expectEqual("the other brand's clicks", (await otherPage.locator('[data-total="clicks"]').textContent()).trim(), "0");

    check(pageErrors.length === 0, `the pages threw: ${pageErrors.join("; ")}`);
    process.stdout.write(JSON.stringify({ jess_link: jessLink, sam_link: samLink, broken_link: brokenLink, imported_url: importedUrl, short_url: shortUrl, click_ids: clickIds }) + "\n");
  } catch (error) {
    process.stderr.write(`${await failureReport()}\n`);
    throw error;
  } finally {
    await browser.close();
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    process.stderr.write(`dashboard (${scenario}): ${error.stack || error.message}\n`);
    process.exit(1);
  },
);
