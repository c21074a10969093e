"""The host's own TeleBot: non-payment updates reach it; payments never depend on its threads."""

from __future__ import annotations

import threading

from telebot import TeleBot, types

from flask_stars.testing import TEST_TOKEN
from tests.support.shop import load_update, refunded_payment_update


def test_threaded_host_bot_gets_other_updates_and_payments_stay_synchronous(make_shop):
    bot = TeleBot(TEST_TOKEN, threaded=True)  # telebot's default: handlers run in a thread pool
    got_text = threading.Event()

    @bot.message_handler(commands=["start"])
    def start(msg):
        got_text.set()

    shop = make_shop(mount="extension", bot=bot)
    assert shop.tg.send_text(5, "/start").status == 200
    assert got_text.wait(5), "the host bot never saw /start"

    order_id, attempt = shop.buy(5)
    # The webhook answered 200 only after crediting: the balance is already there.
    assert attempt.payment.status == 200 and attempt.payment.body["detail"] == "credited"
    assert shop.balance(5) == 1_000_000
    assert shop.order_status(order_id, 5).json()["status"] == "paid"


def test_threaded_host_bot_callback_failure_still_makes_telegram_redeliver(make_shop):
    bot = TeleBot(TEST_TOKEN, threaded=True)
    shop = make_shop(mount="extension", bot=bot)
    shop.credit_log.fail_next = 1
    _, attempt = shop.buy(5)
    assert attempt.payment.status == 500
    assert shop.tg.deliver(attempt.payment_update).status == 200
    assert shop.balance(5) == 1_000_000


def test_buy_command_works_on_a_threaded_host_bot(make_shop):
    bot = TeleBot(TEST_TOKEN, threaded=True)
    shop = make_shop(mount="extension", bot=bot)
    shop.tg.send_text(5, "/buy_stars stars_pack_2")
    (sent,) = shop.tg.wait_for_call("sendInvoice")
    assert sent["chat_id"] == "5"


def test_host_bot_errors_do_not_fail_the_webhook(make_shop):
    bot = TeleBot(TEST_TOKEN, threaded=False)

    @bot.message_handler(commands=["boom"])
    def boom(msg):
        raise RuntimeError("host handler bug")

    shop = make_shop(mount="extension", bot=bot)
    resp = shop.tg.send_text(5, "/boom")
    assert resp.status == 200 and resp.body["detail"] == "bot error"


def test_polling_bot_with_register_handlers_credits_and_debits(make_shop):
    """A polling bot gets telebot objects; register_handlers runs the same money path."""
    shop = make_shop(mount="extension", STARS_BUY_COMMAND=None)
    polling_bot = TeleBot(TEST_TOKEN, threaded=False)
    shop.app.extensions["test_stars"].register_handlers(polling_bot, shop.app)

    order = shop.invoice(11).json()
    inv = shop.tg.invoice(order["invoice_url"])
    pre = load_update("pre_checkout_query")
    pre["pre_checkout_query"].update(from_={}, invoice_payload=inv.payload, total_amount=10)
    pre["pre_checkout_query"]["from"]["id"] = 11
    del pre["pre_checkout_query"]["from_"]
    polling_bot.process_new_updates([types.Update.de_json(pre)])
    (answer,) = shop.tg.calls_to("answerPreCheckoutQuery")
    assert answer["ok"] == "True"

    paid = load_update("successful_payment")
    msg = paid["message"]
    msg["from"]["id"] = msg["chat"]["id"] = 11
    msg["successful_payment"].update(invoice_payload=inv.payload, total_amount=10)
    polling_bot.process_new_updates([types.Update.de_json(paid)])
    polling_bot.process_new_updates([types.Update.de_json(paid)])  # getUpdates replays after a restart
    assert shop.balance(11) == 1_000_000

    refund = refunded_payment_update("stxAbC123exampleOpaqueChargeId", 11, inv.payload)
    # telebot 4.37 gives this message content_type None; the handler must still fire.
    assert types.Update.de_json(refund).message.content_type is None
    polling_bot.process_new_updates([types.Update.de_json(refund)])
    assert shop.balance(11) == 0
    assert len(shop.credit_log.debits) == 1
