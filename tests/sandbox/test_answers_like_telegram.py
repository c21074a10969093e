"""The sandbox answers like Telegram's Bot API server, so tests against it mean something."""

from __future__ import annotations

import json

import pytest
import requests

from flask_stars.sandbox import Sandbox
from flask_stars.testing import TEST_TOKEN


def _call(tg, method, token=TEST_TOKEN, **params):
    return requests.post(f"{tg.url}/bot{token}/{method}", params=params, timeout=5).json()


GOOD = {
    "title": "T",
    "description": "D",
    "payload": "p",
    "currency": "XTR",
    "prices": json.dumps([{"label": "x", "amount": 10}]),
}


def test_valid_stars_invoice_link(sandbox):
    body = _call(sandbox, "createInvoiceLink", **GOOD)
    assert body["ok"] and body["result"].startswith("https://t.me/$")
    assert sandbox.invoice(body["result"]).amount == 10


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (
            {"prices": json.dumps([{"label": "a", "amount": 5}, {"label": "b", "amount": 5}])},
            "STARS_INVOICE_INVALID",
        ),
        ({"provider_token": "284685063:TEST:abc"}, "STARS_INVOICE_INVALID"),
        ({"max_tip_amount": "5"}, "STARS_INVOICE_INVALID"),
        ({"prices": json.dumps([{"label": "", "amount": 5}])}, "label must be non-empty"),
        ({"prices": "[]"}, "at least one price"),
        ({"prices": "nope"}, "can't parse prices"),
        ({"payload": "x" * 129}, "payload"),
        ({"title": "x" * 33}, "title"),
        ({"subscription_period": "86400"}, "SUBSCRIPTION_PERIOD_INVALID"),
        ({"currency": "USD"}, "PAYMENT_PROVIDER_INVALID"),
    ],
)
def test_invalid_invoices_are_refused_as_telegram_does(sandbox, change, words):
    body = _call(sandbox, "createInvoiceLink", **{**GOOD, **change})
    assert body["ok"] is False and body["error_code"] == 400
    assert words in body["description"]


def test_other_bots_token_is_unauthorized(sandbox):
    body = _call(sandbox, "getMe", token="1:other")
    assert body == {"ok": False, "error_code": 401, "description": "Unauthorized"}


def test_answer_needs_error_message_when_not_ok(sandbox):
    body = _call(sandbox, "answerPreCheckoutQuery", pre_checkout_query_id="1", ok="False")
    assert body["ok"] is False and "error_message" in body["description"]


def test_fail_with_retry_after_shape(sandbox):
    sandbox.fail("getMe", 429, "Too Many Requests: retry after 3", retry_after=3)
    body = _call(sandbox, "getMe")
    assert body["parameters"] == {"retry_after": 3}
    assert _call(sandbox, "getMe")["ok"] is True  # only once


def test_subscription_pack_link_carries_the_30_day_period(make_shop):
    shop = make_shop(
        STARS_PACKS=[{"id": "monthly", "stars": 250, "title": "Monthly", "credits": 1, "subscription": True}]
    )
    assert shop.invoice(42, "monthly").status_code == 201
    (call,) = shop.tg.calls_to("createInvoiceLink")
    assert call["subscription_period"] == "2592000"
    assert json.loads(call["prices"]) == [{"label": "Monthly", "amount": 250}]


def test_sandbox_without_token_accepts_any_bot():
    with Sandbox() as tg:
        assert _call(tg, "getMe", token="5:any")["result"]["id"] == 5
