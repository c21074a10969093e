// The example shop's Mini App. The same code runs in Telegram and in the sandbox.
(function () {
  "use strict";
  var tg = window.Telegram && window.Telegram.WebApp;
  var user = (tg && tg.initDataUnsafe && tg.initDataUnsafe.user) || {};
  var asked = String(user.language_code || navigator.language || "en").slice(0, 2).toLowerCase();
  var lang = {ru: "ru", de: "de"}[asked] || "en";
  var numbers = new Intl.NumberFormat({ru: "ru-RU", de: "de-DE", en: "en-US"}[lang]);

  var TEXT = {
    en: {
      title: "Coin Shop", balance: "Your balance", coins: "coins", buy: "Buy coins", choose: "Choose a pack",
      fineprint: "Paid with Telegram Stars. Coins arrive as soon as Telegram confirms the payment.",
      hello: "Hi, {name}!", gives: "{coins} coins",
      creating: "Preparing your invoice…", invoice_open: "Complete the payment in Telegram…",
      confirming: "Payment received by Telegram, confirming…",
      paid: "Paid! +{coins} coins", cancelled: "Payment cancelled. No Stars were charged.",
      failed: "The payment did not go through. No coins were added.",
      pending: "Telegram is still processing the payment. Your coins will appear here once it is confirmed.",
      invalid_init_data: "Could not verify your Telegram session. Close and reopen the app.",
      init_data_expired: "Your session has expired. Close and reopen the app.",
      no_telegram: "Open this page from Telegram.",
      error: "Something went wrong: {message}",
    },
    ru: {
      title: "Магазин монет", balance: "Ваш баланс", coins: "монет", buy: "Купить монеты", choose: "Выберите пакет",
      fineprint: "Оплата звёздами Telegram. Монеты зачисляются, как только Telegram подтвердит платёж.",
      hello: "Привет, {name}!", gives: "{coins} монет",
      creating: "Готовим счёт…", invoice_open: "Завершите оплату в Telegram…",
      confirming: "Telegram принял платёж, подтверждаем…",
      paid: "Оплачено! +{coins} монет", cancelled: "Оплата отменена. Звёзды не списаны.",
      failed: "Платёж не прошёл. Монеты не начислены.",
      pending: "Telegram ещё обрабатывает платёж. Монеты появятся здесь после подтверждения.",
      invalid_init_data: "Не удалось проверить сессию Telegram. Закройте и откройте приложение снова.",
      init_data_expired: "Сессия устарела. Закройте и откройте приложение снова.",
      no_telegram: "Откройте эту страницу из Telegram.",
      error: "Что-то пошло не так: {message}",
    },
    de: {
      title: "Münzshop", balance: "Dein Guthaben", coins: "Münzen", buy: "Münzen kaufen", choose: "Wähle ein Paket",
      fineprint: "Bezahlt mit Telegram Stars. Die Münzen kommen, sobald Telegram die Zahlung bestätigt.",
      hello: "Hallo, {name}!", gives: "{coins} Münzen",
      creating: "Rechnung wird vorbereitet…", invoice_open: "Schließe die Zahlung in Telegram ab…",
      confirming: "Telegram hat die Zahlung erhalten, wird bestätigt…",
      paid: "Bezahlt! +{coins} Münzen", cancelled: "Zahlung abgebrochen. Es wurden keine Stars abgebucht.",
      failed: "Die Zahlung ist nicht durchgegangen. Es wurden keine Münzen gutgeschrieben.",
      pending: "Telegram bearbeitet die Zahlung noch. Deine Münzen erscheinen hier, sobald sie bestätigt ist.",
      invalid_init_data: "Deine Telegram-Sitzung ließ sich nicht prüfen. Schließe die App und öffne sie erneut.",
      init_data_expired: "Deine Sitzung ist abgelaufen. Schließe die App und öffne sie erneut.",
      no_telegram: "Öffne diese Seite aus Telegram.",
      error: "Etwas ist schiefgelaufen: {message}",
    },
  }[lang];

  function t(key, values) {
    var text = TEXT[key] || key;
    for (var name in values || {}) text = text.replace("{" + name + "}", values[name]);
    return text;
  }

  var $ = function (id) { return document.getElementById(id); };
  var packsById = {};

  document.documentElement.lang = lang;
  document.querySelectorAll("[data-t]").forEach(function (el) { el.textContent = t(el.getAttribute("data-t")); });
  document.title = t("title");

  function showStatus(kind, text) {
    var box = $("status");
    box.hidden = false;
    box.className = "status " + kind;
    box.textContent = text;
  }

  function setBalance(coins, animate) {
    var el = $("balance");
    el.textContent = numbers.format(coins);
    el.setAttribute("data-coins", String(coins));
    if (animate) {
      el.parentNode.classList.remove("bump");
      void el.parentNode.offsetWidth;
      el.parentNode.classList.add("bump");
    }
  }

  function errorText(error) {
    return TEXT[error.code] ? t(error.code) : t("error", {message: error.message});
  }

  function loadMe() {
    if (!tg || !tg.initData) return Promise.reject(FlaskStars.StarsError("no_telegram", "No Telegram"));
    return fetch("/api/me", {headers: {Authorization: "tma " + tg.initData}}).then(function (r) {
      return r.json().then(function (body) {
        if (!r.ok) throw FlaskStars.StarsError(body.error, body.message, r.status);
        return body;
      });
    });
  }

  function refresh(animate) {
    return loadMe().then(function (me) {
      $("greeting").textContent = t("hello", {name: me.first_name || user.first_name || ""});
      setBalance(me.coins, animate);
      return me;
    });
  }

  function setBusy(busy) {
    $("open-shop").disabled = busy;
    document.querySelectorAll(".pack .price").forEach(function (b) { b.disabled = busy; });
  }

  function buy(packId) {
    var pack = packsById[packId];
    closeShop();
    setBusy(true);
    FlaskStars.buy(packId, {
      onStatus: function (status) {
        if (status === "creating" || status === "invoice_open" || status === "confirming") showStatus("wait", t(status));
      },
    }).then(function (result) {
      if (result.status === "paid") {
        showStatus("ok", t("paid", {coins: numbers.format(pack.credits)}));
        if (tg.HapticFeedback) tg.HapticFeedback.notificationOccurred("success");
        return refresh(true);
      }
      showStatus(result.status === "pending" ? "wait" : "bad", t(result.status));
    }).catch(function (error) {
      showStatus("bad", errorText(error));
    }).then(function () { setBusy(false); });
  }

  function renderPacks(packs) {
    var list = $("packs");
    list.innerHTML = "";
    packs.forEach(function (pack) {
      packsById[pack.id] = pack;
      var li = document.createElement("li");
      li.className = "pack";
      li.innerHTML = '<span class="coin">🪙</span><div class="info"><div class="name"></div><div class="gives"></div></div>' +
                     '<button class="price"></button>';
      li.querySelector(".name").textContent = pack.title;
      li.querySelector(".gives").textContent = t("gives", {coins: numbers.format(pack.credits)});
      var button = li.querySelector(".price");
      button.textContent = "⭐ " + pack.stars;
      button.setAttribute("data-pack", pack.id);
      button.addEventListener("click", function () { buy(pack.id); });
      list.appendChild(li);
    });
  }

  function openShop() { $("shop").hidden = false; }
  function closeShop() { $("shop").hidden = true; }

  $("open-shop").addEventListener("click", openShop);
  $("close-shop").addEventListener("click", closeShop);
  $("shop").addEventListener("click", function (e) { if (e.target === $("shop")) closeShop(); });

  if (tg) { tg.ready(); tg.expand(); }
  FlaskStars.packs().then(renderPacks).catch(function (error) { showStatus("bad", errorText(error)); });
  refresh(false).catch(function (error) {
    setBusy(true);
    showStatus("bad", errorText(error));
  });
})();
