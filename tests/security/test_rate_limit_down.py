"""The rate-limit storage down: refused with 503 and Retry-After (fail-closed), logged,
counted, and the chat tells the buyer to try again later. Never a bare 500, never silence,
never an invoice made past a limit nobody counted."""

from __future__ import annotations

import logging
import socket
import uuid
from typing import Any

import pytest

from flask_stars.metrics import metrics_registry
from flask_stars.models import Order
from flask_stars.ratelimit import STORAGE_RETRY_AFTER
from flask_stars.sandbox import make_user
from tests.support.tcpproxy import TcpProxy

REDIS_PORT = 6379
INVOICE_METHODS = ("sendInvoice", "createInvoiceLink")


def _closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on: every connection is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _down(**config: Any) -> dict[str, Any]:
    return {"STARS_RATE_LIMIT_STORAGE": f"redis://127.0.0.1:{_closed_port()}", **config}


def _user() -> int:
    """A user id no earlier run has counted in the shared Redis."""
    return int(uuid.uuid4().int % 10**9) + 10**9


def _redis_up() -> None:
    import redis

    try:
        redis.Redis(host="127.0.0.1", port=REDIS_PORT, socket_timeout=1).ping()
    except redis.RedisError:
        pytest.skip(f"no Redis on 127.0.0.1:{REDIS_PORT}")


def _invoices_sent(shop: Any) -> int:
    return sum(len(shop.tg.calls_to(method)) for method in INVOICE_METHODS)


def _unavailable(shop: Any, limit: str) -> float:
    value = metrics_registry(shop.app).get_sample_value(
        "flask_stars_rate_limit_unavailable_total", {"limit": limit}
    )
    return 0.0 if value is None else value


def _assert_503(resp: Any) -> None:
    assert resp.status_code == 503, resp.text
    assert resp.json()["error"] == "rate_limit_unavailable"
    assert resp.json()["message"]
    assert int(resp.headers["Retry-After"]) == STORAGE_RETRY_AFTER


def test_invoice_is_503_with_retry_after_and_nothing_is_made(make_shop: Any, caplog: Any) -> None:
    shop = make_shop(**_down(STARS_METRICS=True))
    with caplog.at_level(logging.ERROR, logger="flask_stars.ratelimit"):
        resp = shop.invoice(42)
    _assert_503(resp)
    assert shop.rows(Order) == [] and _invoices_sent(shop) == 0  # nothing made, nothing sent
    (record,) = [r for r in caplog.records if r.name == "flask_stars.ratelimit"]
    assert "rate-limit storage unreachable" in record.getMessage()
    assert "Connection refused" in record.getMessage()
    assert _unavailable(shop, "invoice") == 1
    _assert_503(shop.invoice(43))
    assert _unavailable(shop, "invoice") == 2


def test_subscription_change_is_503_too(make_shop: Any) -> None:
    shop = make_shop(**_down(STARS_METRICS=True))
    resp = shop.http.post(shop.url("/subscriptions/1/cancel"), headers=shop.auth(42))
    _assert_503(resp)
    assert shop.tg.calls_to("editUserStarSubscription") == []
    assert _unavailable(shop, "subscription") == 1


def test_the_chat_command_says_try_again_later_in_the_buyers_language(make_shop: Any) -> None:
    shop = make_shop(**_down(STARS_METRICS=True))
    shop.tg.send_text(make_user(11, language_code="ru"), "/buy_stars stars_pack_1")
    shop.tg.send_text(make_user(12, language_code="en"), "/buy_stars stars_pack_1")
    assert _invoices_sent(shop) == 0
    ru, en = shop.tg.calls_to("sendMessage")
    assert (ru["chat_id"], en["chat_id"]) == ("11", "12")
    assert ru["text"].startswith("Покупки ненадолго приостановлены")
    assert en["text"] == "Purchases are paused for a moment. Please try again in a few minutes."
    assert _unavailable(shop, "invoice") == 2


def test_a_pack_button_gets_the_notice_in_its_callback_answer(make_shop: Any) -> None:
    shop = make_shop(**_down())
    assert shop.tg.press_button(7, "stars:buy:stars_pack_1").status == 200
    assert _invoices_sent(shop) == 0
    (answer,) = shop.tg.calls_to("answerCallbackQuery")
    assert answer["text"].startswith("Purchases are paused")
    assert shop.tg.calls_to("sendMessage") == []


def test_the_list_of_packs_still_shows(make_shop: Any) -> None:
    """Only what is counted waits for the storage; ``/buy_stars`` alone is not counted."""
    shop = make_shop(**_down())
    shop.tg.send_text(7, "/buy_stars")
    (offer,) = shop.tg.calls_to("sendMessage")
    assert "Choose a pack" in offer["text"]
    assert shop.http.get(shop.url("/packs")).status_code == 200


def test_with_redis_up_it_counts_and_sells(make_shop: Any) -> None:
    _redis_up()
    shop = make_shop(
        STARS_RATE_LIMIT_STORAGE=f"redis://127.0.0.1:{REDIS_PORT}", STARS_INVOICE_RATE_LIMIT="2/minute"
    )
    user = _user()
    assert [shop.invoice(user).status_code for _ in range(3)] == [201, 200, 429]
    other = _user()
    shop.tg.press_button(other, "stars:buy:stars_pack_1")
    attempt = shop.tg.pay(shop.tg.last_invoice(chat_id=other), other)
    assert attempt.ok and shop.balance(other) == 1_000_000


def test_redis_going_down_and_coming_back(make_shop: Any) -> None:
    """Down: 503 at once (no hang, no silent pass); back: selling again, with no restart."""
    _redis_up()
    proxy = TcpProxy(REDIS_PORT).start()
    try:
        shop = make_shop(STARS_RATE_LIMIT_STORAGE=f"redis://127.0.0.1:{proxy.port}")
        user = _user()
        assert shop.invoice(user).status_code == 201
        proxy.stop()
        _assert_503(shop.invoice(user))
        proxy.start()
        assert shop.invoice(user).status_code == 200  # the same pending order
    finally:
        proxy.stop()
