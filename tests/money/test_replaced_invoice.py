"""An invoice whose order was replaced by a newer one is refused, saying why; the new one pays.

``operations.invoice.pending_order`` retires a pending order (status ``expired``) when the buyer asks
for the pack again and the pack changed, or under a quarter of the order's time is left.
The buyer may still hold the old invoice (a ``sendInvoice`` message in the chat, a link):
paying it is refused with "replaced by a newer one", not "already paid or closed", and
nothing is credited.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from flask_stars.messages import message
from flask_stars.models import Order, utcnow
from flask_stars.packs import Catalogue
from flask_stars.sandbox import make_user
from tests.support import hostapp


def _reprice(shop: Any, stars: int) -> None:
    """The operator changes the price of stars_pack_1 (a deploy with a new catalogue)."""
    shop.app.extensions["stars"].packs = Catalogue([{**hostapp.PACKS[0], "stars": stars}, hostapp.PACKS[1]])


def _set_expiry(shop: Any, order_id: str, expires_at: Any) -> None:
    with shop.app.app_context():
        session = shop.app.extensions["stars"].session
        session.execute(sa.update(Order).where(Order.id == order_id).values(expires_at=expires_at))
        session.commit()


def _order_id(invoice: Any) -> str:
    return str(invoice.payload).removeprefix("order:")


def test_the_old_chat_invoice_after_a_price_change_is_refused_and_the_new_one_pays(shop: Any) -> None:
    shop.tg.send_text(7, "/buy_stars stars_pack_1")
    old = shop.tg.last_invoice(chat_id=7)
    _reprice(shop, 15)
    shop.tg.send_text(7, "/buy_stars stars_pack_1")
    new = shop.tg.last_invoice(chat_id=7)
    assert (old.amount, new.amount) == (10, 15) and old.payload != new.payload

    refused = shop.tg.pay(old, 7)
    assert not refused.ok and refused.charge_id is None
    assert refused.error_message == message("order_replaced", "en")
    assert shop.payments() == [] and shop.balance(7) == 0
    assert shop.order(_order_id(old)).status == "expired"

    paid = shop.tg.pay(new, 7)
    assert paid.ok and shop.balance(7) == 1_000_000
    (payment,) = shop.payments()
    assert payment.stars == 15 and payment.order_id == _order_id(new)


def test_a_second_click_late_in_the_orders_life_replaces_it_in_russian_too(shop: Any) -> None:
    """Under a quarter of STARS_ORDER_TTL left: the next click makes a new order."""
    ivan = make_user(11, language_code="ru")
    first = shop.invoice(11).json()
    _set_expiry(shop, first["order_id"], utcnow() + timedelta(minutes=10))  # of 60
    second = shop.invoice(11)
    assert second.status_code == 201 and second.json()["order_id"] != first["order_id"]

    refused = shop.tg.pay(first["invoice_url"], ivan)
    assert not refused.ok and refused.error_message == message("order_replaced", "ru")
    assert shop.payments() == [] and shop.balance(11) == 0

    assert shop.tg.pay(second.json()["invoice_url"], ivan).ok
    assert shop.balance(11) == 1_000_000


def test_a_replaced_order_whose_time_ran_out_has_simply_expired(shop: Any) -> None:
    shop.tg.send_text(7, "/buy_stars stars_pack_1")
    old = shop.tg.last_invoice(chat_id=7)
    _reprice(shop, 15)
    shop.tg.send_text(7, "/buy_stars stars_pack_1")
    _set_expiry(shop, _order_id(old), utcnow() - timedelta(seconds=1))
    refused = shop.tg.pay(old, 7)
    assert not refused.ok and refused.error_message == message("order_expired")
    assert shop.payments() == []


def test_a_paid_order_still_says_paid_or_closed(shop: Any) -> None:
    order_id, attempt = shop.buy(7)
    assert attempt.ok
    again = shop.tg.pay(shop.tg.invoice(f"order:{order_id}"), 7)
    assert not again.ok and again.error_message == message("order_not_pending")
    assert shop.balance(7) == 1_000_000
