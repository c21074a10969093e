"""Reconciliation: find payments whose webhook was lost, refunds the ledger missed, and report the rest."""

from __future__ import annotations

import json

from flask_stars.models import Meta


def _reconcile(shop, *args):
    result = shop.app.test_cli_runner().invoke(args=["stars", "reconcile", "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_lost_webhook_is_credited_once_by_reconcile(shop):
    shop.buy(42)  # a normal payment, already in the ledger
    order = shop.invoice(43).json()
    lost = shop.tg.pay(
        order["invoice_url"], 43, deliver_payment=False
    )  # Telegram charged; the webhook never came
    assert shop.balance(43) == 0

    dry = _reconcile(shop, "--dry-run")
    assert dry["missed_payments_would_be_credited"] == 1 and dry["already_in_the_ledger"] == 1
    assert shop.balance(43) == 0  # a dry run changes nothing

    report = _reconcile(shop)
    assert report["missed_payments_credited"] == 1 and report["transactions_read"] == 2
    assert shop.balance(43) == 1_000_000
    assert shop.order(order["order_id"]).status == "paid"
    (payment,) = shop.payments(telegram_payment_charge_id=lost.charge_id)
    assert payment.credited

    # The next run reads only new transactions; a late webhook credits nothing more.
    assert _reconcile(shop)["transactions_read"] == 0
    assert shop.tg.deliver(lost.payment_update).body["detail"] == "duplicate charge"
    assert _reconcile(shop, "--full")["already_in_the_ledger"] == 2
    assert shop.balance(43) == 1_000_000


def test_missed_refund_is_applied_and_unknown_transactions_reported(shop):
    _, attempt = shop.buy(42)
    shop.tg.deliver_refund_updates = False  # the refunded_payment update is lost
    shop.tg.refund(attempt.charge_id)
    # Someone pays an invoice that is not ours (another shop's payload on this bot).
    foreign = shop.tg._api_createInvoiceLink(
        {
            "title": "X",
            "description": "Y",
            "payload": "legacy:123",
            "currency": "XTR",
            "prices": '[{"label":"x","amount":5}]',
        }
    )
    shop.tg.charge(foreign, 77)
    report = _reconcile(shop)
    assert report["missed_refunds_applied"] == 1
    assert report["unmatched_(reported,_not_changed)"] == 1
    assert report["unmatched_examples"][0]["amount"] == 5
    assert shop.balance(42) == 0 and len(shop.credit_log.debits) == 1
    assert shop.payments(telegram_payment_charge_id=attempt.charge_id)[0].status == "refunded"
    assert not shop.payments(telegram_payment_charge_id=foreign)  # reported, never "fixed"


def test_reconcile_pages_through_many_transactions_and_remembers(shop):
    orders = []
    for user in range(100, 250):
        order = shop.invoice(user).json()
        shop.tg.charge(order["invoice_url"], user)  # 150 payments, none delivered
        orders.append(order)
    report = _reconcile(shop)
    assert report["transactions_read"] == 150 and report["missed_payments_credited"] == 150
    assert len([c for c in shop.tg.calls_to("getStarTransactions")]) == 2  # 100 + 50
    assert shop.rows(Meta, key="reconcile_offset")[0].value == "150"
    assert sum(shop.balance(u) for u in range(100, 250)) == 150 * 1_000_000


def test_reconcile_from_python_and_a_human_summary(make_shop):
    shop = make_shop(mount="extension")
    order = shop.invoice(42).json()
    shop.tg.pay(order["invoice_url"], 42, deliver_payment=False)
    with shop.app.app_context():
        report = shop.app.extensions["test_stars"].reconcile()
    assert report.credited == 1 and shop.balance(42) == 1_000_000
    out = shop.app.test_cli_runner().invoke(args=["stars", "reconcile", "--full"]).output
    assert "already in the ledger" in out and "transactions read" in out


def test_balance_and_stats_commands(shop):
    shop.buy(42, "stars_pack_1")
    _, attempt = shop.buy(43, "stars_pack_2")
    runner = shop.app.test_cli_runner()
    assert runner.invoke(args=["stars", "refund", attempt.charge_id]).exit_code == 0
    assert runner.invoke(args=["stars", "balance"]).output.strip() == "10 Stars"
    rows = json.loads(runner.invoke(args=["stars", "stats", "--json"]).output)
    by_pack = {r["pack"]: r for r in rows}
    assert by_pack["stars_pack_1"]["stars"] == 10 and by_pack["stars_pack_1"]["net"] == 10
    assert by_pack["stars_pack_2"]["refunded"] == 40 and by_pack["stars_pack_2"]["net"] == 0
    table = runner.invoke(args=["stars", "stats"]).output
    assert "total" in table
