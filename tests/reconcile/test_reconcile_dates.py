"""Payments and refunds found by reconcile carry Telegram's dates (issue 18, point 3).

``paid_at`` / ``refunded_at`` are the ``date`` of the Telegram transaction (Unix seconds,
UTC), so a nightly run puts a late payment on the day it was paid; ``found_at`` /
``refund_found_at`` say when reconcile found it. A payment whose webhook came has neither.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from flask_stars.models import utcnow
from tests.support.shop import Shop

THREE_DAYS_AGO = int((utcnow() - timedelta(days=3)).replace(microsecond=0).timestamp())
YESTERDAY = int((utcnow() - timedelta(days=1)).replace(microsecond=0).timestamp())


def _reconcile(shop: Shop) -> Any:
    result = shop.app.test_cli_runner().invoke(args=["stars", "reconcile", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _near_now(when: datetime | None) -> bool:
    return when is not None and abs(utcnow() - when) < timedelta(minutes=1)


def test_a_payment_found_by_reconcile_is_dated_when_telegram_charged_it(shop):
    _, delivered = shop.buy(401)  # its webhook came: paid now, never "found"
    order = shop.invoice(402).json()
    lost = shop.tg.pay(order["invoice_url"], 402, deliver_payment=False)
    (tx,) = [t for t in shop.tg.transactions if t["id"] == lost.charge_id]
    tx["date"] = THREE_DAYS_AGO  # Telegram charged it three days before reconcile ran

    assert _reconcile(shop)["missed_payments_credited"] == 1
    (found,) = shop.payments(telegram_payment_charge_id=lost.charge_id)
    assert found.credited and shop.balance(402) == 1_000_000
    assert found.paid_at == datetime.fromtimestamp(THREE_DAYS_AGO, UTC)
    assert _near_now(found.found_at) and found.refunded_at is None and found.refund_found_at is None
    assert shop.order(order["order_id"]).paid_at == found.paid_at  # the order is paid then too

    (webhook,) = shop.payments(telegram_payment_charge_id=delivered.charge_id)
    assert webhook.found_at is None and _near_now(webhook.paid_at)

    # The day it counts on: `flask stars stats` groups by paid_at, as the dashboard's chart does.
    stats = shop.app.test_cli_runner().invoke(args=["stars", "stats", "--json", "--days", "7"])
    assert stats.exit_code == 0, stats.output
    by_day = {row["day"]: row["payments"] for row in json.loads(stats.output)}
    three_days_ago = datetime.fromtimestamp(THREE_DAYS_AGO, UTC).date().isoformat()
    assert by_day[three_days_ago] == 1 and by_day[utcnow().date().isoformat()] == 1


def test_a_refund_found_by_reconcile_is_dated_when_telegram_refunded_it(shop):
    _, attempt = shop.buy(411)
    shop.tg.deliver_refund_updates = False  # the refunded_payment update is lost
    shop.tg.refund(attempt.charge_id)
    refund_tx = shop.tg.transactions[-1]
    assert refund_tx["id"] == attempt.charge_id and "receiver" in refund_tx
    refund_tx["date"] = YESTERDAY

    assert _reconcile(shop)["missed_refunds_applied"] == 1
    (payment,) = shop.payments(telegram_payment_charge_id=attempt.charge_id)
    assert payment.status == "refunded" and shop.balance(411) == 0
    assert payment.refunded_at == datetime.fromtimestamp(YESTERDAY, UTC)
    assert _near_now(payment.refund_found_at)
    assert payment.found_at is None and _near_now(payment.paid_at)  # the payment's webhook came


def test_a_refund_by_its_webhook_is_dated_now_and_not_found(shop):
    _, attempt = shop.buy(421)
    shop.tg.deliver_refund_updates = False
    update = shop.tg.refund(attempt.charge_id)
    assert shop.tg.deliver(update).status == 200  # refunded_payment, by the webhook
    (payment,) = shop.payments(telegram_payment_charge_id=attempt.charge_id)
    assert payment.status == "refunded" and shop.balance(421) == 0
    assert _near_now(payment.refunded_at) and payment.refund_found_at is None
