"""Refunds: stars.refund / flask stars refund, Telegram's refunded_payment, and the debit callback."""

from __future__ import annotations

import time

from flask_stars import payment_refunded


def _wait(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_refund_calls_telegram_and_debits_once(make_shop):
    shop = make_shop(mount="extension")
    seen = []
    payment_refunded.connect(lambda sender, **kw: seen.append(kw["reason"]), weak=False)
    try:
        _, attempt = shop.buy(42)
        assert shop.balance(42) == 1_000_000
        with shop.app.app_context():
            payment = shop.app.extensions["test_stars"].refund(attempt.charge_id, reason="user asked")
        assert payment.status == "refunded"
        (call,) = shop.tg.calls_to("refundStarPayment")
        assert call == {"user_id": "42", "telegram_payment_charge_id": attempt.charge_id}
        assert shop.balance(42) == 0
        # Telegram then sends refunded_payment (the sandbox does, like Telegram): nothing more.
        _wait(lambda: any("refunded_payment" in (d.update.get("message") or {}) for d in shop.tg.deliveries))
        _wait(lambda: shop.tg.deliveries[-1].status == 200)
        assert shop.balance(42) == 0
        assert len(shop.credit_log.debits) == 1
        # Once, from whichever applied it first: this call, or Telegram's refunded_payment
        # racing it (which carries no reason).
        assert len(seen) == 1 and seen[0] in ("user asked", None)
    finally:
        payment_refunded.receivers.clear()


def test_charge_already_refunded_still_ends_refunded(shop):
    _, attempt = shop.buy(42)
    shop.tg.deliver_refund_updates = False
    shop.tg.refund(attempt.charge_id)  # refunded elsewhere; its update was lost
    assert shop.payments()[0].status == "paid"
    result = shop.app.test_cli_runner().invoke(args=["stars", "refund", attempt.charge_id])
    assert result.exit_code == 0, result.output
    assert "refunded" in result.output
    assert shop.payments()[0].status == "refunded"
    assert shop.balance(42) == 0


def test_refund_twice_is_harmless(shop):
    _, attempt = shop.buy(42)
    runner = shop.app.test_cli_runner()
    assert runner.invoke(args=["stars", "refund", attempt.charge_id]).exit_code == 0
    assert runner.invoke(args=["stars", "refund", attempt.charge_id]).exit_code == 0
    assert len(shop.tg.calls_to("refundStarPayment")) == 1
    assert len(shop.credit_log.debits) == 1


def test_refund_of_unknown_charge_is_a_clear_error(shop):
    result = shop.app.test_cli_runner().invoke(args=["stars", "refund", "stxNope"])
    assert result.exit_code != 0 and "No payment" in result.output


def test_telegram_refusing_the_refund_leaves_the_ledger_alone(shop):
    _, attempt = shop.buy(42)
    shop.tg.fail("refundStarPayment", 400, "Bad Request: CHARGE_NOT_FOUND")
    result = shop.app.test_cli_runner().invoke(args=["stars", "refund", attempt.charge_id])
    assert result.exit_code != 0 and "CHARGE_NOT_FOUND" in result.output
    assert shop.payments()[0].status == "paid" and shop.balance(42) == 1_000_000


def test_refund_made_by_telegram_support_debits_once(shop):
    order_id, attempt = shop.buy(42)
    shop.tg.refund(attempt.charge_id)  # not through the bot; Telegram still tells the bot
    _wait(lambda: shop.payments()[0].status == "refunded")
    assert shop.balance(42) == 0
    assert shop.order(order_id).status == "refunded"


def test_refund_of_a_charge_we_have_not_seen_waits_for_it(shop):
    order = shop.invoice(42).json()
    attempt = shop.tg.pay(order["invoice_url"], 42, deliver_payment=False)  # the webhook is lost
    shop.tg.refund(attempt.charge_id)
    _wait(
        lambda: len(shop.rows(__import__("flask_stars.models", fromlist=["RefundNotice"]).RefundNotice)) == 1
    )
    shop.tg.deliver(attempt.payment_update)  # the payment shows up late
    assert shop.balance(42) == 0
    assert shop.payments()[0].status == "refunded"
