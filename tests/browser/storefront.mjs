// A visitor's whole journey in a real browser (Debian's Chromium driven by playwright-core):
// click a tracking link, land on the store (the pixel keeps cs_ref in the `_cs_ref` cookie), then buy:
// the thanks page queues a purchase before pixel.js loads, and the pixel reports it with the cs_ref from
// the cookie. Prints one JSON line with what the browser did and exits 0; exits 1 with a message otherwise.
//
//   START_URL=http://127.0.0.1:8787/abcd2345 STORE_ORIGIN=http://127.0.0.1:9000 node tests/browser/storefront.mjs
//
// Settings come from the environment or from `--start-url=...`-style arguments (which win):
//   START_URL      the tracking link; it must redirect to a page of STORE_ORIGIN with ?cs_ref=
//   STORE_ORIGIN   the store, serving tests/fixtures/storefront/{landing,thanks}.html at any landing path and /thanks
//   ORDER_ID, VALUE, CURRENCY   the purchase the thanks page reports (default 1001, 129.99, USD)
//   TIMEOUT_MS     how long to wait for each step before giving up (default 30000)
//   CHROMIUM       the browser binary (default /usr/bin/chromium; install it with scripts/install-browser.sh)
import { chromium } from "playwright-core";

const CLICK_ID = /^[0-9a-f]{32}$/;

function settings(argv, env) {
  const merged = { ...env };
  for (const arg of argv) {
    const match = /^--([a-z-]+)=(.*)$/s.exec(arg);
    if (!match) throw new Error(`unexpected argument ${arg} (want --name=value)`);
    merged[match[1].toUpperCase().replaceAll("-", "_")] = match[2];
  }
  for (const name of ["START_URL", "STORE_ORIGIN"]) {
    if (!merged[name]) throw new Error(`${name} is required`);
  }
  return {
    startUrl: merged.START_URL,
    storeOrigin: new URL(merged.STORE_ORIGIN).origin,
    order: { order_id: merged.ORDER_ID || "1001", value: merged.VALUE || "129.99", currency: merged.CURRENCY || "USD" },
    timeoutMs: Number(merged.TIMEOUT_MS || 30000),
    chromium: merged.CHROMIUM || "/usr/bin/chromium",
  };
}

/** Polls `check` until it returns something truthy; fails naming `what` after `timeoutMs`. */
async function until(what, timeoutMs, check) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Records every pixel event the browser sends, with the server's answer once it has one. */
async function recordPixelEvents(context) {
  // Chromium does not report the body of a sendBeacon Blob to observers; a pass-through route makes it
  // visible (request.postData()) while the request still goes, unchanged, to the server.
  await context.route("**/v1/pixel/events", (route) => route.continue());
  const events = [];
  const byRequest = new Map();
  context.on("request", (request) => {
    if (new URL(request.url()).pathname !== "/v1/pixel/events") return;
    let body = null;
    try {
      body = JSON.parse(request.postData() || "null");
    } catch {
      body = { unparsable: request.postData() };
    }
    const event = { endpoint: request.url(), method: request.method(), body, status: null, failure: null };
    byRequest.set(request, event);
    events.push(event);
  });
  context.on("requestfinished", async (request) => {
    const event = byRequest.get(request);
    if (!event) return;
    const response = await request.response().catch(() => null);
    event.status = response ? response.status() : 0;
  });
  context.on("requestfailed", (request) => {
    const event = byRequest.get(request);
    if (event) event.failure = request.failure()?.errorText || "failed";
  });
  return events;
}

/**
 * The first `name` event among `events` from index `since` on, once the server has answered it with the
 * contract's 202; throws when it was not delivered or was refused.
 */
function answered(events, name, since) {
  const event = events.slice(since).find((e) => e.body?.event === name && (e.status || e.failure));
  if (event?.failure) throw new Error(`the ${name} event was not delivered: ${event.failure}`);
  if (event && event.status !== 202) throw new Error(`the API answered the ${name} event with ${event.status}`);
  return event;
}

function expectEqual(what, actual, expected) {
  if (actual !== expected) throw new Error(`${what} is ${JSON.stringify(actual)}, want ${JSON.stringify(expected)}`);
}

async function main() {
  const config = settings(process.argv.slice(2), process.env);
  const browser = await chromium.launch({
    executablePath: config.chromium,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  const pageErrors = [];
  try {
    // Headless Chromium says "HeadlessChrome" in its user agent, and the edge rightly flags that as a
    // bot whose clicks earn nothing; this run stands for a person, so it presents the browser's own
    // user agent without the "Headless" part.
    const userAgent = (await browser.newPage().then(async (p) => {
      const ua = await p.evaluate(() => navigator.userAgent);
      await p.close();
      return ua;
    })).replace("HeadlessChrome", "Chrome");
    const context = await browser.newContext({ userAgent });
    const events = await recordPixelEvents(context);
    const page = await context.newPage();
    page.on("pageerror", (error) => pageErrors.push(String(error)));
    page.setDefaultTimeout(config.timeoutMs);

    // 1. The click: the edge redirects to the landing page with ?cs_ref=<click id>.
    await page.goto(config.startUrl, { waitUntil: "load" });
    const landing = new URL(page.url());
    const csRef = landing.searchParams.get("cs_ref");
    if (landing.origin !== config.storeOrigin || !CLICK_ID.test(csRef || "")) {
      throw new Error(`${config.startUrl} led to ${page.url()}, not to ${config.storeOrigin} with a cs_ref click id`);
    }
    const cookie = await until("the pixel's _cs_ref cookie", config.timeoutMs, async () =>
      (await context.cookies(config.storeOrigin)).find((c) => c.name === "_cs_ref"),
    );
    expectEqual("the _cs_ref cookie", cookie.value, csRef);
    // 30 days from now; the margin only absorbs the time this script has been running.
    const daysLeft = (cookie.expires - Date.now() / 1000) / 86400;
    if (Math.abs(daysLeft - 30) > 0.01) throw new Error(`the _cs_ref cookie expires in ${daysLeft} days, not 30`);
    const pageView = await until("the landing page view", config.timeoutMs, () => answered(events, "page_view", 0));
    expectEqual("the landing page view's cs_ref", pageView.body.cs_ref, csRef);

    // 2. The purchase, on a page whose URL has no cs_ref: it has to come from the cookie.
    const thanks = new URL("/thanks", config.storeOrigin);
    for (const [key, value] of Object.entries(config.order)) thanks.searchParams.set(key, value);
    const sinceThanks = events.length;
    await page.goto(thanks.href, { waitUntil: "load" });
    const purchase = await until("the purchase event", config.timeoutMs, () =>
      answered(events, "purchase", sinceThanks),
    );
    expectEqual("the purchase's cs_ref", purchase.body.cs_ref, csRef);
    for (const [key, value] of Object.entries(config.order)) {
      expectEqual(`the purchase's ${key}`, purchase.body[key], value);
    }
    expectEqual("the purchase's url", purchase.body.url, `${config.storeOrigin}/thanks`);
    if (pageErrors.length) throw new Error(`the store's pages threw: ${pageErrors.join("; ")}`);

    const { name, value, path, expires, httpOnly, secure, sameSite } = cookie;
    const observed = {
      cs_ref: csRef,
      landing_url: landing.href,
      cookie: { name, value, path, expires, httpOnly, secure, sameSite },
      requests: events,
    };
    process.stdout.write(JSON.stringify(observed) + "\n");
  } catch (error) {
    if (pageErrors.length) error.message += ` (the store's pages threw: ${pageErrors.join("; ")})`;
    throw error;
  } finally {
    await browser.close();
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    process.stderr.write(`storefront: ${error.message}\n`);
    process.exit(1);
  },
);
