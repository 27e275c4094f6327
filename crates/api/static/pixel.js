/* Tracking Links pixel: keeps the click id (cs_ref) in a first-party cookie and reports store events. */
(function (window) {
  "use strict";
  var document = window.document, navigator = window.navigator || {}, location = window.location;
  var TRACKED = { add_to_cart: 1, begin_checkout: 1, purchase: 1 };
  var endpoint, pixelId, ref;

  function warn(message) {
    if (window.console && console.warn) console.warn("[pixel] " + message);
  }

  // A click id is 32 hex digits; anything else is ignored.
  function clickId(match) {
    return match && /^[0-9a-f]{32}$/i.test(match[1]) ? match[1].toLowerCase() : null;
  }

  // Decimals of `currency` (USD 2, JPY 0, KWD 3), or null for a code the browser does not know.
  // Where browsers' currency data rounds to fewer decimals than ISO 4217 (which the server follows), ISO's:
  // 1234.56 HUF must not become 1235.
  var ISO_DIGITS = { AFN: 2, ALL: 2, COP: 2, HUF: 2, IDR: 2, IQD: 3, IRR: 2, KPW: 2, LAK: 2, LBP: 2, MGA: 2,
    MMK: 2, PKR: 2, SLL: 2, SOS: 2, SYP: 2, YER: 2 };

  function minorDigits(currency) {
    if (Object.prototype.hasOwnProperty.call(ISO_DIGITS, currency)) return ISO_DIGITS[currency];
    try {
      // A well-formed code with no name (ZZZ) would still get a default of 2 decimals.
      if (Intl.DisplayNames && !new Intl.DisplayNames("en", { type: "currency", fallback: "none" }).of(currency)) {
        return null;
      }
      var format = new Intl.NumberFormat("en", { style: "currency", currency: currency });
      return format.resolvedOptions().maximumFractionDigits;
    } catch (e) { return null; } // a malformed code (US), or no Intl at all
  }

  // The amount a store computed as a number (19.9 * 3 is 59.699999999999996), as the decimal string it meant:
  // rounded half away from zero to the currency's decimals ("59.70" USD, "1500" JPY), since the server
  // refuses extra digits.
  function amount(x, currency) {
    var places = minorDigits(currency);
    // Negative, unknown currency, or from 1e15 up (where 15 digits no longer hold every whole unit, and far
    // above any order the server accepts): the shortest exact text, for the server to judge.
    if (x < 0 || x >= 1e15 || places === null) return String(x);
    // 15 significant digits first drop the binary noise: 1.005 is 1.00499999999999989... in binary,
    // 1.00500000000000e+0 here, so it rounds up to 1.01 as a person means.
    var m = /^(\d)\.(\d+)e([+-]\d+)$/.exec(x.toExponential(14));
    // The amount is 0.digits × 10^(exponent + 1): its first `keep` digits are whole minor units.
    var digits = m[1] + m[2], keep = Number(m[3]) + 1 + places;
    if (keep < 1) { digits = zeros(1 - keep) + digits; keep = 1; }
    var minor = digits.slice(0, keep) + zeros(keep - digits.length);
    if (digits.charAt(keep) >= "5") minor = increment(minor);
    minor = minor.replace(/^0+/, "");
    minor = zeros(places + 1 - minor.length) + minor;
    return places ? minor.slice(0, -places) + "." + minor.slice(-places) : minor;
  }

  function zeros(n) {
    return n > 0 ? new Array(n + 1).join("0") : "";
  }

  // Adds one to a string of decimal digits: "129" is "130", "99" is "100".
  function increment(digits) {
    var i = digits.length - 1;
    while (i >= 0 && digits.charAt(i) === "9") i--;
    return (i < 0 ? "1" : digits.slice(0, i) + (Number(digits.charAt(i)) + 1)) + zeros(digits.length - 1 - i);
  }

  function post(json) {
    try {
      // text/plain keeps it a CORS-simple request: no preflight.
      var body = window.Blob ? new window.Blob([json], { type: "text/plain" }) : json;
      if (navigator.sendBeacon && navigator.sendBeacon(endpoint, body)) return;
    } catch (e) { /* fall back to fetch */ }
    if (!window.fetch) return;
    window.fetch(endpoint, { method: "POST", body: json, keepalive: true, mode: "cors", credentials: "omit",
      headers: { "Content-Type": "text/plain" } })["catch"](function () {});
  }

  function send(event, props) {
    var p = props || {}, body = { pixel_id: pixelId, event: event };
    if (ref) body.cs_ref = ref;
    if (/^(string|number)$/.test(typeof p.order_id)) body.order_id = String(p.order_id);
    var currency = typeof p.currency === "string" ? p.currency.toUpperCase() : null;
    // The server converts the decimal string exactly to minor units. A string is what the store meant: as is.
    var value = typeof p.value === "number" && isFinite(p.value) ? amount(p.value, currency) : p.value;
    if (typeof value === "string") body.value = value;
    if (currency !== null) body.currency = currency;
    // Never the query string: it may carry personal data.
    body.url = (location.origin || location.protocol + "//" + location.host) + location.pathname;
    post(JSON.stringify(body));
  }

  function track(event, props) {
    try {
      if (TRACKED[event] !== 1) return warn("unknown event " + event);
      if (endpoint) send(event, props);
    } catch (e) { warn(e); }
  }

  function push() {
    for (var i = 0; i < arguments.length; i++) {
      var entry = arguments[i];
      if (entry && entry[0] === "track") track(entry[1], entry[2]);
    }
  }

  // On Shopify the click id goes into the cart attributes, so the order's note_attributes carry it.
  function tagShopifyCart() {
    var storage = null;
    try { storage = window.sessionStorage; if (storage.getItem("_cs_ref_cart") === ref) return; } catch (e) { }
    window.fetch(((window.Shopify.routes || {}).root || "/") + "cart/update.js", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ attributes: { cs_ref: ref } }), credentials: "same-origin"
    }).then(function (response) {
      try { if (response.ok && storage) storage.setItem("_cs_ref_cart", ref); } catch (e) { }
    })["catch"](function () {});
  }

  function start() {
    var queued = window.csq;
    if (queued && queued.loaded) return; // the pixel is on the page twice
    window.csq = { loaded: true, track: track, push: function () {
      try { push.apply(null, arguments); } catch (e) { warn(e); }
    } };

    var script = document.currentScript || document.querySelector("script[data-pixel-id]");
    var origin = script && /^https?:\/\/[^\/?#]+/i.exec(script.src);
    pixelId = script && script.getAttribute("data-pixel-id");
    if (!origin || !pixelId) return warn("no script tag with src and data-pixel-id");
    endpoint = origin[0] + "/v1/pixel/events";

    var landed = clickId(/[?&]cs_ref=([^&#]*)/.exec(location.search));
    if (landed) {
      document.cookie = "_cs_ref=" + landed + "; Max-Age=2592000; Path=/; SameSite=Lax" +
        (location.protocol === "https:" ? "; Secure" : "");
    }
    ref = landed || clickId(/(?:^|;\s*)_cs_ref=([^;]*)/.exec(document.cookie || ""));

    send("page_view");
    if (ref && window.Shopify && window.fetch) tagShopifyCart();
    if (queued && queued.length) push.apply(null, queued);
  }

  try { start(); } catch (e) { warn(e); }
})(window);
