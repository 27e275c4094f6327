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
    // The server converts the decimal string exactly to minor units.
    var value = typeof p.value === "number" && isFinite(p.value) ? String(p.value) : p.value;
    if (typeof value === "string") body.value = value;
    if (typeof p.currency === "string") body.currency = p.currency.toUpperCase();
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
