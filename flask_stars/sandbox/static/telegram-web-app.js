/*
 * flask_stars sandbox: a small stand-in for Telegram's telegram-web-app.js, served only by
 * the sandbox, for machines that cannot reach telegram.org. It implements the part of
 * Telegram.WebApp a shop uses (initData, initDataUnsafe, themeParams, ready, expand,
 * openInvoice, onEvent/offEvent) over the same protocol as the real script: events to the
 * client through TelegramWebviewProxy.postEvent or window.parent.postMessage, events from
 * it through Telegram.WebView.receiveEvent or messages from the parent frame.
 * Where the real script loads, it is used instead (see the example app's page).
 */
(function (global) {
  "use strict";
  if (global.Telegram && global.Telegram.WebApp) return;

  function decode(value) {
    try { return decodeURIComponent(value.replace(/\+/g, "%20")); } catch (e) { return value; }
  }
  function parseParams(text) {
    var params = {};
    text.replace(/^[#?]/, "").split("&").forEach(function (pair) {
      if (!pair) return;
      var i = pair.indexOf("=");
      params[decode(i < 0 ? pair : pair.slice(0, i))] = i < 0 ? null : decode(pair.slice(i + 1));
    });
    return params;
  }

  var stored = {};
  try { stored = JSON.parse(sessionStorage.getItem("__telegram__initParams")) || {}; } catch (e) {}
  var initParams = parseParams(location.hash.toString());
  for (var k in stored) if (initParams[k] === undefined) initParams[k] = stored[k];
  try { sessionStorage.setItem("__telegram__initParams", JSON.stringify(initParams)); } catch (e) {}

  var initData = initParams.tgWebAppData || "";
  var initDataUnsafe = {};
  if (initData) {
    var fields = parseParams(initData);
    for (var key in fields) {
      var v = fields[key];
      initDataUnsafe[key] = /^[\[{]/.test(v || "") ? JSON.parse(v) : v;
    }
  }
  var themeParams = {};
  try { themeParams = JSON.parse(initParams.tgWebAppThemeParams || "{}"); } catch (e) {}

  var handlers = {};
  var isIframe = global.parent != null && global !== global.parent;

  function postEvent(type, data) {
    if (global.TelegramWebviewProxy !== undefined) {
      global.TelegramWebviewProxy.postEvent(type, JSON.stringify(data || ""));
    } else if (isIframe) {
      global.parent.postMessage(JSON.stringify({eventType: type, eventData: data || ""}), "*");
    }
  }
  function receiveEvent(type, data) {
    (handlers[type] || []).slice().forEach(function (fn) { fn(type, data); });
  }
  if (isIframe) {
    global.addEventListener("message", function (event) {
      if (event.source !== global.parent) return;
      var parsed;
      try { parsed = JSON.parse(event.data); } catch (e) { return; }
      if (parsed && parsed.eventType) receiveEvent(parsed.eventType, parsed.eventData);
    });
    postEvent("iframe_ready", {reload_supported: false});
  }

  var invoices = {};
  var appHandlers = {};
  function on(type, fn) { (handlers[type] = handlers[type] || []).push(fn); }
  on("invoice_closed", function (type, data) {
    var invoice = data && invoices[data.slug];
    if (!invoice) return;
    delete invoices[data.slug];
    if (invoice.callback) invoice.callback(data.status);
    (appHandlers.invoiceClosed || []).forEach(function (fn) { fn({url: invoice.url, status: data.status}); });
  });
  on("theme_changed", function (type, data) {
    if (data && data.theme_params) themeParams = data.theme_params;
    (appHandlers.themeChanged || []).forEach(function (fn) { fn(); });
  });

  var WebApp = {
    initData: initData,
    initDataUnsafe: initDataUnsafe,
    version: initParams.tgWebAppVersion || "6.0",
    platform: initParams.tgWebAppPlatform || "unknown",
    get themeParams() { return themeParams; },
    get colorScheme() { return /^#[0-9a-f]{6}$/i.test(themeParams.bg_color || "") && parseInt(themeParams.bg_color.slice(1, 3), 16) < 128 ? "dark" : "light"; },
    ready: function () { postEvent("web_app_ready"); },
    expand: function () { postEvent("web_app_expand"); },
    close: function () { postEvent("web_app_close"); },
    onEvent: function (name, fn) { (appHandlers[name] = appHandlers[name] || []).push(fn); },
    offEvent: function (name, fn) { appHandlers[name] = (appHandlers[name] || []).filter(function (f) { return f !== fn; }); },
    openInvoice: function (url, callback) {
      var a = document.createElement("a"), match;
      a.href = url;
      if ((a.protocol !== "http:" && a.protocol !== "https:") || a.hostname !== "t.me" ||
          !(match = a.pathname.match(/^\/(\$|invoice\/)([A-Za-z0-9\-_=]+)$/))) {
        throw Error("WebAppInvoiceUrlInvalid");
      }
      var slug = match[2];
      if (invoices[slug]) throw Error("WebAppInvoiceOpened");
      invoices[slug] = {url: url, callback: callback};
      postEvent("web_app_open_invoice", {slug: slug});
    },
    HapticFeedback: {notificationOccurred: function () {}, impactOccurred: function () {}},
  };

  global.Telegram = global.Telegram || {};
  global.Telegram.WebApp = WebApp;
  global.Telegram.WebView = {postEvent: postEvent, receiveEvent: receiveEvent, initParams: initParams};
  global.Telegram.__sandboxShim = true;
})(window);
