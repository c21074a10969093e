"""Reconcile's position: per bot and environment, checked before it is trusted (issue 18, point 1).

A run resumes at the saved position only if Telegram still lists, just before it, the
transaction saved there; otherwise it reads from the start and says so (a warning, never
a plain "ok"). A run that reads nothing new says so in words.
"""

from __future__ import annotations

import json
from typing import Any

from flask_stars.audit import entries
from flask_stars.models import Meta, ReconcileRun
from flask_stars.reconcile import LEGACY_OFFSET_KEY, Position, position_key, saved_position
from flask_stars.state import get_state
from tests.support.shop import Shop

CREDITS = 1_000_000


def _reconcile(shop: Shop, *args: str) -> dict[str, Any]:
    result = shop.app.test_cli_runner().invoke(args=["stars", "reconcile", "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _lose(shop: Shop, user_id: int) -> str:
    """A payment Telegram charged whose webhook never came; its charge id."""
    order = shop.invoice(user_id).json()
    attempt = shop.tg.pay(order["invoice_url"], user_id, deliver_payment=False)
    assert attempt.charge_id
    return attempt.charge_id


def _offsets(shop: Shop) -> list[int]:
    return [int(params.get("offset") or 0) for params in shop.tg.calls_to("getStarTransactions")]


def _position(shop: Shop) -> Position | None:
    with shop.app.app_context():
        return saved_position(get_state())


def _audit_of_last_run(shop: Shop) -> Any:
    run = shop.rows(ReconcileRun)[-1]
    with shop.app.app_context():
        (entry,) = entries(get_state(), target=str(run.id))
    return entry


def test_a_run_resumes_after_the_checked_position_and_reads_only_new_transactions(shop):
    first, second = _lose(shop, 301), _lose(shop, 302)
    report = _reconcile(shop)
    assert report["transactions_read"] == 2 and report["missed_payments_credited"] == 2
    assert report["outcome"] == "ok" and report["warning"] is None
    assert _position(shop) == Position(2, second, "in", shop.tg.transactions[1]["date"])

    third = _lose(shop, 303)
    calls = len(_offsets(shop))
    report = _reconcile(shop)
    # One call, from the saved transaction (offset 1): it is checked, then only the new one is read.
    assert _offsets(shop)[calls:] == [1]
    assert report["transactions_read"] == 1 and report["missed_payments_credited"] == 1
    assert (report["saved_offset"], report["start_offset"], report["end_offset"]) == (2, 2, 3)
    assert report["outcome"] == "ok" and report["warning"] is None and report["note"] is None
    assert [shop.balance(u) for u in (301, 302, 303)] == [CREDITS] * 3
    assert _position(shop).last_id == third  # type: ignore[union-attr]
    assert first != second != third

    # Nothing new: said so in words, in the CLI's table output and the run's report.
    out = shop.app.test_cli_runner().invoke(args=["stars", "reconcile"])
    assert out.exit_code == 0 and "Note: no new transactions since position 3" in out.output
    assert "Warning" not in out.output
    run = shop.rows(ReconcileRun)[-1]
    assert run.ok is True and run.report["note"] == "no new transactions since position 3"
    audit = _audit_of_last_run(shop)
    assert audit.outcome == "ok" and "no new transactions since position 3" in (audit.detail or "")


def test_a_saved_position_past_the_end_of_the_list_reads_from_the_start_with_a_warning(shop):
    for user in (311, 312, 313):
        _lose(shop, user)
    assert _reconcile(shop)["end_offset"] == 3
    # Telegram's list is another one now (a sandbox started afresh): one payment long.
    shop.tg.transactions.clear()
    fresh = _lose(shop, 314)

    dry = _reconcile(shop, "--dry-run")  # a dry run says so too, and changes nothing
    assert dry["outcome"] == "warning" and "past the end" in dry["warning"]
    assert dry["missed_payments_would_be_credited"] == 1 and shop.balance(314) == 0
    assert _position(shop).offset == 3  # type: ignore[union-attr]

    out = shop.app.test_cli_runner().invoke(args=["stars", "reconcile"])
    assert out.exit_code == 0, out.output
    assert "Warning: the saved position 3 is past the end of Telegram's list" in out.output
    assert "read again from the start (position 0)" in out.output
    assert shop.balance(314) == CREDITS  # the new list's first payment: not skipped
    run = shop.rows(ReconcileRun)[-1]
    assert run.ok is True and run.report["position_problem"] == "past_end"
    assert (run.report["saved_offset"], run.report["start_offset"], run.report["end_offset"]) == (3, 0, 1)
    assert _audit_of_last_run(shop).outcome == "warning"
    assert _position(shop) == Position(1, fresh, "in", shop.tg.transactions[0]["date"])

    # From now on the new list's position holds: no warning.
    report = _reconcile(shop)
    assert report["outcome"] == "ok" and report["note"] == "no new transactions since position 1"


def test_a_list_that_is_now_empty_forgets_the_position_with_a_warning(shop):
    _lose(shop, 321)
    _reconcile(shop)
    shop.tg.transactions.clear()
    report = _reconcile(shop)
    assert report["outcome"] == "warning" and report["transactions_read"] == 0
    assert "past the end" in report["warning"]
    assert _position(shop) is None
    report = _reconcile(shop)
    assert report["outcome"] == "ok" and report["note"] == "Telegram lists no transactions for this bot yet"


def test_another_transaction_at_the_saved_position_reads_from_the_start_with_a_warning(shop):
    _lose(shop, 331)
    _lose(shop, 332)
    _reconcile(shop)
    # Another list of the same length (another bot's, or another environment's).
    shop.tg.transactions.clear()
    _lose(shop, 333)
    _lose(shop, 334)
    _lose(shop, 335)
    report = _reconcile(shop)
    assert report["outcome"] == "warning" and report["warning"].startswith(
        "Telegram no longer lists the transaction saved at position 2"
    )
    assert report["transactions_read"] == 3 and report["missed_payments_credited"] == 3
    assert [shop.balance(u) for u in (333, 334, 335)] == [CREDITS] * 3
    assert _audit_of_last_run(shop).outcome == "warning"


def test_a_full_run_checks_the_saved_position_as_it_passes_it(shop):
    _lose(shop, 341)
    _reconcile(shop)
    report = _reconcile(shop, "--full")  # the same list: the saved transaction is where it was
    assert report["outcome"] == "ok" and report["already_in_the_ledger"] == 1
    shop.tg.transactions.clear()
    _lose(shop, 342)
    report = _reconcile(shop, "--full")
    assert report["outcome"] == "warning" and "no longer lists" in report["warning"]
    assert shop.balance(342) == CREDITS


def test_a_refund_shares_its_payments_id_but_is_not_taken_for_it(shop):
    """The saved transaction is named by id, direction and date: a refund has its payment's id."""
    shop.buy(351)
    _reconcile(shop)  # position 1: the payment
    (payment,) = shop.tg.transactions
    # Another list whose first transaction is that payment's refund, dated the same second.
    refund = {key: value for key, value in payment.items() if key != "source"}
    refund["receiver"] = payment["source"]
    shop.tg.transactions[:] = [refund]
    report = _reconcile(shop)
    assert report["outcome"] == "warning" and "no longer lists" in report["warning"]
    assert report["missed_refunds_applied"] == 1 and shop.balance(351) == 0


def test_positions_are_per_bot_and_environment(shop):
    for user in (361, 362):
        _lose(shop, user)
    with shop.app.app_context():
        state = get_state()
        mine = position_key(state)
        identity = state.bot_identity
    assert mine == f"reconcile:{identity.bot_id}:{identity.environment}"
    # Another bot (or this bot in another environment) read 5 transactions of its own list.
    others = [f"reconcile:987654321:{identity.environment}", f"reconcile:{identity.bot_id}:test"]
    with shop.app.app_context():
        session = get_state().session
        for key in others:
            session.add(Meta(key=key, value=Position(5, "someone-elses", "in", 1).dumps()))
        session.commit()
    report = _reconcile(shop)
    # This bot has no position yet: it reads its list from 0, with nothing to warn about.
    assert report["saved_offset"] is None and report["start_offset"] == 0
    assert report["transactions_read"] == 2 and report["outcome"] == "ok"
    assert shop.balance(361) == shop.balance(362) == CREDITS
    for key in others:
        (row,) = shop.rows(Meta, key=key)
        assert Position.loads(row.value).offset == 5  # untouched
    assert _position(shop).offset == 2  # type: ignore[union-attr]


def test_the_legacy_global_offset_is_not_trusted_and_goes(shop):
    _lose(shop, 371)
    _lose(shop, 372)
    with shop.app.app_context():
        session = get_state().session
        session.add(Meta(key=LEGACY_OFFSET_KEY, value="2"))  # an earlier release read 2: of which list?
        session.commit()
    report = _reconcile(shop)
    assert report["start_offset"] == 0 and report["transactions_read"] == 2
    assert report["missed_payments_credited"] == 2 and report["outcome"] == "ok"
    assert "earlier flask_stars" in report["note"] and "read from the start once" in report["note"]
    assert shop.rows(Meta, key=LEGACY_OFFSET_KEY) == []
    assert _reconcile(shop)["note"] == "no new transactions since position 2"
