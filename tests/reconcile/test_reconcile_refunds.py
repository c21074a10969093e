"""Reconcile and refunds: a page applied in Telegram's order, a refund on a later page or of an
unseen payment, and due refunds of second payments finished once."""

from __future__ import annotations

import json
from typing import Any

from flask_stars.models import RefundNotice
from flask_stars.reconcile import Position, reconcile, save_position
from flask_stars.state import get_state


def _reconcile_cli(shop: Any, *args: str) -> dict[str, Any]:
    result = shop.app.test_cli_runner().invoke(args=["stars", "reconcile", "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_reconcile_never_credits_a_payment_refunded_later_on_the_same_page(shop):
    order = shop.invoice(43).json()
    lost = shop.tg.pay(order["invoice_url"], 43, deliver_payment=False)  # both webhooks lost
    shop.tg.deliver_refund_updates = False
    shop.tg.refund(lost.charge_id)  # refunded by Telegram's support
    report = _reconcile_cli(shop)
    assert shop.balance(43) == 0
    (payment,) = shop.payments(telegram_payment_charge_id=lost.charge_id)
    assert payment.status == "refunded"
    assert report["unmatched_(reported,_not_changed)"] == 0
    assert _reconcile_cli(shop, "--full")["already_in_the_ledger"] == 2  # and it stays so


def test_reconcile_applies_a_refund_listed_on_a_later_page(shop):
    order = shop.invoice(43).json()
    lost = shop.tg.pay(order["invoice_url"], 43, deliver_payment=False)
    shop.tg.deliver_refund_updates = False
    shop.tg.refund(lost.charge_id)
    with shop.app.app_context():
        report = reconcile(get_state(), page_size=1)  # the payment and its refund on two pages
    assert report.read == 2
    assert shop.balance(43) == 0
    assert shop.payments(telegram_payment_charge_id=lost.charge_id)[0].status == "refunded"


def test_reconcile_keeps_a_refund_of_an_unseen_payment_as_a_notice(shop):
    order = shop.invoice(44).json()
    unseen = shop.tg.pay(order["invoice_url"], 44, deliver_payment=False)  # transaction 0
    shop.tg.deliver_refund_updates = False
    shop.tg.refund(unseen.charge_id)  # transaction 1
    with shop.app.app_context():
        state = get_state()
        # The payment lies before where reconciliation starts: only its refund is read.
        save_position(state, Position.after(1, shop.tg.transactions[0]))
        report = reconcile(state)
    assert report.refunds_noted == 1 and report.unmatched == 0
    assert [n.telegram_payment_charge_id for n in shop.rows(RefundNotice)] == [unseen.charge_id]
    shop.tg.deliver(unseen.payment_update)  # the payment arrives at last: nothing credited
    assert shop.balance(44) == 0
    assert shop.payments()[0].status == "refunded"


def test_a_due_refund_of_a_second_payment_is_finished_by_reconcile_once(shop):
    order = shop.invoice(42).json()
    shop.tg.pay(order["invoice_url"], 42)
    charge2, update2 = shop.tg.charge(order["invoice_url"], 42)  # paid twice
    shop.tg.fail("refundStarPayment", 500, times=1)  # Telegram fails the automatic refund
    assert shop.tg.deliver(update2).status == 200
    (row,) = shop.payments(telegram_payment_charge_id=charge2)
    assert row.status == "paid" and not row.credited
    report = _reconcile_cli(shop)
    assert report["due_refunds_of_second_payments_finished"] == 1
    assert shop.payments(telegram_payment_charge_id=charge2)[0].status == "refunded"
    assert len(shop.tg.calls_to("refundStarPayment")) == 2  # the failed one and this one
    assert _reconcile_cli(shop)["due_refunds_of_second_payments_finished"] == 0
    assert shop.balance(42) == 1_000_000


def test_flask_stars_refund_due_finishes_due_refunds(shop):
    order = shop.invoice(42).json()
    shop.tg.pay(order["invoice_url"], 42)
    charge2, update2 = shop.tg.charge(order["invoice_url"], 42)
    shop.tg.fail("refundStarPayment", 500, times=1)
    shop.tg.deliver(update2)
    result = shop.app.test_cli_runner().invoke(args=["stars", "refund", "--due"])
    assert result.exit_code == 0, result.output
    assert "1 due refund(s) finished" in result.output
    assert shop.payments(telegram_payment_charge_id=charge2)[0].status == "refunded"
