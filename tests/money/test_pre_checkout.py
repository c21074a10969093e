"""Every pre-checkout rule of DESIGN §4: approve what can be credited, refuse the rest with a reason."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from flask_stars import pre_checkout_rejected
from flask_stars.models import Order, utcnow


def _set_order(shop, order_id, **values):
    with shop.app.app_context():
        session = shop.app.extensions["stars"].session
        session.execute(sa.update(Order).where(Order.id == order_id).values(**values))
        session.commit()


def _answer(shop):
    return shop.tg.calls_to("answerPreCheckoutQuery")[-1]


def test_valid_order_is_approved(shop):
    resp = shop.invoice(42).json()
    attempt = shop.tg.pay(resp["invoice_url"], 42, deliver_payment=False)
    assert attempt.ok
    assert _answer(shop)["ok"] == "True"
    assert "error_message" not in _answer(shop)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("unknown_payload", "This invoice is not valid any more"),
        ("foreign_payload", "This invoice is not valid any more"),
        ("wrong_amount", "The amount does not match"),
        ("wrong_currency", "must be paid in Telegram Stars"),
        ("other_user", "made for another user"),
        ("already_paid", "already paid or closed"),
        ("expired", "has expired"),
    ],
)
def test_refusals_answer_ok_false_with_a_reason(shop, case, expected):
    rejected = []

    def on_reject(sender, **kw):
        rejected.append(kw["reason"])

    pre_checkout_rejected.connect(on_reject)
    try:
        order = shop.invoice(42).json()
        inv = shop.tg.invoice(order["invoice_url"])
        kwargs = {}
        payer = 42
        if case == "unknown_payload":
            inv.payload = "order:doesnotexist"
        elif case == "foreign_payload":
            inv.payload = "something-else-entirely"
        elif case == "wrong_amount":
            kwargs["total_amount"] = 1
        elif case == "wrong_currency":
            kwargs["currency"] = "USD"
        elif case == "other_user":
            payer = 77
        elif case == "already_paid":
            shop.tg.pay(inv, 42)
            assert shop.balance(42) == 1_000_000
        elif case == "expired":
            _set_order(shop, order["order_id"], expires_at=utcnow() - timedelta(seconds=1))
        attempt = shop.tg.pay(inv, payer, **kwargs)
        deadline = time.monotonic() + 5
        while not rejected and time.monotonic() < deadline:
            time.sleep(0.02)  # sent once the answer is on its way
    finally:
        pre_checkout_rejected.disconnect(on_reject)

    assert not attempt.ok
    answer = _answer(shop)
    assert answer["ok"] == "False"
    assert expected in answer["error_message"]
    assert rejected, "pre_checkout_rejected was not sent"
    # A refused pre-checkout never charges, so nothing more was credited.
    assert shop.balance(42) == (1_000_000 if case == "already_paid" else 0)
    assert shop.balance(77) == 0


def test_refusal_speaks_russian_to_russian_clients(shop):
    inv = shop.tg.invoice(shop.invoice(42).json()["invoice_url"])
    shop.tg.pay(inv, {"id": 42, "is_bot": False, "first_name": "Аня", "language_code": "ru"}, total_amount=5)
    assert _answer(shop)["error_message"] == "Сумма не совпадает с заказом. Начните покупку заново."


def test_gifts_allowed_lets_another_user_pay_for_the_owner(make_shop):
    shop = make_shop(STARS_ALLOW_GIFTS=True)
    order = shop.invoice(42).json()
    attempt = shop.tg.pay(order["invoice_url"], 77)
    assert attempt.ok
    assert shop.balance(42) == 1_000_000  # the owner gets the goods
    assert shop.balance(77) == 0
    (payment,) = shop.payments()
    assert (payment.user_id, payment.payer_id) == (42, 77)


def test_second_concurrent_pre_checkout_is_refused_while_the_first_holds(shop):
    order = shop.invoice(42).json()
    first = shop.tg.pay(order["invoice_url"], 42, deliver_payment=False)  # approved, not yet paid
    assert first.ok
    second = shop.tg.pay(order["invoice_url"], 42, deliver_payment=False)  # another device
    assert not second.ok
    assert "already being paid" in second.error_message
    # Telegram redelivering the *same* query is approved again (idempotent).
    again = shop.tg.deliver(first.pre_checkout.update)
    assert again.status == 200
    assert shop.tg.calls_to("answerPreCheckoutQuery")[-1]["ok"] == "True"
    held = shop.order(order["order_id"])
    assert held.held_by == 42 and held.hold_query_id == first.query_id


def test_hold_expires_so_a_later_attempt_is_approved(make_shop):
    shop = make_shop(STARS_PRE_CHECKOUT_HOLD=1)
    order = shop.invoice(42).json()
    assert shop.tg.pay(order["invoice_url"], 42, deliver_payment=False).ok
    _set_order(shop, order["order_id"], held_until=utcnow() - timedelta(seconds=1))
    assert shop.tg.pay(order["invoice_url"], 42).ok
    assert shop.balance(42) == 1_000_000


def test_payment_approved_before_expiry_is_credited_after_it(shop):
    order = shop.invoice(42).json()
    attempt = shop.tg.pay(order["invoice_url"], 42, deliver_payment=False)
    assert attempt.ok
    _set_order(shop, order["order_id"], expires_at=utcnow() - timedelta(seconds=5))
    shop.tg.deliver(attempt.payment_update)
    assert shop.balance(42) == 1_000_000
    assert shop.order_status(order["order_id"], 42).json()["status"] == "paid"


def _logged_pre_checkouts(shop, count=1):
    import time

    deadline = time.monotonic() + 5
    while len(rows := shop.updates(kind="pre_checkout_query")) < count and time.monotonic() < deadline:
        time.sleep(0.02)  # logged once the answer is on its way
    return rows


def test_pre_checkout_is_logged_after_answering(shop):
    inv = shop.tg.invoice(shop.invoice(42).json()["invoice_url"])
    shop.tg.pay(inv, 42, total_amount=3)
    (row,) = _logged_pre_checkouts(shop)
    assert row.processed and row.error == "wrong_amount"


def test_answer_in_the_webhook_reply_saves_the_round_trip(make_shop):
    shop = make_shop(STARS_ANSWER_IN_RESPONSE=True)
    order = shop.invoice(42).json()
    attempt = shop.tg.pay(order["invoice_url"], 42)
    assert attempt.ok and shop.balance(42) == 1_000_000
    assert attempt.pre_checkout.body == {
        "method": "answerPreCheckoutQuery",
        "pre_checkout_query_id": attempt.query_id,
        "ok": True,
    }
    (answer,) = [c for c in shop.tg.calls if c.method == "answerPreCheckoutQuery"]
    assert answer.http_method == "WEBHOOK-REPLY"  # no Bot API request was made
    # The hold is taken in this mode too: a second device is refused while it lasts.
    other = shop.invoice(42, "stars_pack_2").json()
    assert shop.tg.pay(other["invoice_url"], 42, deliver_payment=False).ok
    assert shop.order(other["order_id"]).hold_query_id is not None
    second = shop.tg.pay(other["invoice_url"], 42, deliver_payment=False)
    assert not second.ok and "already being paid" in second.pre_checkout.body["error_message"]
    refused = shop.tg.pay(order["invoice_url"], 42, deliver_payment=False)
    assert not refused.ok and "already paid" in refused.pre_checkout.body["error_message"]
    # The two refusals are logged with their reasons; the approvals live in their holds.
    assert sorted(r.error for r in _logged_pre_checkouts(shop, 2)) == ["order_held", "order_not_pending"]


def test_only_the_hold_commits_without_waiting_for_the_disk(shop, database_url):
    """PostgreSQL: the hold's commit may skip the disk flush; the payment's never does."""
    if not database_url.startswith("postgresql"):
        pytest.skip("synchronous_commit is PostgreSQL's")
    from tests.support import hostapp

    with shop.app.app_context():
        engine = hostapp.db.engine
    commits: list[tuple[str, str]] = []  # (what the transaction wrote first, synchronous_commit)
    first_write: dict[int, str] = {}

    def on_execute(conn, cursor, statement, *args):
        words = statement.split()
        if words[0].upper() in ("INSERT", "UPDATE"):
            table = words[1] if words[0].upper() == "UPDATE" else words[2]
            first_write.setdefault(id(conn), f"{words[0].lower()} {table}")

    def on_commit(conn):
        mode = conn.exec_driver_sql("SHOW synchronous_commit").scalar()  # still inside the transaction
        commits.append((first_write.pop(id(conn), "nothing"), mode))

    sa.event.listen(engine, "before_cursor_execute", on_execute)
    sa.event.listen(engine, "commit", on_commit)
    try:
        order = shop.invoice(42).json()
        commits.clear()
        attempt = shop.tg.pay(order["invoice_url"], 42)
    finally:
        sa.event.remove(engine, "before_cursor_execute", on_execute)
        sa.event.remove(engine, "commit", on_commit)
    assert attempt.ok and shop.balance(42) == 1_000_000
    assert commits == [("update stars_orders", "off"), ("insert stars_updates", "on")]
