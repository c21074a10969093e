"""When Telegram's Bot API fails: clean JSON errors, Retry-After kept, no half-made orders."""

from __future__ import annotations

import pytest

from flask_stars.models import Order


def test_429_with_retry_after_is_503_with_retry_after(shop):
    shop.tg.fail("createInvoiceLink", 429, "Too Many Requests: retry after 7", retry_after=7)
    resp = shop.invoice(42)
    assert resp.status_code == 503
    assert resp.headers["Retry-After"] == "7"
    assert resp.json()["error"] == "bot_api_unavailable"


@pytest.mark.parametrize("code", [500, 502, 400])
def test_bot_api_error_is_502(shop, code):
    shop.tg.fail("createInvoiceLink", code, "Internal Server Error")
    resp = shop.invoice(42)
    assert resp.status_code == 502
    assert resp.json()["error"] == "bot_api_error"
    assert "Retry-After" not in resp.headers


def test_timeout_is_502_and_says_so(make_shop):
    shop = make_shop(STARS_API_TIMEOUT=0.5)
    shop.tg.delay("createInvoiceLink", 1.5)
    resp = shop.invoice(42)
    assert resp.status_code == 502
    assert resp.json()["error"] == "bot_api_timeout"


def test_failed_order_is_never_reused_and_the_retry_works(shop):
    shop.tg.fail("createInvoiceLink", 500)
    assert shop.invoice(42).status_code == 502
    (failed,) = shop.rows(Order)
    assert failed.status == "failed" and failed.invoice_url is None

    retry = shop.invoice(42)
    assert retry.status_code == 201
    assert retry.json()["order_id"] != failed.id
    statuses = sorted(o.status for o in shop.rows(Order))
    assert statuses == ["failed", "pending"]
    # The failed order cannot be paid: pre-checkout refuses it.
    inv = shop.tg.invoice(retry.json()["invoice_url"])
    inv.payload = f"order:{failed.id}"
    assert not shop.tg.pay(inv, 42).ok


def test_unreachable_bot_api_is_502(make_shop):
    shop = make_shop(STARS_API_URL="http://127.0.0.1:9", STARS_API_TIMEOUT=1)
    resp = shop.invoice(42)
    assert resp.status_code == 502 and resp.json()["error"] == "bot_api_error"


def test_pre_checkout_answer_failure_asks_for_redelivery(shop):
    order = shop.invoice(42).json()
    shop.tg.fail("answerPreCheckoutQuery", 502, "Bad Gateway")
    attempt = shop.tg.pay(order["invoice_url"], 42, retries=1, answer_timeout=3)
    assert attempt.pre_checkout.status == 200  # the redelivery was answered
    assert [d.status for d in shop.tg.deliveries[:2]] == [500, 200]
    assert attempt.ok and shop.balance(42) == 1_000_000
