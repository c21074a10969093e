"""Anything that passes the webhook secret is stored or kept, and answered 200: never a 500
that Telegram redelivers forever.

A payment or subscription update whose values no column can hold (a lone surrogate, a NUL,
an integer beyond 64 bits, an amount beyond 32 bits, an update id out of range) is kept in
``stars_updates`` once, unprocessed, with an error that says why; it credits nothing, its
redelivery is answered 200 too, and the next good payment credits once. A failing credit
callback still answers 500 (Telegram redelivers, as documented).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from flask_stars import models, schemas
from flask_stars.models import RefundNotice
from flask_stars.state import get_state
from flask_stars.updates import handle_update
from tests.support import hostapp
from tests.support.shop import Shop

SURROGATE = "\udc80"  # a lone surrogate: JSON "\udc80", valid JSON, not UTF-8
NUL = "\x00"  # JSON "\u0000": PostgreSQL stores no NUL in text

Change = Callable[[dict[str, Any]], None]


def _charge_update(shop: Shop, kind: str = "successful_payment", user_id: int = 42) -> dict[str, Any]:
    """A real payment of a real order, not delivered yet (as ``kind``: a refund has its shape)."""
    order = shop.invoice(user_id).json()
    attempt = shop.tg.pay(order["invoice_url"], user_id, deliver_payment=False)
    update = copy.deepcopy(attempt.payment_update)
    if kind == "refunded_payment":
        update["message"]["refunded_payment"] = update["message"].pop("successful_payment")
    return update


def _charge(field: str, value: Any) -> Change:
    def change(update: dict[str, Any]) -> None:
        message = update["message"]
        charge = message.get("successful_payment") or message["refunded_payment"]
        if field == "from.id":
            message["from"]["id"] = value
        elif field == "chat.id":
            message["chat"]["id"] = value
        elif field == "update_id":
            update["update_id"] = value
        else:
            charge[field] = value

    return change


def _post_twice(shop: Shop, body: Any) -> list[dict[str, Any]]:
    """Telegram's delivery and a redelivery: both answered 200."""
    answers = []
    for _ in range(2):
        resp = shop.post_webhook(body)
        assert resp.status_code == 200, resp.text
        answers.append(resp.json())
    return answers


def _assert_a_good_payment_credits_once(shop: Shop, user_id: int = 77) -> None:
    before = shop.balance(user_id)
    _order_id, attempt = shop.buy(user_id)
    assert attempt.ok and attempt.payment.body["detail"] == "credited"
    assert shop.tg.deliver(attempt.payment_update).body["detail"] == "duplicate update"
    assert shop.balance(user_id) == before + 1_000_000
    assert len(shop.payments(user_id=user_id)) == 1


CHARGE_CASES: dict[str, tuple[Change, str]] = {
    "payload with a lone surrogate": (_charge("invoice_payload", "order:" + SURROGATE), "lone surrogate"),
    "charge id with a lone surrogate": (
        _charge("telegram_payment_charge_id", "stx" + SURROGATE),
        "lone surrogate",
    ),
    "provider charge id with a lone surrogate": (
        _charge("provider_payment_charge_id", SURROGATE),
        "lone surrogate",
    ),
    "currency with a lone surrogate": (_charge("currency", SURROGATE), "lone surrogate"),
    "payload with a NUL": (_charge("invoice_payload", "order:x" + NUL), "NUL"),
    "charge id with a NUL": (_charge("telegram_payment_charge_id", "stx" + NUL), "NUL"),
    "amount beyond 32 bits": (_charge("total_amount", 2**31), "total_amount"),
    "amount beyond 64 bits": (_charge("total_amount", 2**64), "total_amount"),
    "amount as a string": (_charge("total_amount", "10"), "total_amount"),
    "payer id beyond 64 bits": (_charge("from.id", 2**63), "'from': {'id'"),
    "payer id far beyond 64 bits": (_charge("from.id", 2**70), "'from': {'id'"),
    "chat id beyond 64 bits": (_charge("chat.id", 2**64), "'chat': {'id'"),
    "update id beyond 64 bits": (_charge("update_id", 2**63), "update_id"),
    "update id far beyond 64 bits": (_charge("update_id", 10**30), "update_id"),
    "negative update id": (_charge("update_id", -5), "update_id"),
}


@pytest.mark.parametrize("kind", ["successful_payment", "refunded_payment"])
@pytest.mark.parametrize("case", list(CHARGE_CASES))
def test_an_unstorable_payment_update_is_kept_once_and_answered_200(shop: Shop, case: str, kind: str) -> None:
    change, why = CHARGE_CASES[case]
    update = _charge_update(shop, kind)
    change(update)

    answers = _post_twice(shop, update)

    assert [a["detail"] for a in answers] == ["malformed: kept for replay"] * 2
    (row,) = shop.updates()
    assert row.kind == kind and not row.processed and row.attempts == 2
    assert "malformed" in row.error and why in row.error
    # The body is kept as JSON that still reads as the update that arrived.
    assert json.loads(row.body) == update
    assert row.update_id == (update["update_id"] if 0 <= update["update_id"] < 2**63 else None)
    assert shop.payments() == [] and shop.rows(RefundNotice) == []
    assert shop.credit_log.credits == []
    _assert_a_good_payment_credits_once(shop)


def test_a_lone_surrogate_sent_as_raw_utf8_bytes_is_kept_escaped(shop: Shop) -> None:
    """The surrogate as bytes (ED B2 80), which Python's json reads as "\\udc80" too: the
    stored body holds its escape, and a replay reads the same surrogate (still refused)."""
    update = _charge_update(shop)
    update["message"]["successful_payment"]["invoice_payload"] = "order:" + SURROGATE
    raw = json.dumps(update, ensure_ascii=False).encode("utf-8", "surrogatepass")
    assert b"\xed\xb2\x80" in raw

    answers = _post_twice(shop, raw)

    assert [a["detail"] for a in answers] == ["malformed: kept for replay"] * 2
    (row,) = shop.updates()
    assert "\\udc80" in row.body and json.loads(row.body) == update
    assert "lone surrogate" in row.error and not row.processed
    shop.app.test_cli_runner().invoke(args=["stars", "replay", "--failed"])
    (row,) = shop.updates()
    assert not row.processed and row.attempts == 3 and shop.payments() == []
    _assert_a_good_payment_credits_once(shop)


def test_odd_text_outside_the_ledger_s_columns_does_not_stop_a_payment(shop: Shop) -> None:
    """A surrogate or NUL in a field no column holds (the payer's name): the payment is
    credited once, its raw message stored as JSON escapes."""
    update = _charge_update(shop)
    update["message"]["from"]["first_name"] = "Ann" + SURROGATE + NUL

    answers = _post_twice(shop, update)

    assert [a["detail"] for a in answers] == ["credited", "duplicate update"]
    assert shop.balance(42) == 1_000_000
    (payment,) = shop.payments()
    assert payment.raw["from"]["first_name"] == "Ann" + SURROGATE + NUL
    (row,) = shop.updates()
    assert row.processed and row.error is None and json.loads(row.body) == update


SUBSCRIPTION_CASES: dict[str, tuple[dict[str, Any], str]] = {
    "user id beyond 64 bits": (
        {"user": {"id": 2**63}, "invoice_payload": "order:x", "state": "canceled"},
        "id",
    ),
    "user id far beyond 64 bits": (
        {"user": {"id": 10**25}, "invoice_payload": "order:x", "state": "canceled"},
        "id",
    ),
    "user id as a string": ({"user": {"id": "42"}, "invoice_payload": "order:x", "state": "canceled"}, "id"),
    "payload with a NUL": (
        {"user": {"id": 42}, "invoice_payload": "order:x" + NUL, "state": "canceled"},
        "NUL",
    ),
    "payload with a lone surrogate": (
        {"user": {"id": 42}, "invoice_payload": "order:" + SURROGATE, "state": "canceled"},
        "lone surrogate",
    ),
    "state with a NUL": (
        {"user": {"id": 42}, "invoice_payload": "order:x", "state": "canceled" + NUL},
        "NUL",
    ),
    "no user": ({"invoice_payload": "order:x", "state": "canceled"}, "user"),
}


@pytest.mark.parametrize("case", list(SUBSCRIPTION_CASES))
def test_an_unstorable_subscription_update_is_kept_once_and_answered_200(shop: Shop, case: str) -> None:
    subscription, why = SUBSCRIPTION_CASES[case]
    update = {"update_id": 5551, "subscription": subscription}

    answers = _post_twice(shop, update)

    assert [(a["result"], a["detail"]) for a in answers] == [
        ("subscription", "malformed: kept for replay")
    ] * 2
    (row,) = shop.updates()
    assert row.kind == "subscription" and row.update_id == 5551
    assert not row.processed and row.attempts == 2
    assert "malformed" in row.error and why in row.error
    assert json.loads(row.body) == update
    _assert_a_good_payment_credits_once(shop)


def test_a_subscription_update_with_an_update_id_out_of_range_is_kept_once(shop: Shop) -> None:
    update = {
        "update_id": 2**64,
        "subscription": {"user": {"id": 42}, "invoice_payload": "order:x", "state": "canceled"},
    }
    answers = _post_twice(shop, update)
    assert [a["detail"] for a in answers] == ["malformed: kept for replay"] * 2
    (row,) = shop.updates()
    assert row.update_id is None and not row.processed and "update_id" in row.error
    assert json.loads(row.body) == update
    # Its replay takes over the row it has (found by its body: no column holds its id).
    shop.app.test_cli_runner().invoke(args=["stars", "replay", "--failed"])
    (row,) = shop.updates()
    assert not row.processed and row.attempts == 3


def test_a_polling_bot_s_unstorable_update_is_kept_with_a_storable_body(shop: Shop) -> None:
    """No body text given (a polling bot's update, as ``register_handlers`` hands it over):
    the logged body is JSON with the surrogate escaped, kept once however often it comes."""
    update = _charge_update(shop)
    del update["update_id"]  # telebot does not pass it on
    update["message"]["successful_payment"]["telegram_payment_charge_id"] = "stx" + SURROGATE
    with shop.app.app_context():
        for _ in range(2):
            outcome = handle_update(get_state(shop.app), copy.deepcopy(update))
            assert outcome.kept and outcome.detail == "malformed: kept for replay"
    (row,) = shop.updates()
    assert row.update_id is None and not row.processed and "lone surrogate" in row.error
    assert "\\udc80" in row.body and json.loads(row.body) == update
    assert shop.payments() == []


# --- the safety net: what the database refuses, should a check miss it ------------------


@pytest.mark.parametrize("kind", ["successful_payment", "refunded_payment", "subscription"])
def test_a_value_the_driver_refuses_is_kept_and_answered_200(
    shop: Shop, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """With the schema's text check switched off, a lone surrogate reaches the driver
    (SQLite's and psycopg's both refuse it): the update is kept with the driver's error
    and answered 200, never a 500."""
    monkeypatch.setattr(schemas, "unstorable_text", lambda value: None)
    if kind == "subscription":
        # A payload that is no order id never reaches SQL (models.ORDER_ID_RE): let this one.
        monkeypatch.setattr(models, "ORDER_ID_RE", re.compile(r".{1,32}", re.S))
        update: dict[str, Any] = {
            "update_id": 5552,
            "subscription": {
                "user": {"id": 42},
                "invoice_payload": "order:" + SURROGATE,
                "state": "canceled",
            },
        }
    else:
        update = _charge_update(shop, kind)
        # What each reaches SQL with: a payment's payload names its order, a refund's charge id.
        field = "invoice_payload" if kind == "successful_payment" else "telegram_payment_charge_id"
        _charge(field, "order:" + SURROGATE)(update)

    answers = _post_twice(shop, update)

    assert [a["detail"] for a in answers] == ["unstorable: kept for replay"] * 2
    (row,) = shop.updates()
    assert row.kind == kind and not row.processed and row.attempts == 2
    assert "surrogate" in row.error
    assert json.loads(row.body) == update
    assert shop.payments() == [] and shop.rows(RefundNotice) == []
    monkeypatch.undo()
    _assert_a_good_payment_credits_once(shop)


# --- the host's callback failing still makes Telegram redeliver ---------------------------

CALLBACK_ERRORS: list[BaseException] = []


def credit_or_raise(payment: Any) -> None:
    """A credit callback that raises the next error of ``CALLBACK_ERRORS``, then credits."""
    if CALLBACK_ERRORS:
        raise CALLBACK_ERRORS.pop(0)
    hostapp.credit_coins(payment)


@pytest.mark.parametrize(
    "error",
    [ValueError("the host's callback failed"), OverflowError("the host's counter overflowed")],
    ids=["ValueError", "OverflowError"],
)
def test_a_credit_callback_that_raises_a_value_error_still_answers_500(
    make_shop: Callable[..., Shop], error: BaseException
) -> None:
    """Errors that would mean "cannot be stored" from the driver mean "try again" from the
    host's callback: 500, the update kept failed, and the redelivery credits once."""
    shop = make_shop(STARS_CREDIT_CALLBACK="tests.money.test_unstorable_updates:credit_or_raise")
    update = _charge_update(shop)
    CALLBACK_ERRORS[:] = [error]

    resp = shop.post_webhook(update)

    assert resp.status_code == 500
    (row,) = shop.updates()
    assert not row.processed and type(error).__name__ in row.error
    assert shop.balance(42) == 0
    resp = shop.post_webhook(update)  # Telegram redelivers
    assert resp.status_code == 200 and resp.json()["detail"] == "credited"
    assert shop.balance(42) == 1_000_000
    (row,) = shop.updates()
    assert row.processed
