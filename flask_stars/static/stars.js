/*
 * flask_stars browser helper for Telegram Mini Apps. No dependencies, no build step.
 * Load it after Telegram's telegram-web-app.js:
 *
 *   <script src="https://telegram.org/js/telegram-web-app.js"></script>
 *   <script src="/stars/stars.js"></script>
 *
 *   const packs = await FlaskStars.packs();
 *   const result = await FlaskStars.buy("stars_pack_1", {onStatus: s => console.log(s)});
 *   if (result.status === "paid") showBalance();
 *
 * buy() resolves {status: "paid", order} only when the *server* says the order is paid
 * (Telegram's "paid" in the browser is a hint); {status: "cancelled" | "failed" |
 * "pending", order} otherwise. It rejects with a FlaskStars.StarsError carrying the
 * server's error code (error.code, error.status) when a request fails.
 */
(function (global) {
  "use strict";

  // The blueprint's base URL, from this script's own address, under any url_prefix. The
  // blueprint serves it at <prefix>/stars.js and, as its static file (url_for("stars.static",
  // filename="stars.js")), at <prefix>/static/stars.js: both lead back to <prefix>.
  var script = document.currentScript;
  var baseUrl = script && script.src
    ? script.src.replace(/[?#].*$/, "").replace(/\/(?:static\/)?stars\.js$/, "")
    : "/stars";

  function StarsError(code, message, status, fields) {
    var error = new Error(message || code);
    error.name = "StarsError";
    error.code = code;
    error.status = status || 0;
    error.fields = fields || null;
    return error;
  }

  var defaults = {
    // How long to wait, in total, for the server to confirm a payment Telegram reported.
    confirmTimeout: 30000,
    // Each long-poll request waits up to this many seconds (the server allows 25).
    pollWait: 10,
  };

  function webApp() {
    var tg = global.Telegram && global.Telegram.WebApp;
    if (!tg) {
      throw StarsError("no_telegram", "Telegram's telegram-web-app.js is not loaded.");
    }
    return tg;
  }

  function authHeaders() {
    return {Authorization: "tma " + webApp().initData};
  }

  function request(method, path, body) {
    var options = {method: method, headers: authHeaders(), credentials: "same-origin"};
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    return fetch(baseUrl + path, options).then(
      function (response) {
        return response.text().then(function (text) {
          var data = null;
          try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
          if (!response.ok) {
            var code = (data && data.error) || "http_" + response.status;
            var message = (data && data.message) || response.statusText || "Request failed";
            throw StarsError(code, message, response.status, data && data.fields);
          }
          return data;
        });
      },
      function () {
        throw StarsError("network_error", "The server cannot be reached. Check your connection.");
      }
    );
  }

  function sleep(ms) {
    return new Promise(function (resolve) { setTimeout(resolve, ms); });
  }

  function order(orderId, options) {
    var wait = options && options.wait ? "?wait=" + encodeURIComponent(options.wait) : "";
    return request("GET", "/orders/" + encodeURIComponent(orderId) + wait);
  }

  // Long-poll the order until the server leaves "pending" or the time budget is spent.
  // A busy server answers a long-poll at once (its wait slots are taken): then back off,
  // doubling the pause up to 4 s, instead of asking again and again.
  function confirm(orderId, timeoutMs) {
    var deadline = Date.now() + timeoutMs;
    var pause = 250;
    function step() {
      var left = Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
      var wait = Math.min(defaults.pollWait, left);
      var asked = Date.now();
      return order(orderId, {wait: wait}).then(function (current) {
        if (current.status !== "pending" || Date.now() >= deadline) return current;
        var answeredEarly = Date.now() - asked < wait * 500;
        pause = answeredEarly ? Math.min(pause * 2, 4000) : 250;
        return sleep(Math.min(pause, Math.max(0, deadline - Date.now()))).then(step);
      });
    }
    return step();
  }

  function openInvoice(url) {
    return new Promise(function (resolve, reject) {
      try {
        webApp().openInvoice(url, function (status) { resolve(status); });
      } catch (e) {
        var code = String(e && e.message) === "WebAppInvoiceOpened" ? "invoice_open" : "invoice_error";
        reject(StarsError(code, "Telegram could not open the invoice (" + (e && e.message) + ")."));
      }
    });
  }

  var inFlight = null;  // one purchase at a time: a double click joins the running one

  function buy(packId, options) {
    if (inFlight) return inFlight;
    options = options || {};
    var onStatus = typeof options.onStatus === "function" ? options.onStatus : function () {};
    var current = null;

    inFlight = Promise.resolve()
      .then(function () {
        onStatus("creating");
        return request("POST", "/invoice", {pack_id: packId});
      })
      .then(function (created) {
        current = created;
        onStatus("invoice_open", created);
        return openInvoice(created.invoice_url);
      })
      .then(function (telegramStatus) {
        if (telegramStatus === "paid" || telegramStatus === "pending") {
          onStatus("confirming", current);
          return confirm(current.order_id, options.confirmTimeout || defaults.confirmTimeout).then(function (confirmed) {
            var status = confirmed.status === "paid" ? "paid" : "pending";
            onStatus(status, confirmed);
            return {status: status, order: confirmed};
          });
        }
        var status = telegramStatus === "cancelled" ? "cancelled" : "failed";
        onStatus(status, current);
        return {status: status, order: current};
      })
      .then(
        function (result) { inFlight = null; return result; },
        function (error) { inFlight = null; onStatus("error", error); throw error; }
      );
    return inFlight;
  }

  function packs() {
    // The buyer's initData, when Telegram gave one, so the packs come in their language.
    var tg = global.Telegram && global.Telegram.WebApp;
    var headers = tg && tg.initData ? {Authorization: "tma " + tg.initData} : {};
    return fetch(baseUrl + "/packs", {headers: headers, credentials: "same-origin"})
      .then(function (response) {
        if (!response.ok) throw StarsError("http_" + response.status, "Could not load the packs.", response.status);
        return response.json();
      })
      .then(function (data) { return data.packs; });
  }

  global.FlaskStars = {
    baseUrl: baseUrl,
    defaults: defaults,
    packs: packs,
    buy: buy,
    order: order,
    busy: function () { return inFlight !== null; },
    configure: function (settings) {
      if (settings && settings.baseUrl) { baseUrl = settings.baseUrl.replace(/\/$/, ""); this.baseUrl = baseUrl; }
      for (var key in settings) if (key in defaults) defaults[key] = settings[key];
    },
    StarsError: StarsError,
  };
})(window);
