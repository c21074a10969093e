"""Availability: no kind of request from the Mini App can take the threads Telegram needs.

- Long-polls (``GET /stars/orders/<id>?wait=25``) are bounded per user and per process, so
  a pre-checkout is answered in time even under 32 concurrent waits (gunicorn gthread).
- ``POST /stars/invoice`` checks initData before it reads the body: a body that never
  comes parks no thread.
- Subscription changes are limited per user, on their own count.

Load goes to 127.0.0.1 only and every loop is bounded in count and time.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import sqlalchemy as sa

from flask_stars.config import default_webhook_secret
from flask_stars.sandbox import Sandbox
from flask_stars.testing import TEST_TOKEN, init_data_header
from flask_stars.waits import WaitGate
from tests.support import hostapp
from tests.support.gunicorn_run import gunicorn, open_invoice
from tests.support.shop import Shop
from tests.support.subscriptions import MONTHLY

WORKERS = 2
THREADS = 4
WAITS = 32
#: Telegram's own deadline is 10 s; "well inside" it is what a buyer needs.
PRE_CHECKOUT_BUDGET = 3.0


# --- a gunicorn gthread server, 2 workers x 4 threads, with the default STARS_ORDER_WAITS_* ---


class Gunicorn:
    """``tests.support.served_app`` under gunicorn gthread, its Bot API pointed at the sandbox."""

    def __init__(self, base: str, database_url: str, sandbox: Sandbox) -> None:
        self.base = base
        self.tg = sandbox
        self.engine = sa.create_engine(database_url)

    def invoice(self, user_id: int, pack_id: str = "stars_pack_1") -> dict[str, Any]:
        return open_invoice(self.base, user_id, pack_id)

    def execute(self, sql: str, **params: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.text(sql), params)


@pytest.fixture
def gthread(database_url: str, sandbox: Sandbox, tmp_path: Path) -> Iterator[Gunicorn]:
    spool = tmp_path / "spool"
    with gunicorn(database_url, sandbox.url, spool, workers=WORKERS, threads=THREADS) as (_proc, base):
        sandbox.set_webhook_target(base + "/stars/webhook", default_webhook_secret(TEST_TOKEN))
        server = Gunicorn(base, database_url, sandbox)
        try:
            yield server
        finally:
            server.engine.dispose()


@pytest.mark.parametrize("pollers", ["one user", "32 users"])
def test_long_polls_never_starve_a_pre_checkout(
    gthread: Gunicorn, pollers: str, figure: Callable[[str], None]
) -> None:
    users = [42] * WAITS if pollers == "one user" else list(range(5000, 5000 + WAITS))
    order_of = {user: gthread.invoice(user)["order_id"] for user in set(users)}
    buyer_order = gthread.invoice(77, "stars_pack_2")
    answered: list[tuple[float, int, str]] = []

    def long_poll(user: int) -> None:
        started = time.monotonic()
        resp = requests.get(
            f"{gthread.base}/stars/orders/{order_of[user]}",
            params={"wait": 25},
            headers=init_data_header(TEST_TOKEN, user),
            timeout=40,
        )
        answered.append((time.monotonic() - started, resp.status_code, resp.json().get("status")))

    with ThreadPoolExecutor(max_workers=WAITS) as pool:
        polls = [pool.submit(long_poll, user) for user in users]
        time.sleep(1.5)  # every long-poll has reached the server; the refused ones are answered
        at_once = len(answered)

        started = time.monotonic()
        attempt = gthread.tg.pay(buyer_order["invoice_url"], 77, deliver_payment=False)
        pre_checkout = time.monotonic() - started
        started = time.monotonic()
        packs = requests.get(gthread.base + "/stars/packs", timeout=30)
        innocent = time.monotonic() - started

        # End the held waits: their orders leave "pending", so they answer within a poll.
        gthread.execute(
            "UPDATE stars_orders SET status = 'expired' WHERE status = 'pending' AND user_id <> 77"
        )
        for poll in polls:
            poll.result(timeout=30)

    held = [a for a in answered if a[2] == "expired"]
    figure(
        f"\n[gthread {WORKERS}x{THREADS}] {WAITS} long-polls (?wait=25) from {pollers}: {at_once} answered "
        f"at once, {len(held)} held; a pre-checkout answered in {pre_checkout:.2f} s, "
        f"GET /stars/packs in {innocent:.2f} s"
    )
    assert attempt.ok, attempt
    assert pre_checkout < PRE_CHECKOUT_BUDGET
    assert packs.status_code == 200 and innocent < PRE_CHECKOUT_BUDGET
    assert all(code == 200 for _took, code, _status in answered)
    # Defaults: 2 waits per user and 2 in all, per process: at most 4 held by 2 workers.
    assert len(held) <= 2 * WORKERS
    assert at_once >= WAITS - 2 * WORKERS
    assert all(status == "pending" and took < 1.5 for took, _code, status in answered if status != "expired")


def test_wait_gate_counts_per_user_and_in_all() -> None:
    gate = WaitGate(per_user=2, total=3)
    with gate.slot(1) as a, gate.slot(1) as b, gate.slot(1) as c:
        assert (a, b, c) == (True, True, False)  # a third wait of one user is refused
        with gate.slot(2) as d, gate.slot(3) as e:
            assert (d, e) == (True, False)  # three in all
            assert gate.active == 3
    assert gate.active == 0
    with pytest.raises(RuntimeError), gate.slot(1) as f:
        assert f
        raise RuntimeError("the view failed")
    assert gate.active == 0  # a slot is given back whatever happens

    gate = WaitGate(per_user=2, total=5)
    taken: list[bool] = []
    barrier = threading.Barrier(20)

    def take(user: int) -> None:
        barrier.wait()
        taken.append(gate.try_acquire(user))

    threads = [threading.Thread(target=take, args=(i % 4,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    assert taken.count(True) == 5 and gate.active == 5


def test_no_long_poll_waits_when_waits_are_turned_off(make_shop: Callable[..., Shop]) -> None:
    shop = make_shop(STARS_ORDER_WAITS_MAX=0)
    order = shop.invoice(42).json()
    started = time.monotonic()
    resp = shop.order_status(order["order_id"], 42, wait=10)
    assert resp.status_code == 200 and resp.json()["status"] == "pending"
    assert time.monotonic() - started < 1.5


# --- slow bodies ------------------------------------------------------------------------------


def test_an_unauthenticated_invoice_request_is_refused_before_its_body_arrives(shop: Shop) -> None:
    url = urlsplit(shop.url("/invoice"))
    head = (
        f"POST {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: application/json\r\n"
        "Content-Length: 100000\r\n\r\n"
    ).encode()
    started = time.monotonic()
    with socket.create_connection((url.hostname, url.port), timeout=3) as sock:
        sock.sendall(head + b'{"pack_id": ')  # ... and the rest never comes
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    took = time.monotonic() - started
    assert reply.split(b" ", 2)[1] == b"401", reply
    assert took < 2


# --- subscription changes are throttled -------------------------------------------------------


def test_subscription_changes_are_limited_per_user_on_their_own_count(make_shop: Callable[..., Shop]) -> None:
    shop = make_shop(STARS_PACKS=[*hostapp.PACKS, MONTHLY], STARS_SUBSCRIPTION_RATE_LIMIT="3/minute")
    order = shop.invoice(42, "monthly").json()
    assert shop.tg.pay(order["invoice_url"], 42).ok
    (sub,) = shop.http.get(shop.url("/subscriptions"), headers=shop.auth(42)).json()["subscriptions"]

    codes = []
    for action in ("cancel", "enable", "cancel", "enable"):
        resp = shop.http.post(shop.url(f"/subscriptions/{sub['id']}/{action}"), headers=shop.auth(42))
        codes.append(resp.status_code)
    assert codes == [200, 200, 200, 429]
    assert resp.json()["error"] == "rate_limited"
    assert 1 <= int(resp.headers["Retry-After"]) <= 60
    assert len(shop.tg.calls_to("editUserStarSubscription")) == 3  # the 4th never reached Telegram

    # Its own count: the same user can still buy, and another user can still cancel.
    assert shop.invoice(42, "stars_pack_2").status_code == 201
    resp = shop.http.post(shop.url(f"/subscriptions/{sub['id']}/cancel"), headers=shop.auth(43))
    assert resp.status_code == 404  # not theirs, but not throttled


def test_a_slow_answer_to_one_pre_checkout_delays_no_other_buyer(
    gthread: Gunicorn, figure: Callable[[str], None]
) -> None:
    """Telegram takes 8 s to take user A's pre-checkout answer: B pays and C opens an
    invoice meanwhile, as fast as ever (no lock is held while A's answer travels)."""
    a_order, b_order = gthread.invoice(4001), gthread.invoice(4002)
    quick = gthread.tg.pay(gthread.invoice(4004)["invoice_url"], 4004)  # the no-delay figure
    assert quick.ok and quick.payment is not None and quick.payment.status == 200
    gthread.tg.delay("answerPreCheckoutQuery", 8)
    with ThreadPoolExecutor(max_workers=1) as pool:
        slow = pool.submit(gthread.tg.pay, a_order["invoice_url"], 4001)
        time.sleep(0.5)  # A's pre-checkout is decided and its answer is on the way
        started = time.monotonic()
        paid = gthread.tg.pay(b_order["invoice_url"], 4002)
        b_took = time.monotonic() - started
        started = time.monotonic()
        gthread.invoice(4003)
        c_took = time.monotonic() - started
        a_still_waiting = not slow.done()
        a = slow.result(timeout=30)
    figure(
        f"\n[gthread {WORKERS}x{THREADS}] while Telegram took 8 s over A's pre-checkout answer: "
        f"B paid in {b_took:.2f} s, C's invoice in {c_took:.2f} s"
    )
    assert a_still_waiting  # the measurements above happened during A's 8 s
    assert paid.ok and paid.payment is not None and paid.payment.status == 200
    assert paid.payment.body["detail"] == "credited"
    assert b_took < PRE_CHECKOUT_BUDGET and c_took < PRE_CHECKOUT_BUDGET
    assert a.ok and a.payment is not None and a.payment.body["detail"] == "credited"
    with gthread.engine.connect() as conn:
        coins = dict(conn.execute(sa.text("SELECT id, coins FROM host_users WHERE id IN (4001, 4002)")).all())
    assert coins == {4001: 1_000_000, 4002: 1_000_000}
