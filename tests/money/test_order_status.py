"""GET /stars/orders/<id>?wait=N: the Mini App confirms "paid" from the server, not the browser."""

from __future__ import annotations

import threading
import time


def test_wait_returns_as_soon_as_the_payment_lands(shop):
    order = shop.invoice(42).json()
    attempt = shop.tg.pay(order["invoice_url"], 42, deliver_payment=False)

    def later():
        time.sleep(0.6)
        shop.tg.deliver(attempt.payment_update)

    threading.Thread(target=later).start()
    started = time.monotonic()
    status = shop.order_status(order["order_id"], 42, wait=10).json()
    waited = time.monotonic() - started
    assert status["status"] == "paid"
    assert 0.5 < waited < 5


def test_wait_gives_up_after_n_seconds_while_pending(shop):
    order = shop.invoice(42).json()
    started = time.monotonic()
    status = shop.order_status(order["order_id"], 42, wait=0.5).json()
    assert status["status"] == "pending"
    assert 0.4 < time.monotonic() - started < 3


def test_no_wait_answers_at_once(shop):
    order = shop.invoice(42).json()
    started = time.monotonic()
    assert shop.order_status(order["order_id"], 42).json()["status"] == "pending"
    assert time.monotonic() - started < 1


def test_bad_wait_is_400(shop):
    order = shop.invoice(42).json()
    for bad in ("-1", "soon"):
        resp = shop.http.get(
            shop.url(f"/orders/{order['order_id']}"), params={"wait": bad}, headers=shop.auth(42)
        )
        assert resp.status_code == 400 and "wait" in resp.json()["fields"]


def test_expired_pending_order_reads_expired(make_shop):
    from datetime import timedelta

    import sqlalchemy as sa

    from flask_stars.models import Order, utcnow

    shop = make_shop()
    order = shop.invoice(42).json()
    with shop.app.app_context():
        session = shop.app.extensions["stars"].session
        session.execute(sa.update(Order).values(expires_at=utcnow() - timedelta(seconds=1)))
        session.commit()
    assert shop.order_status(order["order_id"], 42).json()["status"] == "expired"
    # A new click makes a new order rather than handing out the dead one.
    assert shop.invoice(42).json()["order_id"] != order["order_id"]
