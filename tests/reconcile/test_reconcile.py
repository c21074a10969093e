"""Reconciliation: find payments whose webhook was lost, refunds the ledger missed, and report the rest."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from flask_stars import reconcile as reconciliation
from flask_stars.botapi import BotGateway
from flask_stars.models import Meta, ReconcileRun
from flask_stars.state import get_state


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
    with shop.app.app_context():
        position = reconciliation.saved_position(get_state())
        key = reconciliation.position_key(get_state())
    assert position is not None and position.offset == 150
    assert position.last_id == shop.tg.transactions[149]["id"]  # what Telegram lists at 149
    assert key.startswith("reconcile:123456789:") and shop.rows(Meta, key=key)  # this bot's
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


# --- every run is recorded (stars_reconcile_runs) ---------------------------------------------


def test_a_run_is_recorded_with_its_report_and_no_transaction_open_while_telegram_is_asked(shop, monkeypatch):
    order = shop.invoice(43).json()
    shop.tg.pay(order["invoice_url"], 43, deliver_payment=False)
    seen: list[tuple[bool, list[Any]]] = []
    original = BotGateway.star_transactions

    def watched(self: BotGateway, offset: int, limit: int = 100) -> list[dict[str, Any]]:
        # What another connection sees while Telegram is asked: the run's row, committed.
        url = shop.app.config["SQLALCHEMY_DATABASE_URI"]
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT id, finished_at FROM stars_reconcile_runs")).all()
        engine.dispose()
        seen.append((get_state().session.in_transaction(), rows))
        return original(self, offset, limit)

    monkeypatch.setattr(BotGateway, "star_transactions", watched)
    _reconcile(shop, "--dry-run")
    assert shop.rows(ReconcileRun) == []  # a dry run changes nothing, and records nothing
    seen.clear()

    report = _reconcile(shop)
    assert report["missed_payments_credited"] == 1
    assert seen and all(not in_tx for in_tx, _ in seen)
    assert all(len(rows) == 1 and rows[0][1] is None for _, rows in seen)  # started, not finished
    (run,) = shop.rows(ReconcileRun)
    assert run.ok is True and run.error is None
    assert run.finished_at is not None and run.started_at <= run.finished_at and run.seconds is not None
    assert run.report is not None
    assert run.report["read"] == 1 and run.report["credited"] == 1 and run.report["end_offset"] == 1
    assert run.report["dry_run"] is False and run.report["unmatched"] == 0


def test_a_failed_run_is_recorded_with_its_error(shop):
    shop.tg.fail("getStarTransactions", 400, "Bad Request: the sandbox says no")
    result = shop.app.test_cli_runner().invoke(args=["stars", "reconcile"])
    assert result.exit_code == 1 and "the sandbox says no" in result.output
    (run,) = shop.rows(ReconcileRun)
    assert run.ok is False and run.finished_at is not None
    assert run.error is not None and "the sandbox says no" in run.error
    assert run.report is not None and run.report["read"] == 0

    # A run that fails part-way keeps the counts it reached: here the host's credit callback.
    order = shop.invoice(44).json()
    shop.tg.pay(order["invoice_url"], 44, deliver_payment=False)
    shop.credit_log.fail_next = 1
    with shop.app.app_context():
        try:
            reconciliation.reconcile(get_state())
        except RuntimeError as exc:
            assert "credit callback failed" in str(exc)
        else:
            raise AssertionError("the callback's error is raised")
    last = shop.rows(ReconcileRun)[-1]
    assert last.ok is False and last.error == "RuntimeError: the host's credit callback failed"

    assert _reconcile(shop)["missed_payments_credited"] == 1  # the next run mends it
    assert [r.ok for r in shop.rows(ReconcileRun)] == [False, False, True]
    assert shop.balance(44) == 1_000_000


def test_only_the_newest_runs_are_kept(shop, monkeypatch):
    monkeypatch.setattr(reconciliation.runs, "KEEP_RUNS", 3)
    for _ in range(5):
        _reconcile(shop)
    runs = shop.rows(ReconcileRun)
    assert len(runs) == 3 and [r.id for r in runs] == [3, 4, 5]
