"""Faults: the database down or locked while money arrives, a slow database at pre-checkout,
updates out of order. Nothing is lost, nothing is credited twice, state only moves forward."""

from __future__ import annotations

import os
import sqlite3
import time

import pytest
import sqlalchemy as sa

from tests.support.tcpproxy import TcpProxy


def _replay(shop):
    result = shop.app.test_cli_runner().invoke(args=["stars", "replay", "--failed"])
    assert result.exit_code == 0, result.output
    return result.output


def test_sqlite_locked_while_a_payment_arrives_is_spooled_and_replayed(
    make_shop, database_url, tmp_path, figure
):
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite locking")
    shop = make_shop(
        SQLALCHEMY_ENGINE_OPTIONS={"connect_args": {"timeout": 1}}, STARS_SPOOL_DIR=str(tmp_path / "spool")
    )
    order = shop.invoice(42).json()
    other = shop.invoice(43).json()
    attempt = shop.tg.pay(order["invoice_url"], 42, deliver_payment=False)
    assert attempt.ok

    locker = sqlite3.connect(database_url.removeprefix("sqlite:///"), timeout=1)
    locker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
    try:
        resp = shop.tg.deliver(attempt.payment_update)
        assert resp.status == 500  # Telegram will redeliver
        assert len(shop.app.extensions["stars"].spool.pending()) == 1

        started = time.monotonic()
        refused = shop.tg.pay(other["invoice_url"], 43, deliver_payment=False)
        assert not refused.ok and "try again" in refused.error_message
        assert time.monotonic() - started < 5  # answered well inside Telegram's 10 s
    finally:
        locker.rollback()
        locker.close()

    assert shop.balance(42) == 0
    out = _replay(shop)
    figure(f"\nreplay after the lock: {out.strip()}")
    assert "credited" in out
    assert shop.balance(42) == 1_000_000
    assert shop.app.extensions["stars"].spool.pending() == []
    # Telegram's own redelivery now finds it done.
    assert shop.tg.deliver(attempt.payment_update).body["detail"].startswith("duplicate")
    assert shop.balance(42) == 1_000_000


@pytest.fixture
def pg_through_proxy(database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("needs STARS_TEST_DATABASE_URL (PostgreSQL): the proxy stands in front of it")
    url = sa.make_url(database_url)
    proxy = TcpProxy(url.port or 5432).start()
    yield proxy, url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    proxy.stop()


def test_postgres_down_while_a_payment_arrives_is_spooled_and_replayed(
    make_shop, pg_through_proxy, tmp_path, figure
):
    proxy, proxied_url = pg_through_proxy
    shop = make_shop(
        SQLALCHEMY_DATABASE_URI=proxied_url,
        SQLALCHEMY_ENGINE_OPTIONS={"pool_pre_ping": True, "connect_args": {"connect_timeout": 2}},
        STARS_SPOOL_DIR=str(tmp_path / "spool"),
    )
    order = shop.invoice(42).json()
    other = shop.invoice(43).json()
    attempt = shop.tg.pay(order["invoice_url"], 42, deliver_payment=False)
    assert attempt.ok

    proxy.stop()  # the database goes away
    assert shop.tg.deliver(attempt.payment_update).status == 500
    assert len(shop.app.extensions["stars"].spool.pending()) == 1
    started = time.monotonic()
    refused = shop.tg.pay(other["invoice_url"], 43, deliver_payment=False)
    assert not refused.ok and "try again" in refused.error_message
    assert time.monotonic() - started < 8

    proxy.start()  # and comes back
    out = _replay(shop)
    figure(f"\nreplay after the outage: {out.strip()}")
    assert shop.balance(42) == 1_000_000
    assert shop.tg.deliver(attempt.payment_update).status == 200
    assert shop.balance(42) == 1_000_000
    assert len(shop.payments()) == 1


def test_slow_postgres_pre_checkout_answers_try_again_in_time(make_shop, database_url, figure):
    if not database_url.startswith("postgresql"):
        pytest.skip("lock_timeout is PostgreSQL's")
    shop = make_shop(STARS_PRE_CHECKOUT_TIMEOUT=1)
    order = shop.invoice(42).json()
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        conn.execute(
            sa.text("SELECT 1 FROM stars_orders WHERE id = :id FOR UPDATE"), {"id": order["order_id"]}
        )
        started = time.monotonic()
        attempt = shop.tg.pay(order["invoice_url"], 42, deliver_payment=False)
        took = time.monotonic() - started
        conn.rollback()
    engine.dispose()
    figure(f"\npre-checkout against a locked row answered in {took:.2f} s")
    assert not attempt.ok and "try again" in attempt.error_message
    assert took < 5
    assert shop.tg.pay(order["invoice_url"], 42).ok  # and once the lock is gone, it goes through
    assert shop.balance(42) == 1_000_000


def test_payment_before_its_pre_checkout_was_answered_is_credited(shop):
    """Telegram's order of delivery is not ours to choose: the charge is real money."""
    order = shop.invoice(42).json()
    _, update = shop.tg.charge(order["invoice_url"], 42)
    assert shop.tg.deliver(update).body["detail"] == "credited"
    assert shop.balance(42) == 1_000_000
    # The late pre-checkout for the same order is refused and changes nothing.
    late = shop.tg.pay(order["invoice_url"], 42, deliver_payment=False)
    assert not late.ok
    assert shop.order(order["order_id"]).status == "paid"


def test_old_payment_update_after_its_refund_changes_nothing(shop):
    from tests.support.shop import refunded_payment_update

    order_id, attempt = shop.buy(42)
    shop.post_webhook(refunded_payment_update(attempt.charge_id, 42))
    assert shop.balance(42) == 0
    assert shop.tg.deliver(attempt.payment_update).status == 200  # an old update, redelivered
    assert shop.balance(42) == 0
    assert shop.order(order_id).status == "refunded"
    assert shop.payments()[0].status == "refunded"


def test_spool_survives_when_the_disk_is_all_there_is(tmp_path):
    from flask_stars.spool import Spool

    spool = Spool(str(tmp_path / "s"))
    path = spool.put(7, '{"update_id": 7}')
    assert path is not None and path.read_text() == '{"update_id": 7}'
    assert spool.pending() == [path]
    assert not [p for p in os.listdir(tmp_path / "s") if p.startswith(".incoming-")]


def test_a_spooled_update_another_replay_took_first_is_skipped(make_shop, tmp_path):
    """Two `replay --failed` at once (cron and the dashboard): the second finds the file gone."""
    from flask_stars.updates import replay

    shop = make_shop(STARS_SPOOL_DIR=str(tmp_path / "spool"))
    with shop.app.app_context():
        state = shop.app.extensions["stars"]
        state.spool.put(1, '{"update_id": 1}')
        listed = state.spool.pending()
        listed[0].unlink()  # the other replay handled it between the listing and the read
        state.spool.pending = lambda: listed
        assert list(replay(state, failed=True)) == []
