"""stars.js finds the blueprint from every URL the blueprint serves it at, under any prefix.

A page may load it as ``url_for('stars.stars_js')`` (``<prefix>/stars.js``) or the Flask
way for static files, ``url_for('stars.static', filename='stars.js')``
(``<prefix>/static/stars.js``); either way a purchase goes to ``<prefix>/invoice``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask, render_template_string, url_for

from flask_stars import stars_bp
from flask_stars.initdata import sign_init_data
from flask_stars.sandbox import TEST_USERS, WEB_APP_VERSION, Sandbox
from flask_stars.testing import TEST_TOKEN, connect, serve
from tests.browser.conftest import TELEGRAM_JS, WEBVIEW_PROXY
from tests.support.hostapp import PACKS

PAGE = """<!doctype html>
<html><head>
<script src="https://telegram.org/js/telegram-web-app.js"></script>
<script src="{{ stars_js }}"></script>
</head><body>
<script>
  window.__result = null;
  window.buyNow = function () {
    FlaskStars.buy("stars_pack_1").then(
      function (result) { window.__result = {status: result.status}; },
      function (error) { window.__result = {error: error.code}; }
    );
  };
</script>
</body></html>"""


class JsShop:
    """A host app with stars_bp at ``prefix`` and a page loading stars.js from a chosen URL."""

    def __init__(self, base: str, prefix: str, sandbox: Sandbox, credits: list[str]) -> None:
        self.base = base
        self.prefix = prefix
        self.tg = sandbox
        self.credits = credits


@pytest.fixture(params=["/stars", "/shop/pay"])
def js_shop(request: Any, database_url: str, sandbox: Sandbox) -> Iterator[JsShop]:
    prefix: str = request.param
    credits: list[str] = []

    def credit(payment: Any) -> None:
        credits.append(payment.telegram_payment_charge_id)

    app = Flask(__name__)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=database_url,
        STARS_BOT_TOKEN=TEST_TOKEN,
        STARS_PACKS=PACKS,
        STARS_CREDIT_CALLBACK=credit,
        STARS_API_URL=sandbox.url,
        STARS_API_TIMEOUT=5,
    )
    app.register_blueprint(stars_bp, url_prefix=prefix)

    @app.get("/page/<how>")
    def page(how: str) -> str:
        static = how == "static"
        src = url_for("stars.static", filename="stars.js") if static else url_for("stars.stars_js")
        return render_template_string(PAGE, stars_js=src)

    with serve(app) as base:
        connect(app, sandbox, base)
        yield JsShop(base, prefix, sandbox, credits)
    with app.app_context():
        app.extensions["stars"].database.engine.dispose()


@pytest.mark.parametrize(("how", "script_path"), [("static", "/static/stars.js"), ("route", "/stars.js")])
def test_stars_js_buys_from_every_url_the_blueprint_serves_it_at(
    page: Any, js_shop: JsShop, telegram_web_app_js: str, how: str, script_path: str
) -> None:
    user = TEST_USERS[0]
    page.add_init_script(WEBVIEW_PROXY)
    page.route(
        TELEGRAM_JS, lambda route: route.fulfill(body=telegram_web_app_js, content_type="text/javascript")
    )
    init_data = sign_init_data(TEST_TOKEN, user)
    with page.expect_response(lambda r: r.url.endswith(script_path)) as script:
        page.goto(
            f"{js_shop.base}/page/{how}#tgWebAppData={quote(init_data, safe='')}"
            f"&tgWebAppVersion={WEB_APP_VERSION}&tgWebAppPlatform=tdesktop"
        )
    assert script.value.url == js_shop.base + js_shop.prefix + script_path
    assert script.value.status == 200
    assert page.evaluate("FlaskStars.baseUrl") == js_shop.base + js_shop.prefix

    with page.expect_response(lambda r: r.request.method == "POST") as invoice:
        page.evaluate("window.buyNow()")
    assert invoice.value.url == js_shop.base + js_shop.prefix + "/invoice"
    assert invoice.value.status == 201
    page.wait_for_function("window.__tgEvents.some(e => e[0] === 'web_app_open_invoice')")
    slug = page.evaluate("window.__tgEvents.find(e => e[0] === 'web_app_open_invoice')[1].slug")
    attempt = js_shop.tg.pay(slug, user)
    assert attempt.ok
    page.evaluate("(slug) => Telegram.WebView.receiveEvent('invoice_closed', {slug, status: 'paid'})", slug)
    page.wait_for_function("window.__result !== null")
    assert page.evaluate("window.__result") == {"status": "paid"}
    assert js_shop.credits == [attempt.charge_id]
