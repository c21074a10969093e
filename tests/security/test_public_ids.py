"""Ids in public URLs are checked against what their column can hold: 404 with the
blueprint's JSON error, never a 500 (``isdigit()`` took "²"; PostgreSQL refuses a NUL)."""

from __future__ import annotations

from typing import Any

import pytest

from flask_stars.models import Order

BAD_ORDER_IDS = [
    "%00",  # NUL: PostgreSQL cannot hold it in text
    "abc%00def",
    "a" * 33,  # longer than stars_orders.id
    "%C3%A9t%C3%A9",  # é: not the alphabet of new_order_id
    "%F0%9F%98%80",
    "a%20b",
    "a.b",
    "%ED%A0%80",  # a lone surrogate's bytes: not even UTF-8
]
BAD_SUBSCRIPTION_IDS = [
    "%C2%B2",  # "²": str.isdigit() says yes, int() says no
    "%EF%BC%91",  # a fullwidth "1"
    "-1",
    "1e3",
    "%201",
    "1%0A",
    "9223372036854775808",  # 2**63: past a BIGINT
    "99999999999999999999",
    "0" * 20,
    "9" * 5000,  # past int()'s digit limit, too
    "%00",
]


@pytest.mark.parametrize("order_id", BAD_ORDER_IDS)
def test_an_order_id_no_order_can_have_is_404(shop: Any, order_id: str) -> None:
    resp = shop.http.get(shop.url(f"/orders/{order_id}"), headers=shop.auth(42))
    assert resp.status_code == 404, resp.text
    assert resp.json() == {"error": "order_not_found", "message": "No such order."}
    long_poll = shop.http.get(shop.url(f"/orders/{order_id}"), headers=shop.auth(42), params={"wait": 1})
    assert long_poll.status_code == 404


def test_a_bad_order_id_without_init_data_is_still_401(shop: Any) -> None:
    """initData first: nobody learns anything about ids without it."""
    resp = shop.http.get(shop.url("/orders/%00"))
    assert resp.status_code == 401 and resp.json()["error"] == "invalid_init_data"


def test_every_real_order_id_is_still_found(shop: Any) -> None:
    """The full alphabet of ``token_urlsafe`` (an old id may start with "-")."""
    order_id = shop.invoice(42).json()["order_id"]
    assert shop.order_status(order_id, 42).json()["order_id"] == order_id
    with shop.app.app_context():
        session = shop.app.extensions["stars"].session
        for odd in ("-Ab_9", "_" * 32):
            session.execute(Order.__table__.update().where(Order.id == order_id).values(id=odd))
            session.commit()
            body = shop.order_status(odd, 42).json()
            assert body["order_id"] == odd and body["status"] == "pending"
            order_id = odd
    assert shop.order_status(order_id, 43).status_code == 404  # still only its owner's


@pytest.mark.parametrize("subscription_id", BAD_SUBSCRIPTION_IDS)
@pytest.mark.parametrize("action", ["cancel", "enable"])
def test_a_subscription_id_no_row_can_have_is_404(shop: Any, subscription_id: str, action: str) -> None:
    resp = shop.http.post(shop.url(f"/subscriptions/{subscription_id}/{action}"), headers=shop.auth(42))
    assert resp.status_code == 404, resp.text
    assert resp.json() == {"error": "subscription_not_found", "message": "No such subscription."}


@pytest.mark.parametrize("subscription_id", ["9223372036854775807", "0", "1", "000000000000000000001"])
def test_an_id_the_column_can_hold_is_looked_up(shop: Any, subscription_id: str) -> None:
    """The largest BIGINT is a lookup (none there: 404), not an error of the database."""
    resp = shop.http.post(shop.url(f"/subscriptions/{subscription_id}/cancel"), headers=shop.auth(42))
    assert resp.status_code == 404 and resp.json()["error"] == "subscription_not_found"


def test_the_openapi_document_says_what_an_id_is(shop: Any) -> None:
    spec = shop.http.get(shop.url("/openapi.json")).json()
    (order_id,) = spec["paths"]["/stars/orders/{order_id}"]["get"]["parameters"][:1]
    assert order_id["schema"]["pattern"] == "^[A-Za-z0-9_-]{1,32}$"
    sub = spec["paths"]["/stars/subscriptions/{subscription_id}/{action}"]["post"]
    assert sub["parameters"][0]["schema"] == {"type": "integer", "format": "int64", "minimum": 0}
    assert (
        "rate_limit_unavailable" in spec["paths"]["/stars/invoice"]["post"]["responses"]["503"]["description"]
    )
