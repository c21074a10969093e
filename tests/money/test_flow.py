"""The whole purchase, as a user makes it: Mini App path and chat path, over real HTTP."""

from __future__ import annotations

import json

import pytest

from flask_stars.models import payload_for


def test_packs_lists_the_catalogue(shop):
    body = shop.http.get(shop.url("/packs")).json()
    assert [p["id"] for p in body["packs"]] == ["stars_pack_1", "stars_pack_2"]
    first = body["packs"][0]
    assert first == {
        "id": "stars_pack_1",
        "title": "Starter pack",
        "description": "Starter pack",
        "stars": 10,
        "credits": 1_000_000,
        "subscription": False,
    }


def test_invoice_makes_a_stars_link_with_whole_star_amount(shop):
    resp = shop.invoice(42, "stars_pack_1")
    assert resp.status_code == 201
    body = resp.json()
    assert body["invoice_url"].startswith("https://t.me/$")
    assert body["status"] == "pending"
    assert body["pack"]["id"] == "stars_pack_1"
    assert body["expires_at"].endswith("Z")

    (call,) = shop.tg.calls_to("createInvoiceLink")
    assert call["currency"] == "XTR"
    assert json.loads(call["prices"]) == [{"label": "Starter pack", "amount": 10}]  # 10 Stars, not 1000
    assert "provider_token" not in call or call["provider_token"] == ""
    assert call["payload"] == payload_for(body["order_id"])
    assert len(call["payload"].encode()) <= 128
    assert "subscription_period" not in call
    assert call["title"] == "Starter pack" and call["description"] == "Starter pack"


def test_forty_star_pack_is_amount_forty(shop):
    shop.invoice(42, "stars_pack_2")
    (call,) = shop.tg.calls_to("createInvoiceLink")
    assert json.loads(call["prices"])[0]["amount"] == 40


def test_repeat_click_returns_same_pending_order_without_telegram(shop):
    first = shop.invoice(42)
    second = shop.invoice(42)
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json()["order_id"] == first.json()["order_id"]
    assert second.json()["invoice_url"] == first.json()["invoice_url"]
    assert len(shop.tg.calls_to("createInvoiceLink")) == 1
    # Another pack, or another user, is another order.
    assert shop.invoice(42, "stars_pack_2").json()["order_id"] != first.json()["order_id"]
    assert shop.invoice(43).json()["order_id"] != first.json()["order_id"]
    assert len(shop.tg.calls_to("createInvoiceLink")) == 3


def test_mini_app_purchase_credits_once_and_order_shows_paid(shop):
    order_id, attempt = shop.buy(42, "stars_pack_1")
    assert attempt.ok, attempt.error_message
    assert attempt.payment.status == 200
    assert attempt.payment.body["detail"] == "credited"
    assert shop.balance(42) == 1_000_000

    (answer,) = shop.tg.calls_to("answerPreCheckoutQuery")
    assert answer["ok"] == "True" and answer["pre_checkout_query_id"] == attempt.query_id

    status = shop.order_status(order_id, 42).json()
    assert status["status"] == "paid" and status["paid_at"].endswith("Z")
    assert status["stars"] == 10 and status["pack_id"] == "stars_pack_1"

    (payment,) = shop.payments()
    assert payment.telegram_payment_charge_id == attempt.charge_id
    assert (payment.user_id, payment.payer_id, payment.stars, payment.currency) == (42, 42, 10, "XTR")
    assert payment.credited and payment.problem is None and payment.order_id == order_id

    # After payment, the next click is a new order.
    assert shop.invoice(42).json()["order_id"] != order_id


def test_two_packs_add_up(shop):
    shop.buy(42, "stars_pack_1")
    shop.buy(42, "stars_pack_2")
    assert shop.balance(42) == 6_000_000
    assert len(shop.credit_log.credits) == 2


def test_every_payment_update_is_in_the_raw_log_and_an_approval_in_its_hold(shop):
    _, attempt = shop.buy(42)
    # The approved pre-checkout needs no log row: the order's hold named its query.
    assert [u.kind for u in shop.updates()] == ["successful_payment"]
    (logged,) = shop.updates(kind="successful_payment")
    assert json.loads(logged.body) == attempt.payment_update
    assert logged.processed and logged.error is None and logged.attempts == 1


def test_a_refused_pre_checkout_is_in_the_raw_log_with_its_reason(shop):
    order = shop.invoice(42).json()
    refused = shop.tg.pay(order["invoice_url"], 43, deliver_payment=False)  # not the owner
    assert not refused.ok
    (logged,) = shop.updates(kind="pre_checkout_query")
    assert logged.processed and logged.error == "not_owner"


@pytest.mark.parametrize("mount", ["blueprint", "extension"])
def test_chat_buy_command_sends_stars_invoice_and_credits(make_shop, mount):
    shop = make_shop(mount=mount)
    resp = shop.tg.send_text(7, "/buy_stars")
    assert resp.status == 200
    offer = shop.tg.calls_to("sendMessage")[-1]
    buttons = json.loads(offer["reply_markup"])["inline_keyboard"]
    assert [row[0]["callback_data"] for row in buttons] == [
        "stars:buy:stars_pack_1",
        "stars:buy:stars_pack_2",
    ]

    shop.tg.press_button(7, "stars:buy:stars_pack_2")
    (sent,) = shop.tg.calls_to("sendInvoice")
    assert sent["chat_id"] == "7" and sent["currency"] == "XTR"
    assert json.loads(sent["prices"]) == [{"label": "Premium pack", "amount": 40}]
    assert "provider_token" not in sent or sent["provider_token"] == ""

    attempt = shop.tg.pay(shop.tg.last_invoice(chat_id=7), 7)
    assert attempt.ok and attempt.payment.body["detail"] == "credited"
    assert shop.balance(7) == 5_000_000
    (payment,) = shop.payments()
    assert payment.pack_id == "stars_pack_2" and payment.user_id == 7


def test_chat_command_with_pack_argument_and_custom_name(make_shop):
    shop = make_shop(STARS_BUY_COMMAND="shop")
    shop.tg.send_text(8, "/buy_stars stars_pack_1")
    assert shop.tg.calls_to("sendInvoice") == []  # the default name is off now
    shop.tg.send_text(8, "/shop stars_pack_1")
    (sent,) = shop.tg.calls_to("sendInvoice")
    assert json.loads(sent["prices"])[0]["amount"] == 10
    shop.tg.send_text(8, "/shop nope")
    assert "no such pack" in shop.tg.calls_to("sendMessage")[-1]["text"].lower()


def test_chat_and_mini_app_share_the_pending_order(shop):
    order_id = shop.invoice(9).json()["order_id"]
    shop.tg.send_text(9, "/buy_stars stars_pack_1")
    (sent,) = shop.tg.calls_to("sendInvoice")
    assert sent["payload"] == payload_for(order_id)
    shop.tg.pay(shop.tg.last_invoice(chat_id=9), 9)
    assert shop.balance(9) == 1_000_000
    assert shop.order_status(order_id, 9).json()["status"] == "paid"


def test_openapi_documents_every_endpoint(shop):
    spec = shop.http.get(shop.url("/openapi.json")).json()
    assert spec["openapi"].startswith("3.")
    assert set(spec["paths"]) == {
        "/stars/packs",
        "/stars/invoice",
        "/stars/orders/{order_id}",
        "/stars/webhook",
        "/stars/openapi.json",
        "/stars/subscriptions",
        "/stars/subscriptions/{subscription_id}/{action}",
    }
    invoice = spec["paths"]["/stars/invoice"]["post"]
    assert {"200", "201", "400", "401", "404", "502", "503"} <= set(invoice["responses"])
    assert "pack_id" in spec["components"]["schemas"]["InvoiceRequest"]["properties"]
    assert spec["components"]["schemas"]["InvoiceRequest"]["required"] == ["pack_id"]
    assert "Order" in spec["components"]["schemas"]


def test_concurrent_clicks_make_one_pending_order(shop):
    from concurrent.futures import ThreadPoolExecutor

    from flask_stars.models import Order

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(lambda _: shop.invoice(42), range(16)))
    assert all(r.status_code in (200, 201) for r in responses), [r.text for r in responses]
    assert len({r.json()["order_id"] for r in responses}) == 1
    assert len({r.json()["invoice_url"] for r in responses}) == 1
    assert len(shop.rows(Order, status="pending")) == 1
    assert [r.status_code for r in responses].count(201) == 1


def test_sandbox_pages_do_not_exist_without_an_attached_sandbox(shop):
    for path in ("/sandbox/", "/sandbox/telegram-web-app.js", "/sandbox/init-data?user=1", "/sandbox/log"):
        assert shop.http.get(shop.url(path)).status_code == 404
    assert shop.http.post(shop.url("/sandbox/pay"), json={"slug": "x", "user_id": 1}).status_code == 404


def test_stars_js_is_served(shop):
    resp = shop.http.get(shop.url("/stars.js"))
    assert resp.status_code == 200
    assert "javascript" in resp.headers["Content-Type"]
    assert "FlaskStars" in resp.text
