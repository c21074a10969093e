"""``flask stars prune``: stars_updates stays bounded, and money updates are kept for good."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from flask_stars.errors import StarsConfigError
from flask_stars.models import UpdateLog, utcnow
from flask_stars.retention import prune_updates
from tests.support.shop import refunded_payment_update

OLD = timedelta(days=31)


def _age_every_row(shop: Any, by: timedelta) -> None:
    """Move every logged update ``by`` into the past (as if the shop had run that long)."""
    with shop.app.app_context():
        session = shop.app.extensions["stars"].session
        for row in session.scalars(sa.select(UpdateLog)):
            row.received_at = row.received_at - by
        session.commit()


def _add_unprocessed(shop: Any, kind: str, update_id: int) -> None:
    """A row whose handling failed (it waits for ``replay``), received long ago."""
    with shop.app.app_context():
        session = shop.app.extensions["stars"].session
        session.add(
            UpdateLog(
                update_id=update_id,
                digest=f"{update_id:064d}",
                kind=kind,
                body="{}",
                processed=False,
                received_at=utcnow() - OLD,
                error="RuntimeError: failed",
            )
        )
        session.commit()


def _kinds(shop: Any) -> list[str]:
    return sorted(u.kind for u in shop.updates())


def _fill_log(shop: Any) -> None:
    """A paid and refunded purchase, a refused pre-checkout and a subscription update.

    The approved pre-checkout leaves no row (its hold names the query): two handled
    non-money rows, the refusal and the subscription update, are old enough to prune.
    """
    _, attempt = shop.buy(42)
    assert attempt.ok
    refused = shop.tg.pay(shop.invoice(43).json()["invoice_url"], 43, total_amount=1)
    assert not refused.ok
    shop.tg.deliver(refunded_payment_update(attempt.charge_id, 42))
    shop.tg.subscription_update(44, "not-a-plan", "canceled")
    _age_every_row(shop, OLD)
    _add_unprocessed(shop, "pre_checkout_query", 9_000_001)
    _add_unprocessed(shop, "successful_payment", 9_000_002)


def test_prune_keeps_money_updates_and_unprocessed_rows_for_good(shop: Any) -> None:
    """Old handled pre-checkouts and subscription updates go; money and pending rows stay."""
    _fill_log(shop)
    shop.tg.pay(shop.invoice(45).json()["invoice_url"], 45, total_amount=1)  # a fresh refusal
    before = _kinds(shop)
    assert before.count("pre_checkout_query") == 3 and "subscription" in before

    runner = shop.app.test_cli_runner()
    dry = runner.invoke(args=["stars", "prune", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would delete 2 update row(s)" in dry.output
    assert _kinds(shop) == before  # a dry run deletes nothing

    result = runner.invoke(args=["stars", "prune"])
    assert result.exit_code == 0, result.output
    assert "deleted 2 update row(s)" in result.output
    kept = shop.updates()
    assert sorted(u.kind for u in kept) == [
        "pre_checkout_query",  # the unprocessed one (may still be replayed)
        "pre_checkout_query",  # the fresh one (younger than 30 days)
        "refunded_payment",
        "successful_payment",
        "successful_payment",  # the unprocessed one
    ]
    assert {u.update_id for u in kept if not u.processed} == {9_000_001, 9_000_002}
    # The ledger is untouched, and a second prune finds nothing more.
    (payment,) = shop.payments()
    assert payment.status == "refunded"
    assert "deleted 0 update row(s)" in runner.invoke(args=["stars", "prune"]).output


def test_prune_keeps_everything_when_retention_is_none(make_shop: Any) -> None:
    shop = make_shop(STARS_UPDATE_RETENTION_DAYS=None)
    _fill_log(shop)
    before = _kinds(shop)
    result = shop.app.test_cli_runner().invoke(args=["stars", "prune"])
    assert result.exit_code == 0, result.output
    assert "nothing deleted" in result.output
    assert _kinds(shop) == before
    # --days still prunes on demand.
    result = shop.app.test_cli_runner().invoke(args=["stars", "prune", "--days", "7"])
    assert "deleted 2 update row(s)" in result.output


def test_prune_honours_the_configured_retention(make_shop: Any) -> None:
    shop = make_shop(STARS_UPDATE_RETENTION_DAYS=60)
    _fill_log(shop)  # 31 days old: inside 60 days
    assert "deleted 0 update row(s)" in shop.app.test_cli_runner().invoke(args=["stars", "prune"]).output
    _age_every_row(shop, timedelta(days=30))
    assert "deleted 2 update row(s)" in shop.app.test_cli_runner().invoke(args=["stars", "prune"]).output


def test_prune_deletes_in_batches(shop: Any) -> None:
    """A backlog larger than a batch is deleted whole, a batch per transaction."""
    for user in range(50, 57):
        shop.tg.pay(shop.invoice(user).json()["invoice_url"], user, total_amount=1)
    _age_every_row(shop, OLD)
    with shop.app.app_context():
        state = shop.app.extensions["stars"]
        assert prune_updates(state, dry_run=True).count == 7
        result = prune_updates(state, batch_size=2)
    assert result.count == 7 and not result.dry_run
    assert shop.updates() == []


@pytest.mark.parametrize("value", [0, -1, 1.5, "30", True])
def test_update_retention_days_is_checked_at_start_up(make_shop: Any, value: object) -> None:
    with pytest.raises(StarsConfigError, match="STARS_UPDATE_RETENTION_DAYS"):
        make_shop(STARS_UPDATE_RETENTION_DAYS=value)
