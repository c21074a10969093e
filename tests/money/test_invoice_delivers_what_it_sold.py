"""A payment delivers what its invoice sold, whatever the catalogue says later; a forged renewal
of an ordinary pack credits nothing."""

from __future__ import annotations

import json

import sqlalchemy as sa

from flask_stars.migrations import upgrade
from flask_stars.models import Order, payload_for, utcnow
from flask_stars.packs import Catalogue
from flask_stars.state import get_state
from tests.support import hostapp


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
