// Unit tests of the storefront pixel: pixel.js runs in a vm context with a fake browser around it.
// Run with `node --test crates/api/static/`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import vm from "node:vm";

const SOURCE = readFileSync(new URL("./pixel.js", import.meta.url), "utf8");
const REF = "0123456789abcdef0123456789abcdef";
const OTHER_REF = "fedcba9876543210fedcba9876543210";
const ENDPOINT = "https://api.example.com/v1/pixel/events";

class FakeBlob {
  constructor(parts, options) {
    this.text = parts.join("");
    this.type = options && options.type;
  }
}

/** A fake browser page at `href`; `load()` runs pixel.js in it (again on every call, like another page load). */
function browser({
  href = "https://shop.example.com/products/1",
  cookies = {},
  beacon = () => true,
  scriptSrc = "https://api.example.com/pixel.js",
  pixelId = "px_test",
  currentScript = true,
  shopify = false,
  storage = new Map(),
  csq,
} = {}) {
  const url = new URL(href);
  const jar = new Map(Object.entries(cookies));
  const sent = []; // every event body, in order, with how it went out
  const cookieWrites = [];
  const fetches = [];
  const warnings = [];
  const script = { src: scriptSrc, getAttribute: (name) => (name === "data-pixel-id" ? pixelId : null) };
  const window = {
    location: {
      href,
      origin: url.origin,
      protocol: url.protocol,
      host: url.host,
      pathname: url.pathname,
      search: url.search,
    },
    document: {
      currentScript: currentScript ? script : null,
      querySelector: (selector) => (selector === "script[data-pixel-id]" ? script : null),
      get cookie() {
        return [...jar].map(([k, v]) => `${k}=${v}`).join("; ");
      },
      set cookie(raw) {
        cookieWrites.push(raw);
        const [pair] = raw.split(";");
        const eq = pair.indexOf("=");
        jar.set(pair.slice(0, eq), pair.slice(eq + 1));
      },
    },
    navigator: {
      sendBeacon(endpoint, body) {
        const result = beacon(endpoint, body);
        if (result) sent.push({ via: "beacon", endpoint, type: body.type, body: JSON.parse(body.text) });
        return result;
      },
    },
    Blob: FakeBlob,
    fetch(resource, rawInit) {
      // A copy made in this realm, so deepStrictEqual does not trip over the vm's Object prototype.
      const init = JSON.parse(JSON.stringify(rawInit));
      fetches.push({ resource, init });
      if (resource === ENDPOINT) sent.push({ via: "fetch", endpoint: resource, init, body: JSON.parse(init.body) });
      return Promise.resolve({ ok: true });
    },
    sessionStorage: {
      getItem: (key) => (storage.has(key) ? storage.get(key) : null),
      setItem: (key, value) => storage.set(key, String(value)),
    },
    console: { warn: (...args) => warnings.push(args.join(" ")) },
  };
  if (shopify) window.Shopify = { shop: "example.myshopify.com" };
  if (csq !== undefined) window.csq = csq;
  window.window = window;
  const context = vm.createContext(window);
  return {
    window,
    jar,
    sent,
    cookieWrites,
    fetches,
    warnings,
    storage,
    load: () => vm.runInContext(SOURCE, context),
    cartUpdates: () => fetches.filter((f) => f.resource === "/cart/update.js"),
  };
}

// Lets promise callbacks (the .then after a cart update) run.
const settle = () => new Promise((resolve) => setImmediate(resolve));

test("a landing with cs_ref stores it in a 30-day first-party cookie and sends it with the page view", () => {
  const page = browser({ href: `https://shop.example.com/landing?cs_ref=${REF}` });
  page.load();
  assert.deepEqual(page.cookieWrites, [`_cs_ref=${REF}; Max-Age=2592000; Path=/; SameSite=Lax; Secure`]);
  assert.equal(page.sent.length, 1);
  assert.deepEqual(page.sent[0].body, {
    pixel_id: "px_test",
    event: "page_view",
    cs_ref: REF,
    url: "https://shop.example.com/landing",
  });
  assert.equal(page.sent[0].endpoint, ENDPOINT);
  assert.equal(page.sent[0].type, "text/plain");
});

test("on plain http the cookie is not marked Secure", () => {
  const page = browser({ href: `http://127.0.0.1:9000/landing?utm_source=x&cs_ref=${REF}` });
  page.load();
  assert.deepEqual(page.cookieWrites, [`_cs_ref=${REF}; Max-Age=2592000; Path=/; SameSite=Lax`]);
});

test("an upper-case click id is accepted and stored in lower case", () => {
  const page = browser({ href: `https://shop.example.com/?cs_ref=${REF.toUpperCase()}` });
  page.load();
  assert.equal(page.jar.get("_cs_ref"), REF);
});

test("an invalid cs_ref is ignored and does not replace a valid cookie", () => {
  for (const bad of ["abc", REF.slice(1), REF + "0", "g" + REF.slice(1), `${REF.slice(0, 16)}-${REF.slice(16)}`, ""]) {
    const href = `https://shop.example.com/?cs_ref=${encodeURIComponent(bad)}`;
    const page = browser({ href, cookies: { _cs_ref: OTHER_REF } });
    page.load();
    assert.deepEqual(page.cookieWrites, [], `cs_ref=${bad} was stored`);
    assert.equal(page.sent[0].body.cs_ref, OTHER_REF, `cs_ref=${bad}`);
  }
});

test("an invalid cookie is not reported", () => {
  const page = browser({ cookies: { _cs_ref: "not-a-click-id" } });
  page.load();
  assert.equal(page.sent.length, 1);
  assert.equal("cs_ref" in page.sent[0].body, false);
});

test("a newer cs_ref on a later landing replaces the older one", () => {
  const page = browser({ href: `https://shop.example.com/?cs_ref=${OTHER_REF}`, cookies: { _cs_ref: REF } });
  page.load();
  assert.equal(page.jar.get("_cs_ref"), OTHER_REF);
  assert.equal(page.sent[0].body.cs_ref, OTHER_REF);
});

test("a page without cs_ref in its URL reports the click id from the cookie", () => {
  const page = browser({ href: "https://shop.example.com/cart", cookies: { other: "1", _cs_ref: REF } });
  page.load();
  assert.deepEqual(page.cookieWrites, []);
  assert.equal(page.sent[0].body.cs_ref, REF);
});

test("calls queued before the pixel loaded are replayed after the page view", () => {
  const page = browser({
    href: "https://shop.example.com/thanks?order_id=1001",
    cookies: { _cs_ref: REF },
    csq: [
      ["track", "add_to_cart", {}],
      ["track", "purchase", { order_id: 1001, value: 129.99, currency: "usd" }],
    ],
  });
  page.load();
  assert.deepEqual(
    page.sent.map((s) => s.body.event),
    ["page_view", "add_to_cart", "purchase"],
  );
  assert.deepEqual(page.sent[2].body, {
    pixel_id: "px_test",
    event: "purchase",
    cs_ref: REF,
    order_id: "1001",
    value: "129.99",
    currency: "USD",
    url: "https://shop.example.com/thanks",
  });
});

test("after load, csq.track and csq.push send at once", () => {
  const page = browser({ cookies: { _cs_ref: REF } });
  page.load();
  page.window.csq.track("begin_checkout");
  assert.equal(page.sent.length, 2);
  page.window.csq.push(["track", "purchase", { order_id: "A-7", value: "10.50", currency: "EUR" }]);
  assert.equal(page.sent.length, 3);
  assert.equal(page.sent[1].body.event, "begin_checkout");
  assert.deepEqual(
    [page.sent[2].body.order_id, page.sent[2].body.value, page.sent[2].body.currency],
    ["A-7", "10.50", "EUR"],
  );
});

test("values that are neither numbers nor strings are left out", () => {
  const page = browser();
  page.load();
  page.window.csq.track("purchase", { order_id: { id: 1 }, value: null, currency: 5 });
  page.window.csq.track("purchase", { value: NaN });
  for (const { body } of page.sent.slice(1)) {
    assert.deepEqual(Object.keys(body).sort(), ["event", "pixel_id", "url"]);
  }
});

/** The `value` the pixel sends for a purchase of `value` in `currency`. */
function sentValue(value, currency) {
  const page = browser();
  page.load();
  page.window.csq.track("purchase", { order_id: "1", value, currency });
  assert.equal(page.sent.length, 2);
  return page.sent[1].body.value;
}

test("a computed number is sent rounded half away from zero to the currency's decimals", () => {
  const cases = [
    [19.9 * 3, "USD", "59.70"], // 59.699999999999996
    [1234.56, "HUF", "1234.56"], // browsers say 0 decimals, ISO 4217 (and the server) 2
    [499.5, "PKR", "499.50"],
    [1.2345, "IQD", "1.235"],
    [1.005, "USD", "1.01"], // 1.00499999999999989... in binary; Math.round(x * 100) / 100 gives 1
    [0.1 + 0.2, "USD", "0.30"], // 0.30000000000000004
    [1500.4, "JPY", "1500"],
    [1500.5, "jpy", "1501"],
    [1.2345, "KWD", "1.235"], // 1.23449999999999993... in binary; toFixed(3) gives "1.234"
    [20, "USD", "20.00"],
    [123456789.125, "USD", "123456789.13"],
    [129.99, "EUR", "129.99"],
    [0, "USD", "0.00"],
    [0.005, "USD", "0.01"],
    [0.004, "USD", "0.00"],
    [1e-7, "USD", "0.00"],
    [9.995, "USD", "10.00"],
    [99.5, "JPY", "100"],
    [999999.9995, "KWD", "1000000.000"],
  ];
  for (const [value, currency, expected] of cases) {
    assert.equal(sentValue(value, currency), expected, `${value} ${currency}`);
  }
});

test("a value given as a string is sent unchanged", () => {
  assert.equal(sentValue("129.99", "USD"), "129.99");
  assert.equal(sentValue("19.999", "USD"), "19.999"); // the server refuses it, the pixel does not guess
  assert.equal(sentValue("1500", "JPY"), "1500");
});

test("without a currency the browser knows, a number is sent as its shortest exact text", () => {
  assert.equal(sentValue(1.5, "ZZZ"), "1.5");
  assert.equal(sentValue(19.9 * 3, "ZZZ"), "59.699999999999996");
  assert.equal(sentValue(1.5, "US"), "1.5");
  assert.equal(sentValue(1.5, undefined), "1.5");
});

test("negative and huge numbers are sent as they are, for the server to refuse", () => {
  assert.equal(sentValue(-1.005, "USD"), "-1.005");
  assert.equal(sentValue(1e21, "USD"), "1e+21");
  assert.equal(sentValue(1e15 + 0.5, "JPY"), "1000000000000000.5");
});

test("unknown events are ignored with a warning", () => {
  const page = browser();
  page.load();
  page.window.csq.track("page_viewed", {});
  page.window.csq.push(["track", "refund", {}], ["identify", "x"]);
  assert.equal(page.sent.length, 1);
  assert.equal(page.warnings.length, 2);
});

test("the query string and fragment never reach the server", () => {
  const page = browser({
    href: `https://shop.example.com/account/orders?cs_ref=${REF}&email=jane%40example.com&token=s3cret#address`,
  });
  page.load();
  page.window.csq.track("purchase", { order_id: "1", value: "1.00", currency: "USD" });
  assert.equal(page.sent.length, 2);
  for (const { body } of page.sent) {
    assert.equal(body.url, "https://shop.example.com/account/orders");
    const json = JSON.stringify(body);
    for (const secret of ["email", "jane", "s3cret", "address", "?"]) assert.equal(json.includes(secret), false, json);
  }
});

test("the endpoint is on the origin the script was loaded from", () => {
  const page = browser({ scriptSrc: "http://127.0.0.1:8080/pixel.js?v=3", currentScript: false });
  page.load();
  assert.equal(page.sent[0].endpoint, "http://127.0.0.1:8080/v1/pixel/events");
});

test("when sendBeacon refuses, the event goes by fetch with keepalive", () => {
  const page = browser({ beacon: () => false });
  page.load();
  assert.equal(page.sent.length, 1);
  const [{ via, endpoint, init, body }] = page.sent;
  assert.equal(via, "fetch");
  assert.equal(endpoint, ENDPOINT);
  assert.equal(body.event, "page_view");
  assert.deepEqual(
    { ...init, body: undefined },
    {
      method: "POST",
      body: undefined,
      keepalive: true,
      mode: "cors",
      credentials: "omit",
      headers: { "Content-Type": "text/plain" },
    },
  );
});

test("a browser without sendBeacon uses fetch", () => {
  const page = browser();
  delete page.window.navigator.sendBeacon;
  page.load();
  assert.deepEqual(page.sent.map((s) => s.via), ["fetch"]);
});

test("a throwing sendBeacon or fetch never throws into the store's code", async () => {
  const page = browser({
    beacon: () => {
      throw new TypeError("beacon blocked");
    },
  });
  assert.doesNotThrow(() => page.load());
  assert.deepEqual(page.sent.map((s) => s.via), ["fetch"]);

  page.window.fetch = () => {
    throw new TypeError("fetch blocked");
  };
  assert.doesNotThrow(() => page.window.csq.track("purchase", { order_id: "1", value: "1", currency: "USD" }));
  assert.doesNotThrow(() => page.window.csq.push(["track", "add_to_cart", {}]));

  const rejections = [];
  const onRejection = (reason) => rejections.push(reason);
  process.on("unhandledRejection", onRejection);
  page.window.fetch = () => Promise.reject(new TypeError("network down"));
  page.window.csq.track("add_to_cart");
  await settle();
  await settle();
  process.off("unhandledRejection", onRejection);
  assert.deepEqual(rejections, []);
});

test("without a pixel id nothing is sent and csq still does not throw", () => {
  const page = browser({ pixelId: null, csq: [["track", "purchase", { order_id: "1" }]] });
  page.load();
  assert.doesNotThrow(() => page.window.csq.track("purchase", { order_id: "1" }));
  assert.deepEqual(page.sent, []);
  assert.deepEqual(page.fetches, []);
});

test("the pixel on a page twice reports one page view", () => {
  const page = browser();
  page.load();
  page.load();
  assert.equal(page.sent.length, 1);
});

test("on Shopify the click id is written into the cart attributes once per click id per session", async () => {
  const storage = new Map();
  const first = browser({ href: `https://shop.example.com/?cs_ref=${REF}`, shopify: true, storage });
  first.load();
  await settle();
  assert.equal(first.cartUpdates().length, 1);
  const [{ init }] = first.cartUpdates();
  assert.equal(init.method, "POST");
  assert.equal(init.credentials, "same-origin");
  assert.deepEqual(init.headers, { "Content-Type": "application/json" });
  assert.deepEqual(JSON.parse(init.body), { attributes: { cs_ref: REF } });

  // Later pages of the same session, with the click id now from the cookie: no second update.
  const second = browser({ href: "https://shop.example.com/cart", cookies: { _cs_ref: REF }, shopify: true, storage });
  second.load();
  await settle();
  assert.equal(second.cartUpdates().length, 0);

  // A new click in the same session: the cart gets the new click id.
  const third = browser({ href: `https://shop.example.com/?cs_ref=${OTHER_REF}`, shopify: true, storage });
  third.load();
  await settle();
  assert.equal(third.cartUpdates().length, 1);
  assert.deepEqual(JSON.parse(third.cartUpdates()[0].init.body), { attributes: { cs_ref: OTHER_REF } });
});

test("on Shopify without sessionStorage the cart is still tagged", () => {
  const page = browser({ href: `https://shop.example.com/?cs_ref=${REF}`, shopify: true });
  Object.defineProperty(page.window, "sessionStorage", {
    get() {
      throw new DOMException("denied", "SecurityError");
    },
  });
  assert.doesNotThrow(() => page.load());
  assert.equal(page.cartUpdates().length, 1);
  assert.equal(page.sent.length, 1);
});

test("no cart update outside Shopify or without a click id", () => {
  const plain = browser({ href: `https://shop.example.com/?cs_ref=${REF}` });
  plain.load();
  const noRef = browser({ shopify: true });
  noRef.load();
  assert.equal(plain.cartUpdates().length + noRef.cartUpdates().length, 0);
});
