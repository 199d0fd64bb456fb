/* towerscope RUM collector. Written for towerscope; no dependencies.
 *
 * <script src="/rum.js" defer
 *         data-endpoint="/api/rum"      (where beacons go; default /api/rum)
 *         data-sample-rate="1"          (fraction of sessions reporting; default 1)
 *         data-clicks="false"           (count clicks; off by default)
 *         data-flush-interval="10000"></script>
 *
 * Reports navigation timing (TTFB, DOMContentLoaded, load), Core Web Vitals (LCP, INP,
 * CLS) and FCP, JavaScript errors and unhandled rejections, and fetch() timings. Beacons
 * are sent with navigator.sendBeacon as text/plain (no CORS preflight) when the page is
 * hidden or unloaded, and every flush interval while events wait, so a closing tab's data
 * is not lost.
 */
(function () {
  "use strict";
  if (window.__towerscopeRum) return;
  var script = document.currentScript || {};
  function attr(name, fallback) {
    var v = script.getAttribute && script.getAttribute(name);
    return v === null || v === undefined ? fallback : v;
  }
  var endpoint = attr("data-endpoint", "/api/rum");
  var sampleRate = parseFloat(attr("data-sample-rate", "1"));
  var clicks = attr("data-clicks", "false") === "true";
  var flushEvery = parseInt(attr("data-flush-interval", "10000"), 10) || 10000;
  var MAX_EVENTS = 50;

  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    var s = "";
    for (var i = 0; i < 32; i++) s += Math.floor(Math.random() * 16).toString(16);
    return s.slice(0, 8) + "-" + s.slice(8, 12) + "-" + s.slice(12, 16) + "-" + s.slice(16, 20) + "-" + s.slice(20);
  }
  var session, sampled;
  try {
    session = sessionStorage.getItem("towerscope_rum_session");
    sampled = sessionStorage.getItem("towerscope_rum_sampled");
    if (!session) {
      session = uuid();
      sampled = String(Math.random() < sampleRate);
      sessionStorage.setItem("towerscope_rum_session", session);
      sessionStorage.setItem("towerscope_rum_sampled", sampled);
    }
  } catch (e) {
    session = uuid();
    sampled = String(Math.random() < sampleRate);
  }
  if (sampled !== "true") return;

  // Beacons carry addresses without their query and fragment: a page's may hold a reset
  // token, or an OAuth access token in the fragment, an API call's a key; the server keeps
  // paths only anyway.
  function pathOnly(u) {
    u = String(u === undefined || u === null ? "" : u);
    var end = u.search(/[?#]/);
    return end < 0 ? u : u.slice(0, end);
  }

  var queue = [];
  function push(event) {
    queue.push(event);
    if (queue.length >= MAX_EVENTS) flush();
  }
  function flush() {
    while (queue.length) {
      var batch = queue.splice(0, MAX_EVENTS);
      var body = JSON.stringify({ session: session, page: pathOnly(location.href), events: batch });
      var sent = false;
      try {
        if (navigator.sendBeacon) {
          sent = navigator.sendBeacon(endpoint, new Blob([body], { type: "text/plain" }));
        }
      } catch (e) {
        sent = false;
      }
      if (!sent && window.fetch && origFetch) {
        origFetch.call(window, endpoint, {
          method: "POST",
          body: body,
          headers: { "content-type": "text/plain" },
          keepalive: true,
        }).catch(function () {});
      }
    }
  }
  window.__towerscopeRum = { flush: flush, session: session };

  function observe(type, callback, opts) {
    try {
      if (!PerformanceObserver.supportedEntryTypes || PerformanceObserver.supportedEntryTypes.indexOf(type) < 0) return null;
      var po = new PerformanceObserver(function (list) { callback(list.getEntries()); });
      var o = { type: type, buffered: true };
      for (var k in opts || {}) o[k] = opts[k];
      po.observe(o);
      return po;
    } catch (e) {
      return null;
    }
  }
  function vital(name, value) {
    if (typeof value === "number" && isFinite(value) && value >= 0) {
      push({ type: "vital", name: name, value: Math.round(value * 1000) / 1000 });
    }
  }

  // Navigation timing and TTFB.
  function navigation() {
    var nav = performance.getEntriesByType && performance.getEntriesByType("navigation")[0];
    if (!nav) return;
    vital("TTFB", nav.responseStart);
    push({ type: "navigation", dcl: Math.round(nav.domContentLoadedEventEnd), load: Math.round(nav.loadEventEnd) });
  }
  if (document.readyState === "complete") setTimeout(navigation, 0);
  else addEventListener("load", function () { setTimeout(navigation, 0); });

  // FCP.
  observe("paint", function (entries) {
    entries.forEach(function (e) { if (e.name === "first-contentful-paint") vital("FCP", e.startTime); });
  });

  // LCP: the last candidate before the first input or the page being hidden.
  var lcp = 0, lcpDone = false;
  var lcpObserver = observe("largest-contentful-paint", function (entries) {
    var last = entries[entries.length - 1];
    if (last) lcp = last.startTime;
  });
  function finishLcp() {
    if (lcpDone || !lcpObserver) return;
    lcpDone = true;
    if (lcpObserver.takeRecords) {
      var rest = lcpObserver.takeRecords();
      if (rest.length) lcp = rest[rest.length - 1].startTime;
    }
    lcpObserver.disconnect();
    if (lcp > 0) vital("LCP", lcp);
  }
  ["keydown", "click", "pointerdown"].forEach(function (t) {
    addEventListener(t, function () { setTimeout(finishLcp, 0); }, { once: true, capture: true });
  });

  // CLS: the largest session window of layout shifts (gaps under 1 s, at most 5 s long).
  var cls = 0, windowValue = 0, windowStart = 0, windowLast = 0;
  observe("layout-shift", function (entries) {
    entries.forEach(function (e) {
      if (e.hadRecentInput) return;
      if (windowValue && e.startTime - windowLast < 1000 && e.startTime - windowStart < 5000) {
        windowValue += e.value;
      } else {
        windowValue = e.value;
        windowStart = e.startTime;
      }
      windowLast = e.startTime;
      if (windowValue > cls) cls = windowValue;
    });
  });

  // INP: the longest interaction (the 98th percentile with many), by interactionId.
  var interactions = {};
  function addInteraction(e) {
    if (!e.interactionId) return;
    var prev = interactions[e.interactionId] || 0;
    if (e.duration > prev) interactions[e.interactionId] = e.duration;
  }
  observe("event", function (entries) { entries.forEach(addInteraction); }, { durationThreshold: 16 });
  observe("first-input", function (entries) { entries.forEach(addInteraction); });
  function inp() {
    var all = Object.keys(interactions).map(function (k) { return interactions[k]; });
    if (!all.length) return null;
    all.sort(function (a, b) { return b - a; });
    return all[Math.min(all.length - 1, Math.floor(all.length / 50))];
  }

  // Errors and unhandled rejections.
  function cut(s, n) { s = String(s === undefined || s === null ? "" : s); return s.length > n ? s.slice(0, n) : s; }
  addEventListener("error", function (ev) {
    if (ev.target && ev.target !== window) return; // resource load errors are not script errors
    push({
      type: "error",
      message: cut(ev.message || "error", 500),
      source: cut(pathOnly(ev.filename), 500),
      line: ev.lineno || 0,
      col: ev.colno || 0,
      stack: cut(ev.error && ev.error.stack, 2000),
    });
  }, true);
  addEventListener("unhandledrejection", function (ev) {
    var r = ev.reason;
    push({
      type: "error",
      message: cut("Unhandled rejection: " + (r && r.message ? r.message : r), 500),
      stack: cut(r && r.stack, 2000),
    });
  });

  // fetch() timings, without changing what fetch does.
  var origFetch = window.fetch;
  if (origFetch) {
    window.fetch = function (input, init) {
      var start = performance.now();
      var url = typeof input === "string" ? input : (input && input.url) || String(input);
      var method = (init && init.method) || (input && input.method) || "GET";
      var p = origFetch.apply(this, arguments);
      if (url.indexOf(endpoint) === 0) return p;
      p.then(function (resp) {
        push({ type: "api", url: cut(pathOnly(url), 2000), method: cut(method, 10), status: resp.status, duration: Math.round(performance.now() - start) });
      }, function () {
        push({ type: "api", url: cut(pathOnly(url), 2000), method: cut(method, 10), status: 0, duration: Math.round(performance.now() - start) });
      });
      return p;
    };
  }

  if (clicks) {
    addEventListener("click", function () { push({ type: "click" }); }, true);
  }

  // Delivery: on hide/unload (the last chance a closing tab gets), and periodically.
  var reported = false;
  function final() {
    finishLcp();
    if (!reported) {
      if (cls > 0 || lcpDone) vital("CLS", cls);
      var v = inp();
      if (v !== null) vital("INP", v);
      reported = true;
    }
    flush();
  }
  addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") final();
  });
  addEventListener("pagehide", final);
  // A page restored from the back/forward cache is a new page view: its layout shifts and
  // interactions are measured afresh and reported when it is hidden again.
  addEventListener("pageshow", function (ev) {
    if (!ev.persisted) return;
    cls = 0; windowValue = 0; windowStart = 0; windowLast = 0;
    interactions = {};
    reported = false;
    // Its first paint is the frame after the restore: that is its FCP and LCP, as web-vitals
    // reports them for restored pages.
    requestAnimationFrame(function () {
      requestAnimationFrame(function () {
        var t = performance.now() - ev.timeStamp;
        vital("FCP", t);
        vital("LCP", t);
      });
    });
  });
  setInterval(function () { if (queue.length) flush(); }, flushEvery);
})();
