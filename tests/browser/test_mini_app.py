"""The example Mini App in headless Chromium with Telegram's real telegram-web-app.js.

Telegram is played by a TelegramWebviewProxy stub (as Telegram Desktop and the mobile apps
receive events) plus the sandbox, or by the /stars/sandbox/ page (as Telegram Web does,
with the Mini App in an iframe). Each scenario keeps a screenshot under screenshots/.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from flask_stars.sandbox import TEST_USERS
from tests.browser.conftest import TELEGRAM_JS, buy_premium_on_sandbox_page, doc_shot, shot

ANN, IVAN, HANNA = TEST_USERS[0], TEST_USERS[1], TEST_USERS[3]


def _open_invoice_events(page):
    return page.evaluate("window.__tgEvents.filter(e => e[0] === 'web_app_open_invoice').map(e => e[1])")


def _start_purchase(page, pack_id):
    expect(page.locator("#balance")).to_have_attribute("data-coins", re.compile(r"\d+"))
    page.click("#open-shop")
    page.click(f"button.price[data-pack={pack_id}]")
    page.wait_for_function("window.__tgEvents.some(e => e[0] === 'web_app_open_invoice')")
    (event,) = _open_invoice_events(page)
    return event["slug"]


def _close_invoice(page, slug, status):
    page.evaluate(
        "([slug, status]) => Telegram.WebView.receiveEvent('invoice_closed', {slug, status})", [slug, status]
    )


def test_buy_pack_1_credits_a_million_once(mini_app, example):
    page = mini_app(ANN)
    expect(page.locator("#balance")).to_have_text("0")
    slug = _start_purchase(page, "stars_pack_1")
    expect(page.locator("#status")).to_contain_text("Complete the payment")
    attempt = example.tg.pay(slug, ANN)  # the user pays in Telegram: pre-checkout, then the charge
    assert attempt.ok
    _close_invoice(page, slug, "paid")
    expect(page.locator("#status")).to_have_text("Paid! +1,000,000 coins")
    expect(page.locator("#balance")).to_have_attribute("data-coins", "1000000")
    doc_shot(page, "mini-app")
    example.tg.deliver(attempt.payment_update)  # Telegram redelivers: nothing more
    assert example.balance(ANN["id"]) == 1_000_000
    assert len(example.payments()) == 1


def test_buy_pack_2(mini_app, example):
    page = mini_app(ANN)
    slug = _start_purchase(page, "stars_pack_2")
    assert example.tg.pay(slug, ANN).ok
    _close_invoice(page, slug, "paid")
    expect(page.locator("#balance")).to_have_text("5,000,000")
    shot(page, "webview-buy-pack-2")
    assert example.balance(ANN["id"]) == 5_000_000


def test_cancel_credits_nothing_and_says_so(mini_app, example):
    page = mini_app(ANN)
    slug = _start_purchase(page, "stars_pack_1")
    _close_invoice(page, slug, "cancelled")
    expect(page.locator("#status")).to_have_text("Payment cancelled. No Stars were charged.")
    expect(page.locator("#open-shop")).to_be_enabled()
    shot(page, "webview-cancelled")
    assert example.balance(ANN["id"]) == 0 and example.payments() == []


def test_failed_payment_says_so(mini_app, example):
    page = mini_app(ANN)
    slug = _start_purchase(page, "stars_pack_1")
    _close_invoice(page, slug, "failed")
    expect(page.locator("#status")).to_have_text("The payment did not go through. No coins were added.")
    shot(page, "webview-failed")
    assert example.balance(ANN["id"]) == 0


def test_paid_in_the_browser_before_the_webhook_waits_for_the_server(mini_app, example):
    page = mini_app(ANN)
    slug = _start_purchase(page, "stars_pack_1")
    attempt = example.tg.pay(slug, ANN, deliver_payment=False)  # charged; the webhook is late
    _close_invoice(page, slug, "paid")
    expect(page.locator("#status")).to_contain_text("confirming")
    page.wait_for_timeout(800)
    expect(page.locator("#balance")).to_have_text("0")  # the browser's "paid" credited nothing
    shot(page, "webview-confirming")
    example.tg.deliver(attempt.payment_update)
    expect(page.locator("#status")).to_have_text("Paid! +1,000,000 coins")
    expect(page.locator("#balance")).to_have_text("1,000,000")


def test_webhook_that_never_arrives_leaves_it_pending_and_uncredited(mini_app, example):
    page = mini_app(ANN)
    page.evaluate("FlaskStars.configure({confirmTimeout: 1500, pollWait: 1})")
    slug = _start_purchase(page, "stars_pack_1")
    assert example.tg.pay(slug, ANN, deliver_payment=False).ok
    _close_invoice(page, slug, "paid")
    expect(page.locator("#status")).to_contain_text("still processing", timeout=10_000)
    shot(page, "webview-pending")
    assert example.balance(ANN["id"]) == 0 and example.payments() == []


def test_tampered_init_data_shows_a_clear_error(mini_app, example):
    page = mini_app(ANN, tamper=True)
    expect(page.locator("#status")).to_have_text(
        "Could not verify your Telegram session. Close and reopen the app."
    )
    expect(page.locator("#open-shop")).to_be_disabled()
    shot(page, "webview-tampered")
    assert example.tg.calls_to("createInvoiceLink") == []


def test_double_click_opens_one_invoice(mini_app, example):
    page = mini_app(ANN)
    expect(page.locator("#balance")).to_have_text("0")
    page.click("#open-shop")
    # Two clicks in the same tick, plus a direct second call: one invoice, one order.
    page.evaluate(
        """() => { const b = document.querySelector('button.price[data-pack=stars_pack_1]');
                   b.click(); b.click(); FlaskStars.buy('stars_pack_1'); }"""
    )
    page.wait_for_function("window.__tgEvents.some(e => e[0] === 'web_app_open_invoice')")
    page.wait_for_timeout(500)
    assert len(_open_invoice_events(page)) == 1
    assert len(example.tg.calls_to("createInvoiceLink")) == 1


def test_russian_user_sees_russian(mini_app, example):
    page = mini_app(IVAN)
    expect(page.locator("#open-shop")).to_have_text("Купить монеты")
    page.click("#open-shop")
    expect(page.locator(".pack .gives").first).to_have_text("1 000 000 монет")
    shot(page, "webview-russian-shop")


def test_sandbox_page_plays_telegram_web_in_an_iframe(page, example, telegram_web_app_js):
    page.route(
        TELEGRAM_JS, lambda route: route.fulfill(body=telegram_web_app_js, content_type="text/javascript")
    )
    page.set_viewport_size({"width": 1000, "height": 860})
    page.goto(example.base + "/stars/sandbox/")
    app = page.frame_locator("#miniapp")
    expect(app.locator("#balance")).to_have_text("0")
    expect(app.locator("#greeting")).to_have_text("Hi, Ann!")
    app.locator("#open-shop").click()
    app.locator("button.price[data-pack=stars_pack_1]").click()
    expect(page.locator("#pay")).to_have_text("Pay ⭐ 10")
    page.wait_for_timeout(400)  # the sheet's slide-in, then the traffic's next poll
    doc_shot(page, "sandbox")
    page.click("#pay")
    expect(app.locator("#status")).to_have_text("Paid! +1,000,000 coins")
    expect(app.locator("#balance")).to_have_text("1,000,000")
    expect(page.locator("#log")).to_contain_text("successful_payment → HTTP 200")
    shot(page, "sandbox-paid")
    assert example.balance(ANN["id"]) == 1_000_000

    # Switch to the Russian test user: a fresh initData, the Russian page, their own balance.
    page.select_option("#user", str(IVAN["id"]))
    expect(app.locator("#open-shop")).to_have_text("Купить монеты")
    app.locator("#open-shop").click()
    app.locator("button.price[data-pack=stars_pack_2]").click()
    page.click("#pay")
    expect(app.locator("#balance")).to_have_text("5 000 000")
    shot(page, "sandbox-russian-paid")
    assert example.balance(IVAN["id"]) == 5_000_000
    assert example.balance(ANN["id"]) == 1_000_000


def test_sandbox_cancel_and_lost_webhook(page, example, telegram_web_app_js):
    page.route(
        TELEGRAM_JS, lambda route: route.fulfill(body=telegram_web_app_js, content_type="text/javascript")
    )
    page.goto(example.base + "/stars/sandbox/")
    app = page.frame_locator("#miniapp")
    expect(app.locator("#balance")).to_have_text("0")
    app.locator("#open-shop").click()
    app.locator("button.price[data-pack=stars_pack_1]").click()
    page.click("#cancel")
    expect(app.locator("#status")).to_have_text("Payment cancelled. No Stars were charged.")

    app.locator("body").evaluate("() => FlaskStars.configure({confirmTimeout: 1500, pollWait: 1})")
    app.locator("#open-shop").click()
    app.locator("button.price[data-pack=stars_pack_1]").click()
    page.check("#lose")
    page.click("#pay")
    expect(app.locator("#status")).to_contain_text("still processing", timeout=10_000)
    assert example.balance(ANN["id"]) == 0
    # "Lose" was for that payment only: the next one is delivered and credited.
    expect(page.locator("#lose")).not_to_be_checked()
    app.locator("#open-shop").click()
    app.locator("button.price[data-pack=stars_pack_2]").click()
    page.click("#pay")
    expect(app.locator("#balance")).to_have_text("5,000,000")
    assert example.balance(ANN["id"]) == 5_000_000


@pytest.mark.parametrize(
    ("user", "buy", "title", "pay", "total", "balance"),
    [
        (IVAN, "Купить монеты", "Премиум-набор", "Оплатить ⭐ 40", "Итого", "5 000 000"),
        (HANNA, "Münzen kaufen", "Premiumpaket", "Bezahlen ⭐ 40", "Gesamt", "5.000.000"),
    ],
)
def test_the_sandbox_speaks_the_buyers_language(
    page, example, telegram_web_app_js, user, buy, title, pay, total, balance
):
    page.route(
        TELEGRAM_JS, lambda route: route.fulfill(body=telegram_web_app_js, content_type="text/javascript")
    )
    page.goto(example.base + f"/stars/sandbox/?user={user['id']}")
    app = page.frame_locator("#miniapp")
    expect(app.locator("#open-shop")).to_have_text(buy)
    app.locator("#open-shop").click()
    expect(app.locator(".pack .name").nth(1)).to_have_text(title)
    app.locator("button.price[data-pack=stars_pack_2]").click()
    expect(page.locator("#sheet-title")).to_have_text(title)
    expect(page.locator("#pay")).to_have_text(pay)
    expect(page.locator("#sheet-total")).to_have_text(total)
    page.click("#pay")
    expect(app.locator("#balance")).to_have_text(balance)
    link = example.tg.calls_to("createInvoiceLink")[-1]
    assert link["title"] == title
    # The traffic is listed in the order it happened: the link before the sheet closed.
    expect(page.locator("#log")).to_contain_text("successful_payment → HTTP 200")
    entries = page.locator("#log li").all_inner_texts()
    made = next(i for i, e in enumerate(entries) if "createInvoiceLink" in e)
    closed = next(i for i, e in enumerate(entries) if "invoice_closed" in e)
    assert made < closed, entries


def test_sandbox_works_offline_with_its_stand_in_script(page, example):
    page.route(TELEGRAM_JS, lambda route: route.abort())  # no network to telegram.org
    page.goto(example.base + "/stars/sandbox/")
    app = page.frame_locator("#miniapp")
    expect(app.locator("#balance")).to_have_text("0")
    assert app.locator("body").evaluate("() => window.Telegram.__sandboxShim === true")
    app.locator("#open-shop").click()
    app.locator("button.price[data-pack=stars_pack_2]").click()
    page.click("#pay")
    expect(app.locator("#balance")).to_have_text("5,000,000")
    shot(page, "sandbox-offline-shim")
    assert example.balance(ANN["id"]) == 5_000_000


def test_sandbox_page_refunds_a_payment_and_the_balance_goes_back(page, example, telegram_web_app_js):
    buy_premium_on_sandbox_page(page, example, telegram_web_app_js)
    page.locator("#payments button.refund").click()
    expect(page.locator("#payments")).to_contain_text("refunded")
    expect(page.frame_locator("#miniapp").locator("#balance")).to_have_text("0")
    shot(page, "sandbox-refunded")
    assert example.balance(ANN["id"]) == 0
    assert [p.status for p in example.payments()] == ["refunded"]
