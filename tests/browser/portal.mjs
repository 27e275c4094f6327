// The creators' portal in a real browser (Debian's Chromium driven by playwright-core), against the real
// `api` binary: a creator opens a brand's invitation, creates an account, sees the figures of their own
// links (revenue only where the brand shares it), picks a period, gets a signed statement, downloads it and
// verifies it on the public /verify page (and sees a tampered copy refused), looks at the portal on a
// phone, signs out and in again, and loses the brand the moment it unlinks the account. Every scenario
// saves a screenshot; any wrong behaviour exits 1 with a message naming the scenario. On success prints
// one JSON line with what was issued.
//
//   BASE_URL=http://127.0.0.1:8080 INTERNAL_URL=http://127.0.0.1:8081 INGEST_TOKEN=... API_KEY=... \
//   INVITATION_URL=... CREATOR_ID=... SHARED_LINK='{"id","code"}' PRIVATE_LINK='{"id","code"}' \
//   SCREENSHOT_DIR=target/e2e-screenshots node tests/browser/portal.mjs
//
//   TIMEOUT_MS  how long to wait for each step (default 15000); CHROMIUM  the browser (default /usr/bin/chromium)
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

function settings(env) {
  const required = ["BASE_URL", "INTERNAL_URL", "INGEST_TOKEN", "API_KEY", "INVITATION_URL", "CREATOR_ID", "SHARED_LINK", "PRIVATE_LINK"];
  for (const name of required) {
    if (!env[name]) throw new Error(`${name} is required`);
  }
  return {
    base: env.BASE_URL.replace(/\/$/, ""),
    internal: env.INTERNAL_URL.replace(/\/$/, ""),
    ingestToken: env.INGEST_TOKEN,
    apiKey: env.API_KEY,
    invitation: env.INVITATION_URL,
    creatorId: env.CREATOR_ID,
    shared: JSON.parse(env.SHARED_LINK),
    private: JSON.parse(env.PRIVATE_LINK),
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
const EMAIL = "jess@creator.example";
const PASSWORD = "a long portal password";

async function shot(page, name) {
  await page.screenshot({ path: join(config.screenshots, `portal-${name}.png`), fullPage: true });
}

/** Clicks on a link, posted the way the edge's queue consumer does; returns their click ids. */
async function recordClicks(link, count) {
  const ids = Array.from({ length: count }, () => crypto.randomUUID().replaceAll("-", ""));
  const clicks = ids.map((id, i) => ({
    v: 1, click_id: id, code: link.code, link_id: link.id, occurred_at_ms: Date.now() - 120_000 + i,
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

/** An order the brand's store reports through the Conversions API, naming a click. */
async function order(orderId, amountMinor, csRef) {
  const response = await fetch(`${config.base}/v1/conversions`, {
    method: "POST",
    headers: { authorization: `Bearer ${config.apiKey}`, "content-type": "application/json", "idempotency-key": crypto.randomUUID() },
    body: JSON.stringify({ order_id: orderId, amount: { amount_minor: amountMinor, currency: "USD" },
      occurred_at: new Date(Date.now() - 60_000).toISOString(), cs_ref: csRef }),
  });
  check(response.status === 201, `order ${orderId}: ${response.status} ${await response.text()}`);
}

/** The figures of a link's row on a portal page. */
async function linkRow(page, code) {
  const row = page.locator(`tr[data-code="${code}"]`);
  const text = async (cls) => (await row.locator(`td.${cls}`).textContent()).trim();
  return { clicks: await text("clicks"), conversions: await text("conversions"), revenue: await text("revenue") };
}

async function main() {
  const sharedClicks = await recordClicks(config.shared, 3);
  const privateClicks = await recordClicks(config.private, 2);
  await order("portal-1", 12_999, sharedClicks[0]);
  await order("portal-2", 4_500, privateClicks[0]);

  const browser = await chromium.launch({
    executablePath: config.chromium,
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const pageErrors = [];
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
    const page = await context.newPage();
    page.setDefaultTimeout(config.timeoutMs);
    page.on("pageerror", (error) => pageErrors.push(error.message));

    scenario = "accept the invitation with a new account";
    await page.goto(config.invitation);
    await page.getByRole("heading", { name: /invites you to the creator portal/ }).waitFor();
    await shot(page, "01-invitation");
    await page.locator("#new-email").fill(EMAIL);
    await page.locator("#new-password").fill(PASSWORD);
    await page.locator("#new-password-again").fill(PASSWORD);
    await page.getByRole("button", { name: "Create account and accept" }).click();
    await page.waitForURL(/\/creator\/brands\/[0-9a-f-]+\?joined=1$/);
    check(await page.getByText("now shares your results with you").isVisible(), "no welcome notice");

    scenario = "the creator's figures, revenue only where shared";
    const shared = await linkRow(page, config.shared.code);
    const hidden = await linkRow(page, config.private.code);
    expectEqual("the shared link's clicks", shared.clicks, "3");
    expectEqual("the shared link's conversions", shared.conversions, "1");
    expectEqual("the shared link's revenue", shared.revenue, "129.99 USD");
    expectEqual("the private link's conversions", hidden.conversions, "1");
    expectEqual("the private link's revenue", hidden.revenue, "Not shared");
    check(!(await page.content()).includes("45.00 USD"), "the private link's revenue is on the page");
    expectEqual("total clicks", (await page.locator('[data-total="clicks"]').textContent()).trim(), "5");
    check(await page.locator("figure.chart svg").count() === 1, "no per-day chart");
    await shot(page, "02-brand");

    scenario = "choose a period";
    const today = new Date().toISOString().slice(0, 10);
    const weekAgo = new Date(Date.now() - 6 * 86_400_000).toISOString().slice(0, 10);
    await page.getByLabel("From", { exact: true }).fill(weekAgo);
    await page.getByLabel("To", { exact: true }).fill(today);
    await page.getByRole("button", { name: "Show" }).click();
    await page.waitForURL((url) => url.searchParams.get("from") === weekAgo && url.searchParams.get("to") === today);
    expectEqual("clicks over the week", (await linkRow(page, config.shared.code)).clicks, "3");

    scenario = "get a signed statement";
    await page.getByRole("button", { name: "Get a signed statement for this period" }).click();
    await page.waitForURL(/\/statements\/st_[A-Za-z0-9_-]+$/);
    const statementId = new URL(page.url()).pathname.split("/").pop();
    check(await page.getByText("Valid", { exact: true }).isVisible(), "the statement page has no Valid verdict");
    await shot(page, "03-statement");
    const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("link", { name: "Download JSON" }).click()]);
    const documentText = readFileSync(await download.path(), "utf8");
    const document = JSON.parse(documentText);
    expectEqual("the statement's id", document.statement.id, statementId);
    const privateItem = document.statement.links.find((l) => l.code === config.private.code);
    check(privateItem && !("revenue" in privateItem), `the private link's statement line has revenue: ${JSON.stringify(privateItem)}`);

    scenario = "verify the downloaded statement";
    const file = join(config.screenshots, "portal-statement.json");
    writeFileSync(file, documentText);
    await page.goto(`${config.base}/verify`);
    await page.getByLabel("Or choose a statement file").setInputFiles(file);
    await page.getByRole("button", { name: "Verify" }).click();
    await page.getByText("Valid", { exact: true }).waitFor();
    check((await page.content()).includes(config.shared.code) || (await page.content()).includes("129.99 USD"), "the verify page does not show the figures");
    await shot(page, "04-verify-valid");

    scenario = "a tampered statement is refused";
    const tampered = JSON.parse(documentText);
    tampered.statement.totals.clicks += 1000;
    await page.goto(`${config.base}/verify`);
    await page.getByLabel("Paste a statement (JSON)").fill(JSON.stringify(tampered));
    await page.getByRole("button", { name: "Verify" }).click();
    await page.getByText("Not valid").waitFor();
    await shot(page, "05-verify-tampered");

    scenario = "the portal on a phone";
    const phone = await context.newPage();
    phone.setDefaultTimeout(config.timeoutMs);
    await phone.setViewportSize({ width: 390, height: 844 });
    await phone.goto(`${config.base}/creator`);
    await phone.getByRole("heading", { name: "Your brands" }).waitFor();
    await phone.getByRole("link", { name: "Acme" }).click();
    await phone.locator(`tr[data-code="${config.shared.code}"]`).waitFor();
    const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    check(overflow <= 1, `the phone page scrolls sideways by ${overflow}px`);
    await shot(phone, "06-phone");
    await phone.close();

    scenario = "sign out and in again";
    await page.goto(`${config.base}/creator`);
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.waitForURL(`${config.base}/creator/sign-in?signed_out=1`);
    await page.getByLabel("Email").fill(EMAIL);
    await page.getByLabel("Password").fill(PASSWORD);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.waitForURL(`${config.base}/creator`);
    check(await page.getByRole("link", { name: "Acme" }).isVisible(), "the brand is not listed after signing in");
    await shot(page, "07-home");

    scenario = "the brand unlinks the account";
    const brandPage = await page.getByRole("link", { name: "Acme" }).getAttribute("href");
    const unlinked = await fetch(`${config.base}/v1/creators/${config.creatorId}/account`, {
      method: "DELETE", headers: { authorization: `Bearer ${config.apiKey}` },
    });
    expectEqual("unlinking", unlinked.status, 204);
    const gone = await page.goto(`${config.base}${brandPage}`);
    expectEqual("the unlinked brand's page", gone.status(), 404);
    await page.goto(`${config.base}/creator`);
    check(await page.getByRole("link", { name: "Acme" }).count() === 0, "the unlinked brand is still listed");

    check(pageErrors.length === 0, `the pages threw: ${pageErrors.join("; ")}`);
    process.stdout.write(JSON.stringify({ statement_id: statementId, email: EMAIL }) + "\n");
  } finally {
    await browser.close();
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    process.stderr.write(`portal (${scenario}): ${error.stack || error.message}\n`);
    process.exit(1);
  },
);
