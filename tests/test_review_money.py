"""What the outside review found on the money path (issue 10, items 1-5 and 11): each test
is named after the promise it keeps, and failed before the fix."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from flask_stars.migrations import upgrade
from flask_stars.models import Order, RefundNotice, Subscription, UpdateLog, payload_for, utcnow
from flask_stars.packs import Catalogue
from flask_stars.reconcile import Position, reconcile, save_position
from flask_stars.state import get_state
from tests import hostapp
from tests.test_subscriptions import MONTHLY, _subscribe


def _reconcile_cli(shop: Any, *args: str) -> dict[str, Any]:
    result = shop.app.test_cli_runner().invoke(args=["stars", "reconcile", "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


# --- 1. reconcile applies transactions in order ----------------------------------------------


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


# --- 2. a payment delivers what its invoice sold ------------------------------------------------


def test_a_payment_delivers_what_its_invoice_sold_after_a_price_change(shop):
    order = shop.invoice(42).json()  # 10 Stars for 1,000,000
    with shop.app.app_context():
        state = get_state()
        state.packs = Catalogue(
            [{"id": "stars_pack_1", "stars": 100, "title": "Starter pack", "credits": 10_000_000}]
        )
    attempt = shop.tg.pay(order["invoice_url"], 42)
    assert attempt.ok and attempt.payment.status == 200
    assert shop.balance(42) == 1_000_000  # what the 10-Star invoice sold, not the new pack
    fresh = shop.invoice(42).json()  # a new invoice sells the new pack
    assert fresh["order_id"] != order["order_id"] and fresh["pack"]["stars"] == 100


def test_a_removed_packs_old_invoice_still_delivers_what_it_sold(shop):
    order = shop.invoice(42, "stars_pack_2").json()
    with shop.app.app_context():
        get_state().packs = Catalogue([hostapp.PACKS[0]])  # stars_pack_2 is gone
    attempt = shop.tg.pay(order["invoice_url"], 42)
    assert attempt.ok, attempt.error_message  # the buyer saw this offer in the sheet
    assert attempt.payment.status == 200 and attempt.payment.body["detail"] == "credited"
    assert shop.balance(42) == 5_000_000
    (payment,) = shop.payments()
    with shop.app.app_context():
        loaded = get_state().session.get(type(payment), payment.id)
        assert loaded.pack.credits == 5_000_000 and loaded.pack.title == "Premium pack"


def test_an_order_made_before_the_record_existed_is_paid_after_the_upgrade(database_url, make_shop):
    engine = sa.create_engine(database_url)
    with engine.begin() as conn:
        upgrade(conn, "stars_0002")
        now = utcnow().replace(tzinfo=None)
        conn.execute(
            sa.text(
                "INSERT INTO stars_orders (id, user_id, pack_id, stars, status, created_at, expires_at)"
                " VALUES ('legacyorder1', 42, 'stars_pack_1', 10, 'pending', :now, :later)"
            ),
            {"now": now, "later": now.replace(year=now.year + 1)},
        )
    with engine.begin() as conn:
        upgrade(conn)  # to the head: the order keeps its row, with no record of the sale
    engine.dispose()
    shop = make_shop(STARS_CREATE_TABLES=False)
    invoice = shop.tg._api_createInvoiceLink(
        {
            "title": "Starter pack",
            "description": "x",
            "payload": payload_for("legacyorder1"),
            "currency": "XTR",
            "prices": '[{"label":"x","amount":10}]',
        }
    )
    attempt = shop.tg.pay(invoice, 42)
    assert attempt.ok and attempt.payment.body["detail"] == "credited"
    assert shop.balance(42) == 1_000_000  # the catalogue's pack, price unchanged
    (order,) = shop.rows(Order, id="legacyorder1")
    assert order.status == "paid" and order.pack_title is None


# --- 3. only a subscription's order renews -------------------------------------------------


def test_a_forged_renewal_of_an_ordinary_pack_is_not_credited(shop):
    _order_id, attempt = shop.buy(42)
    assert shop.balance(42) == 1_000_000
    forged = json.loads(json.dumps(attempt.payment_update))
    forged["update_id"] += 1
    charge = forged["message"]["successful_payment"]
    charge["telegram_payment_charge_id"] = "forged-renewal-1"
    charge["is_recurring"] = True
    resp = shop.post_webhook(forged)
    assert resp.status_code == 200 and resp.json()["detail"] == "order_already_paid"
    assert shop.balance(42) == 1_000_000  # the duplicate-payment policy applies: refunded
    assert shop.payments(telegram_payment_charge_id="forged-renewal-1")[0].credited is False


# --- 4. a due refund is never forgotten ------------------------------------------------------


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


# --- 5. a refund ends the access it paid for ---------------------------------------------------


def test_a_refunded_subscription_is_no_longer_active(make_shop):
    shop = make_shop(STARS_PACKS=[*hostapp.PACKS, MONTHLY])
    _order, first = _subscribe(shop)
    subs = shop.http.get(shop.url("/subscriptions"), headers=shop.auth(42)).json()["subscriptions"]
    assert subs[0]["active"] is True
    assert shop.app.test_cli_runner().invoke(args=["stars", "refund", first.charge_id]).exit_code == 0
    subs = shop.http.get(shop.url("/subscriptions"), headers=shop.auth(42)).json()["subscriptions"]
    assert subs[0]["active"] is False


def test_refunding_an_older_renewal_keeps_the_current_period(make_shop):
    shop = make_shop(STARS_PACKS=[*hostapp.PACKS, MONTHLY])
    _order, first = _subscribe(shop)
    shop.tg.renew(first.charge_id)
    assert shop.app.test_cli_runner().invoke(args=["stars", "refund", first.charge_id]).exit_code == 0
    (sub,) = shop.rows(Subscription)
    assert sub.expires_at > utcnow()  # the renewal paid for the current month


# --- 11. anything that passes the secret is applied or recorded, never a 500 loop ---------------


def test_an_unstorable_expiration_date_is_applied_not_a_redelivery_loop(make_shop):
    shop = make_shop(STARS_PACKS=[*hostapp.PACKS, MONTHLY])
    order = shop.invoice(42, "monthly").json()
    attempt = shop.tg.pay(order["invoice_url"], 42, deliver_payment=False)
    update = json.loads(json.dumps(attempt.payment_update))
    update["message"]["successful_payment"]["subscription_expiration_date"] = 2**62
    resp = shop.post_webhook(update)
    assert resp.status_code == 200 and resp.json()["detail"] == "credited"
    assert shop.balance(42) == 3_000_000


def test_a_currency_too_long_to_store_is_recorded_not_a_redelivery_loop(shop):
    order = shop.invoice(42).json()
    attempt = shop.tg.pay(order["invoice_url"], 42, deliver_payment=False)
    update = json.loads(json.dumps(attempt.payment_update))
    update["message"]["successful_payment"]["currency"] = "XTRXTRXTR"
    resp = shop.post_webhook(update)
    assert resp.status_code == 200 and resp.json()["detail"] == "amount_mismatch"
    assert shop.balance(42) == 0


def test_a_malformed_payment_update_is_kept_and_answered_2xx(shop):
    update = {"update_id": 77, "message": {"from": {"id": 1}, "successful_payment": {"currency": "XTR"}}}
    resp = shop.post_webhook(update)
    assert resp.status_code == 200 and resp.json()["detail"] == "malformed: kept for replay"
    (row,) = shop.rows(UpdateLog)
    assert not row.processed and "malformed" in row.error
    assert shop.payments() == []


def test_an_initdata_user_id_beyond_int64_is_401_not_500(shop):
    resp = shop.invoice(2**64)
    assert resp.status_code == 401 and resp.json()["error"] == "invalid_init_data"


def test_tables_made_by_an_earlier_release_are_upgraded_on_first_use(database_url, make_shop):
    """The default set-up (STARS_CREATE_TABLES) made its tables with create_all and no
    version row; a new release upgrades them on first use, keeping the pending order."""
    engine = sa.create_engine(database_url)
    with engine.begin() as conn:
        upgrade(conn, "stars_0002")
        conn.execute(sa.text("DROP TABLE stars_alembic_version"))  # as create_all left them
        now = utcnow().replace(tzinfo=None)
        conn.execute(
            sa.text(
                "INSERT INTO stars_orders (id, user_id, pack_id, stars, status, created_at, expires_at)"
                " VALUES ('oldorder1', 42, 'stars_pack_1', 10, 'pending', :now, :later)"
            ),
            {"now": now, "later": now.replace(year=now.year + 1)},
        )
    engine.dispose()
    shop = make_shop()
    _order_id, attempt = shop.buy(43)  # a new order: made with the upgraded schema
    assert attempt.ok and attempt.payment.body["detail"] == "credited"
    assert shop.balance(43) == 1_000_000
    (old,) = shop.rows(Order, id="oldorder1")
    assert old.status == "pending" and old.pack_title is None
    assert shop.rows(Order, user_id=43)[0].pack_title == "Starter pack"

