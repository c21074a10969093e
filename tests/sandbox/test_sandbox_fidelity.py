"""The sandbox punishes what Telegram's Bot API punishes, and sends what Telegram sends.

Each check names where Telegram's behaviour comes from: the Bot API server's source
(tdlib/telegram-bot-api, ``Client.cpp`` and ``WebhookActor.cpp``), the Bot API docs, or
Telegram's servers (the upper-case errors, ``QUERY_ID_INVALID``). A bot's webhook here is a
small WSGI app on 127.0.0.1 that answers pre-checkout queries through the Bot API.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from flask_stars.sandbox import (
    PRE_CHECKOUT_DEADLINE,
    SUBSCRIPTION_PERIOD,
    TEST_USERS,
    QuietRequestHandler,
    Sandbox,
)
from flask_stars.testing import TEST_TOKEN

BOT_ID = int(TEST_TOKEN.split(":")[0])
IVAN: dict[str, Any] = dict(TEST_USERS[1])  # Russian-speaking, with a username
QUERY_TOO_OLD = "Bad Request: query is too old and response timeout expired or query ID is invalid"
ONE_OFF = {
    "title": "Starter",
    "description": "1,000,000 coins",
    "payload": "order:fidelity",
    "currency": "XTR",
}


def _call(tg: Sandbox, method: str, **params: Any) -> dict[str, Any]:
    """A Bot API call with every parameter in the query string, as telebot sends them."""
    body: dict[str, Any] = requests.post(
        f"{tg.url}/bot{TEST_TOKEN}/{method}", params=params, timeout=10
    ).json()
    return body


def _call_json(tg: Sandbox, method: str, **params: Any) -> dict[str, Any]:
    """A Bot API call with a JSON body (numbers as numbers, lists as lists), as aiogram sends them."""
    body: dict[str, Any] = requests.post(f"{tg.url}/bot{TEST_TOKEN}/{method}", json=params, timeout=10).json()
    return body


def _link(tg: Sandbox, amount: int = 10, **extra: Any) -> str:
    body = _call(
        tg, "createInvoiceLink", **ONE_OFF, prices=json.dumps([{"label": "x", "amount": amount}]), **extra
    )
    assert body["ok"], body
    link: str = body["result"]
    return link


class Hook:
    """A bot's webhook: keeps every update and answers each pre-checkout query through the Bot
    API (after ``answer_after`` seconds; never if None), then answers the POST ``status``."""

    def __init__(
        self, tg: Sandbox, *, answer_after: float | None = 0.0, hold: float = 0.0, gather: int = 0
    ) -> None:
        self.tg = tg
        self.answer_after = answer_after
        self.hold = hold
        self.gather = gather  # hold each request until this many have arrived (at most 5 s)
        self.status = "200 OK"  # the reason phrase as sent: Telegram reports it as it came
        self.updates: list[dict[str, Any]] = []
        self.answers: list[dict[str, Any]] = []
        self.in_flight = 0
        self.peak = 0
        self._cond = threading.Condition()
        self._server = make_server(
            "127.0.0.1", 0, self._wsgi, threaded=True, request_handler=QuietRequestHandler
        )
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05})

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/webhook"

    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        update = Request(environ).get_json(force=True, silent=True) or {}
        with self._cond:
            self.updates.append(update)
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            self._cond.notify_all()
        try:
            time.sleep(self.hold)
            with self._cond:
                self._cond.wait_for(lambda: len(self.updates) >= self.gather, timeout=5)
            query = update.get("pre_checkout_query")
            if query and self.answer_after is not None:
                time.sleep(self.answer_after)
                answer = _call(
                    self.tg, "answerPreCheckoutQuery", pre_checkout_query_id=query["id"], ok="True"
                )
                with self._cond:
                    self.answers.append(answer)
        finally:
            with self._cond:
                self.in_flight -= 1
        return Response(b"", self.status)(environ, start_response)

    def wait(self, match: Callable[[dict[str, Any]], bool], timeout: float = 5.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for update in self.updates:
                    if match(update):
                        return update
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no such update reached the webhook")
                self._cond.wait(left)

    def kinds(self) -> list[str]:
        with self._cond:
            return [next(k for k in u if k != "update_id") for u in self.updates]


@contextmanager
def hook(tg: Sandbox, **kwargs: Any) -> Iterator[Hook]:
    h = Hook(tg, **kwargs)
    h._thread.start()
    try:
        yield h
    finally:
        h._server.shutdown()
        h._server.server_close()
        h._thread.join(timeout=5)


def _set_webhook(tg: Sandbox, url: str, **params: Any) -> dict[str, Any]:
    return _call(tg, "setWebhook", url=url, secret_token="s3cret", **params)


def _info(tg: Sandbox) -> dict[str, Any]:
    body = _call(tg, "getWebhookInfo")
    assert body["ok"], body
    info: dict[str, Any] = body["result"]
    return info


def _refunded(update: dict[str, Any]) -> bool:
    return "refunded_payment" in (update.get("message") or {})


# --- 1. allowed_updates ------------------------------------------------------------------------


def test_a_pre_checkout_outside_allowed_updates_never_reaches_the_bot_and_the_payment_fails(sandbox):
    tg = sandbox
    with hook(tg) as h:
        assert _set_webhook(tg, h.url, allowed_updates=json.dumps(["message"]))["ok"]
        attempt = tg.pay(_link(tg), 42, answer_timeout=3)
        # Telegram never queues it (Client.cpp add_update_impl skips an unallowed type): the
        # bot cannot answer, so the buyer's payment fails as unanswered.
        assert not attempt.ok and attempt.error_message == "pre-checkout not answered in time"
        assert "pre_checkout_query" not in h.kinds() and h.answers == []
        assert [d.dropped for d in tg.dropped] == [
            "pre_checkout_query is not in the webhook's allowed_updates"
        ]
        assert tg.balance == 0 and tg.transactions == []
        # The same bot with pre-checkout queries allowed gets paid.
        assert _set_webhook(tg, h.url, allowed_updates=json.dumps(["message", "pre_checkout_query"]))["ok"]
        assert tg.pay(_link(tg), 42).ok
        assert h.kinds() == ["pre_checkout_query", "message"]


def test_allowed_updates_are_sticky_and_reported(sandbox):
    """Bot API docs (setWebhook): "If not specified, the previous setting will be used";
    Client.cpp get_allowed_update_types / JsonWebhookInfo."""
    tg = sandbox
    with hook(tg) as h:
        assert "allowed_updates" not in _info(tg)  # the default is never listed
        _set_webhook(tg, h.url, allowed_updates=json.dumps(["message"]))
        _set_webhook(tg, h.url, max_connections=5)  # no allowed_updates: the list stays
        assert _info(tg)["allowed_updates"] == ["message"]
        assert tg.press_button(42, "stars_pack_1").status == 0  # not posted
        _call(tg, "deleteWebhook")
        _set_webhook(tg, h.url)
        assert _info(tg)["allowed_updates"] == ["message"]
        assert h.updates == []
        # A list given replaces it; listed in the server's order, upper case and unknown names
        # read as Client.cpp reads them (lower-cased; unknown ones ignored).
        _set_webhook(tg, h.url, allowed_updates=json.dumps(["CALLBACK_QUERY", "message", "no_such_update"]))
        assert _info(tg)["allowed_updates"] == ["message", "callback_query"]
        assert tg.press_button(42, "stars_pack_1").status == 200
        # An empty list (or one with no known name) is the default again; a list that is not
        # JSON keeps the last one.
        _set_webhook(tg, h.url, allowed_updates="[]")
        assert "allowed_updates" not in _info(tg)
        _set_webhook(tg, h.url, allowed_updates="message")
        assert "allowed_updates" not in _info(tg)


def test_the_default_leaves_out_chat_member_and_reactions(sandbox):
    tg = sandbox
    with hook(tg) as h:
        _set_webhook(tg, h.url)
        member = {"update_id": tg.next_id(), "chat_member": {"chat": {"id": -1, "type": "group"}}}
        assert tg.deliver(member).dropped
        assert tg.send_text(42, "hi").status == 200
        assert h.kinds() == ["message"]


# --- 2. ids ------------------------------------------------------------------------------------


def test_update_and_message_ids_fit_signed_32_bits_and_never_repeat(sandbox):
    tg = sandbox
    ids: list[int] = []
    lock = threading.Lock()

    def take() -> None:
        got = [tg.next_id() for _ in range(2000)]
        with lock:
            ids.extend(got)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with hook(tg) as h:
        _set_webhook(tg, h.url)
        attempt = tg.pay(_link(tg), IVAN)
        sent = _call(tg, "sendMessage", chat_id=IVAN["id"], text="thanks")["result"]
    assert attempt.ok and attempt.payment_update is not None
    for update in h.updates:
        ids.append(update["update_id"])
        if "message" in update:
            ids.append(update["message"]["message_id"])
    ids.append(sent["message_id"])
    assert all(0 < i < 2**31 for i in ids), max(ids)
    assert len(set(ids)) == len(ids)


# --- 3. who sends what -------------------------------------------------------------------------


def _paid_subscription(tg: Sandbox, h: Hook) -> str:
    link = _call(
        tg,
        "createInvoiceLink",
        **{**ONE_OFF, "payload": "sub:fidelity"},
        prices=json.dumps([{"label": "Monthly", "amount": 250}]),
        subscription_period=SUBSCRIPTION_PERIOD,
    )["result"]
    attempt = tg.pay(link, IVAN)
    assert attempt.ok and attempt.charge_id
    return attempt.charge_id


def test_a_renewal_is_the_buyers_message(sandbox):
    tg = sandbox
    with hook(tg) as h:
        _set_webhook(tg, h.url)
        first = _paid_subscription(tg, h)
        renewal_id, _ = tg.renew(first)
        renewal = h.wait(
            lambda u: (
                (u.get("message") or {}).get("successful_payment", {}).get("telegram_payment_charge_id")
                == renewal_id
            )
        )
    message = renewal["message"]
    assert message["from"] == IVAN  # their User, language_code "ru" included
    assert message["chat"] == {
        "id": IVAN["id"],
        "first_name": IVAN["first_name"],
        "username": IVAN["username"],
        "type": "private",
    }


def test_the_refund_after_the_bots_refundstarpayment_is_the_bots_message(sandbox):
    """Client.cpp need_skip_update_message lets the outgoing messagePaymentRefunded through;
    aiogram issue #1692: ``from_user`` of that refunded_payment is the bot."""
    tg = sandbox
    with hook(tg) as h:
        _set_webhook(tg, h.url)
        charge = tg.pay(_link(tg), IVAN).charge_id
        assert _call(tg, "refundStarPayment", user_id=IVAN["id"], telegram_payment_charge_id=charge)["ok"]
        refund = h.wait(_refunded)["message"]
    assert refund["from"] == {
        "id": BOT_ID,
        "is_bot": True,
        "first_name": "Sandbox Bot",
        "username": "sandbox_stars_bot",
    }
    assert refund["chat"]["id"] == IVAN["id"] and refund["chat"]["first_name"] == IVAN["first_name"]
    assert refund["refunded_payment"]["telegram_payment_charge_id"] == charge


def test_a_refund_made_elsewhere_names_the_buyer_as_telegram_knows_them(sandbox):
    tg = sandbox
    with hook(tg) as h:
        _set_webhook(tg, h.url)
        charge = tg.pay(_link(tg), IVAN).charge_id
        assert charge is not None
        tg.refund(charge)
        refund = h.wait(_refunded)["message"]
    assert refund["from"] == IVAN


def test_star_transactions_name_the_buyer(sandbox):
    tg = sandbox
    with hook(tg) as h:
        _set_webhook(tg, h.url)
        charge = tg.pay(_link(tg), IVAN).charge_id
        _call(tg, "refundStarPayment", user_id=IVAN["id"], telegram_payment_charge_id=charge)
    paid, refunded = _call(tg, "getStarTransactions")["result"]["transactions"]
    assert paid["source"]["user"] == IVAN and refunded["receiver"]["user"] == IVAN


# --- 4. the bot's own messages -----------------------------------------------------------------


def test_messages_the_bot_sends_are_from_the_bot_in_a_named_private_chat(sandbox):
    tg = sandbox
    bot = {"id": BOT_ID, "is_bot": True, "first_name": "Sandbox Bot", "username": "sandbox_stars_bot"}
    chat = {"id": IVAN["id"], "first_name": "Иван", "username": "ivan_test", "type": "private"}
    keyboard = {"inline_keyboard": [[{"text": "10 ⭐", "callback_data": "stars_pack_1"}]]}
    with hook(tg) as h:
        _set_webhook(tg, h.url)
        tg.send_text(IVAN, "/buy_stars")  # Telegram knows the user from their own message
        sent = _call(tg, "sendMessage", chat_id=IVAN["id"], text="Packs:", reply_markup=json.dumps(keyboard))
        invoice = _call(
            tg,
            "sendInvoice",
            chat_id=IVAN["id"],
            **ONE_OFF,
            prices=json.dumps([{"label": "x", "amount": 10}]),
        )["result"]
        tg.press_button(IVAN, "stars_pack_1")
        pressed = h.wait(lambda u: "callback_query" in u)["callback_query"]
    for message in (sent["result"], invoice, pressed["message"]):
        assert message["from"] == bot
        assert message["chat"] == chat
        assert 0 < message["message_id"] < 2**31
    assert invoice["invoice"]["total_amount"] == 10
    # The sent Message keeps its inline keyboard, and a press carries that very message.
    assert sent["result"]["text"] == "Packs:" and sent["result"]["reply_markup"] == keyboard
    assert pressed["message"] == sent["result"]
    assert pressed["from"] == IVAN


# --- 5. parameters, read as the server reads them ------------------------------------------------


@pytest.mark.parametrize(
    ("params", "first", "count"),
    [
        ({}, 0, 5),
        ({"offset": "abc"}, 0, 5),  # get_integer_arg: td::to_integer("abc") == 0
        ({"limit": "abc"}, 0, 1),  # ... 0, clamped to 1
        ({"limit": "0"}, 0, 1),
        ({"limit": "-7"}, 0, 1),
        ({"limit": "1000"}, 0, 5),  # clamped to 100
        ({"offset": "-3", "limit": "2"}, 0, 2),  # offset clamped to 0
        ({"offset": "2", "limit": "2x"}, 2, 2),  # leading digits: "2x" reads 2
        ({"offset": "9"}, 5, 0),
    ],
)
def test_star_transactions_offset_and_limit_as_get_integer_arg_reads_them(sandbox, params, first, count):
    tg = sandbox
    inv = tg.invoice(_link(tg))
    charges = [tg.charge(inv, 42)[0] for _ in range(5)]
    body = _call(tg, "getStarTransactions", **params)
    assert body["ok"], body
    assert [t["id"] for t in body["result"]["transactions"]] == charges[first : first + count]


def test_numbers_given_as_strings_are_numbers(sandbox):
    """td's JsonObject::get_required_long_field takes a Number or a String holding one."""
    tg = sandbox
    body = _call(tg, "createInvoiceLink", **ONE_OFF, prices=json.dumps([{"label": "x", "amount": "10"}]))
    assert body["ok"], body
    assert tg.invoice(body["result"]).amount == 10
    # A JSON body's numbers, lists and booleans are read like their text in a query string.
    body = _call_json(
        tg,
        "createInvoiceLink",
        **ONE_OFF,
        prices=[{"label": "Monthly", "amount": 250}],
        subscription_period=SUBSCRIPTION_PERIOD,
    )
    assert body["ok"], body
    assert tg.invoice(body["result"]).subscription_period == SUBSCRIPTION_PERIOD
    for amount, words in [
        ("10.5", "must be a valid Number"),
        (True, "must be a Number"),
        (1.0, "must be a valid Number"),
    ]:
        body = _call(
            tg, "createInvoiceLink", **ONE_OFF, prices=json.dumps([{"label": "x", "amount": amount}])
        )
        assert body["error_code"] == 400 and f'Field "amount" {words}' in body["description"], body


def test_max_connections_is_clamped_to_1_100(sandbox):
    tg = sandbox
    for given, kept in [(None, 40), ("0", 1), ("1000", 100), ("abc", 1), ("7", 7)]:
        params = {} if given is None else {"max_connections": given}
        assert _call(tg, "setWebhook", url="https://shop.example/stars/webhook", **params)["ok"]
        assert _info(tg)["max_connections"] == kept


# --- 6. errors in Telegram's words -------------------------------------------------------------


def test_error_texts_are_telegrams(sandbox):
    tg = sandbox
    prices = json.dumps([{"label": "", "amount": 10}])
    # Client.cpp get_labeled_price_parts / get_labeled_price_part, through fail_query_with_error.
    assert _call(tg, "createInvoiceLink", **ONE_OFF, prices=prices)["description"] == (
        "Bad Request: can't parse labeled price: LabeledPrice label must be non-empty"
    )
    assert _call(tg, "createInvoiceLink", **ONE_OFF, prices=json.dumps([{"amount": 10}]))["description"] == (
        "Bad Request: can't parse labeled price: Can't find field \"label\""
    )
    good = json.dumps([{"label": "x", "amount": 10}])
    # Client.cpp check_chat.
    assert _call(tg, "sendInvoice", **ONE_OFF, prices=good) == {
        "ok": False,
        "error_code": 400,
        "description": "Bad Request: chat_id is empty",
    }
    assert _call(tg, "sendMessage", text="hi")["description"] == "Bad Request: chat_id is empty"
    # TDLib (InputInvoice.cpp): the total must be positive.
    zero = json.dumps([{"label": "x", "amount": 0}])
    assert _call(tg, "createInvoiceLink", **ONE_OFF, prices=zero)["description"] == (
        "Bad Request: total price must be positive"
    )


def test_an_answer_to_a_query_never_sent_is_refused(sandbox):
    """Telegram's QUERY_ID_INVALID, in Client.cpp fail_query_with_error's words."""
    tg = sandbox
    for query_id in ("1", "4530283817365227871", ""):
        assert _call(tg, "answerPreCheckoutQuery", pre_checkout_query_id=query_id, ok="True") == {
            "ok": False,
            "error_code": 400,
            "description": QUERY_TOO_OLD,
        }


def test_a_query_posted_to_the_app_by_a_test_itself_can_be_expected(sandbox):
    tg = sandbox
    tg.expect_pre_checkout("q-made-up-by-a-load-generator")
    ok = _call(tg, "answerPreCheckoutQuery", pre_checkout_query_id="q-made-up-by-a-load-generator", ok="True")
    assert ok == {"ok": True, "result": True}
    tg.expect_pre_checkout("q-too-late", answer_timeout=0)
    late = _call(tg, "answerPreCheckoutQuery", pre_checkout_query_id="q-too-late", ok="True")
    assert late["description"] == QUERY_TOO_OLD


@pytest.mark.parametrize(
    "url", ["not a url", "ftp://shop.example/hook", "https://shop.example:99999/", "https://"]
)
def test_a_malformed_webhook_url_is_refused(sandbox, url):
    """Client.cpp do_set_webhook: td::parse_url fails -> "invalid webhook URL specified"."""
    body = _call(sandbox, "setWebhook", url=url)
    assert body == {
        "ok": False,
        "error_code": 400,
        "description": "Bad Request: invalid webhook URL specified",
    }
    assert _info(sandbox)["url"] == ""


def test_set_webhook_answers_as_the_server_does(sandbox):
    tg = sandbox
    assert _call(tg, "setWebhook", url="https://shop.example/hook")["description"] == "Webhook was set"
    assert _call(tg, "setWebhook", url="https://shop.example/hook")["description"] == "Webhook is already set"
    assert _call(tg, "setWebhook", url="https://shop.example/hook", secret_token="é")["description"] == (
        "Bad Request: secret token contains unallowed characters"
    )
    assert _call(tg, "deleteWebhook")["description"] == "Webhook was deleted"
    assert _call(tg, "deleteWebhook")["description"] == "Webhook is already deleted"


# --- 7. timing ---------------------------------------------------------------------------------


def test_the_pre_checkout_deadline_is_telegrams_10_seconds():
    assert PRE_CHECKOUT_DEADLINE == 10.0


def test_a_late_pre_checkout_answer_is_refused_and_nothing_is_charged(sandbox):
    tg = sandbox
    with hook(tg, answer_after=1.0) as h:
        _set_webhook(tg, h.url)
        started = time.monotonic()
        attempt = tg.pay(_link(tg), 42, answer_timeout=0.4)
        # The buyer's payment fails at the deadline, not when the bot finally answers.
        assert time.monotonic() - started < 0.9
        assert not attempt.ok and attempt.error_message == "pre-checkout not answered in time"
        h.wait(lambda u: "pre_checkout_query" in u)
        deadline = time.monotonic() + 5
        while not h.answers and time.monotonic() < deadline:
            time.sleep(0.05)
    assert h.answers == [{"ok": False, "error_code": 400, "description": QUERY_TOO_OLD}]
    assert h.kinds() == ["pre_checkout_query"]  # no successful_payment
    assert tg.balance == 0 and tg.transactions == []


def test_an_answer_in_time_is_taken_and_a_second_one_refused(sandbox):
    tg = sandbox
    with hook(tg, answer_after=0.2) as h:
        _set_webhook(tg, h.url)
        attempt = tg.pay(_link(tg), 42, answer_timeout=2)
    assert attempt.ok and h.answers == [{"ok": True, "result": True}]
    again = _call(tg, "answerPreCheckoutQuery", pre_checkout_query_id=attempt.query_id, ok="True")
    assert again["description"] == QUERY_TOO_OLD


def _deliver_all(tg: Sandbox, count: int) -> list[threading.Thread]:
    threads = [threading.Thread(target=tg.send_text, args=(100 + i, f"hi {i}")) for i in range(count)]
    for t in threads:
        t.start()
    return threads


def test_max_connections_caps_concurrent_deliveries_and_pending_updates_are_counted(sandbox):
    tg = sandbox
    with hook(tg, hold=0.6) as h:
        _set_webhook(tg, h.url, max_connections=2)
        assert _info(tg)["max_connections"] == 2
        threads = _deliver_all(tg, 6)
        seen = 0
        deadline = time.monotonic() + 3
        while seen < 6 and time.monotonic() < deadline:
            seen = max(seen, _info(tg)["pending_update_count"])
        assert seen == 6  # two in flight, four waiting their turn
        for t in threads:
            t.join()
        assert h.peak == 2 and len(h.updates) == 6
        assert _info(tg)["pending_update_count"] == 0


def test_the_default_is_40_connections(sandbox):
    tg = sandbox
    with hook(tg, gather=6) as h:  # each request waits for all six: they must be in flight at once
        _set_webhook(tg, h.url)
        assert _info(tg)["max_connections"] == 40
        started = time.monotonic()
        for t in _deliver_all(tg, 6):
            t.join()
        assert h.peak == 6 and time.monotonic() - started < 4


def test_failed_deliveries_are_reported_as_telegram_reports_them(sandbox):
    """WebhookActor.cpp handle(): "Wrong response from the webhook: <code> <reason>"."""
    tg = sandbox
    with hook(tg) as h:
        _set_webhook(tg, h.url)
        assert "last_error_date" not in _info(tg)
        h.status = "500 Internal Server Error"
        failed = tg.send_text(42, "hi")
        assert failed.status == 500
        info = _info(tg)
        assert info["last_error_message"] == "Wrong response from the webhook: 500 Internal Server Error"
        assert abs(info["last_error_date"] - time.time()) < 5
        assert info["pending_update_count"] == 1  # Telegram keeps trying
        h.status = "200 OK"
        assert tg.deliver(failed.update).status == 200
        info = _info(tg)
        assert info["pending_update_count"] == 0 and "last_error_message" in info
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    _set_webhook(tg, f"http://127.0.0.1:{closed}/webhook")
    assert "last_error_message" not in _info(tg)  # a new webhook starts clean
    with pytest.raises(requests.ConnectionError):
        tg.send_text(42, "hi")
    assert _info(tg)["last_error_message"] == "Connection refused"
