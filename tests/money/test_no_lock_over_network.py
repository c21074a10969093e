"""No database lock or open write transaction is held while Telegram is called.

The app's engine reports, per thread, when a transaction starts writing or locking
(INSERT/UPDATE/DELETE, SELECT ... FOR UPDATE, an advisory lock, SQLite's BEGIN IMMEDIATE)
and when it ends; every Bot API call telebot makes checks, in the calling thread, that
its transaction is not such a one.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
import sqlalchemy as sa
from telebot import apihelper

from tests.support import hostapp
from tests.support.subscriptions import MONTHLY

LOCKING = ("INSERT", "UPDATE", "DELETE", "BEGIN IMMEDIATE")


@pytest.fixture
def watched_shop(make_shop: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    shop = make_shop(STARS_PACKS=[*hostapp.PACKS, MONTHLY], mount="extension")
    with shop.app.app_context():
        engine = hostapp.db.engine
    writing: set[int] = set()  # threads whose transaction writes or locks

    def on_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        text = statement.lstrip().upper()
        if text.startswith(LOCKING) or "FOR UPDATE" in text or "PG_ADVISORY_XACT_LOCK" in text:
            writing.add(threading.get_ident())

    def on_end(conn: Any) -> None:
        writing.discard(threading.get_ident())

    sa.event.listen(engine, "before_cursor_execute", on_execute)
    sa.event.listen(engine, "commit", on_end)
    sa.event.listen(engine, "rollback", on_end)
    shop.calls_in_a_write_transaction = []
    shop.calls_made = []
    make_request = apihelper._make_request

    def checked(token: str, method_name: str, *args: Any, **kwargs: Any) -> Any:
        shop.calls_made.append(method_name)
        if threading.get_ident() in writing:
            shop.calls_in_a_write_transaction.append(method_name)
        return make_request(token, method_name, *args, **kwargs)

    monkeypatch.setattr(apihelper, "_make_request", checked)
    yield shop
    for name, fn in (("before_cursor_execute", on_execute), ("commit", on_end), ("rollback", on_end)):
        sa.event.remove(engine, name, fn)


def test_no_bot_api_call_happens_inside_an_open_write_transaction(watched_shop):
    shop = watched_shop
    order = shop.invoice(42).json()  # createInvoiceLink
    first = shop.tg.pay(order["invoice_url"], 42)  # answerPreCheckoutQuery, then the payment
    assert first.ok and shop.balance(42) == 1_000_000
    charge2, update2 = shop.tg.charge(order["invoice_url"], 42)  # paid twice: refund + message
    assert shop.tg.deliver(update2).status == 200
    with shop.app.app_context():
        shop.app.extensions["test_stars"].refund(first.charge_id, reason="asked")  # refundStarPayment
    sub = shop.invoice(43, "monthly").json()
    assert shop.tg.pay(sub["invoice_url"], 43).ok
    (listed,) = shop.http.get(shop.url("/subscriptions"), headers=shop.auth(43)).json()["subscriptions"]
    cancel = shop.http.post(shop.url(f"/subscriptions/{listed['id']}/cancel"), headers=shop.auth(43))
    assert cancel.status_code == 200  # editUserStarSubscription
    shop.tg.send_text(44, "/buy_stars stars_pack_2")  # sendInvoice from the chat
    result = shop.app.test_cli_runner().invoke(args=["stars", "reconcile"])  # getStarTransactions
    assert result.exit_code == 0, result.output
    methods = set(shop.calls_made)
    assert {
        "createInvoiceLink",
        "answerPreCheckoutQuery",
        "refundStarPayment",
        "sendMessage",
        "editUserStarSubscription",
        "sendInvoice",
        "getStarTransactions",
    } <= methods
    assert shop.calls_in_a_write_transaction == []
    assert charge2
