"""Two real Bot API clients witness what the sandbox sends: python-telegram-bot 22 and aiogram 3.

Neither was written here, and both deserialise strictly into typed objects, so they are
independent witnesses of the sandbox's wire format:

- every Bot API method the sandbox implements is called through both clients, with the
  arguments a Stars shop sends, and each result must parse into the client's typed object
  with no unknown field anywhere in it (PTB keeps unknown keys in ``api_kwargs``, aiogram in
  ``model_extra``);
- every kind of update the sandbox delivers (pre-checkout, one-off payment, subscription first
  payment and renewal, refund, subscription state change, ``/buy_stars``, a button press) is
  captured at a webhook on 127.0.0.1 the clients themselves set with ``setWebhook``, parsed by
  both clients the same strict way, and routed through an aiogram ``Dispatcher`` and a PTB
  ``Application`` to the handler a bot would use for it.

The checks assert Telegram's behaviour, not the sandbox's: a failure means the sandbox differs
from Telegram (unless the Bot API docs say otherwise). A difference accepted for a while is
marked ``xfail(strict=True, reason="sandbox: ...")``, so the check fails again once it is fixed
and the mark can go. The scenario runs once per client (module-scoped) and takes seconds.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import copy
import datetime as dt
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import telegram
import telegram.error
from aiogram import Bot as AiogramBot
from aiogram import Dispatcher, F, Router
from aiogram import types as at
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramBadRequest, TelegramUnauthorizedError
from aiogram.filters import Command
from pydantic import BaseModel
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    PreCheckoutQueryHandler,
    TypeHandler,
    filters,
)
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from flask_stars.sandbox import SUBSCRIPTION_PERIOD, TEST_USERS, PaymentAttempt, QuietRequestHandler, Sandbox
from flask_stars.testing import TEST_TOKEN


def run_in_own_loop(coro: Any) -> Any:
    """``asyncio.run(coro)`` in a thread of its own: an earlier test in the session (the
    browser tests' Playwright) may leave an event loop running in this thread."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


CLIENTS = ("ptb", "aiogram")
SECRET = "conformance-Secret_42"
#: The payer: a full Telegram user (Russian-speaking, with a username), as the sandbox page offers.
PAYER: dict[str, Any] = dict(TEST_USERS[1])
ONE_OFF = {"title": "Starter pack", "description": "1,000,000 coins", "payload": "order:conformance-1"}
MONTHLY = {
    "title": "Monthly",
    "description": "Premium, renewed monthly",
    "payload": "sub:premium:conformance",
}
ONE_OFF_STARS = 10
MONTHLY_STARS = 250
REFUSAL = "Пакет закончился. The pack is sold out."
CHOOSE_TEXT = "Choose a pack:"
PACK_BUTTONS: dict[str, Any] = {
    "inline_keyboard": [
        [{"text": "Starter pack — 10 ⭐", "callback_data": "stars_pack_1"}],
        [{"text": "Premium pack — 40 ⭐", "callback_data": "stars_pack_2"}],
    ]
}
#: Every update type the scenario needs, as a bot would pass it to setWebhook.
ALLOWED_UPDATES = ["message", "callback_query", "pre_checkout_query", "subscription"]
INT32_MAX = 2**31 - 1

#: Update kinds captured at the webhook, each with the handler it must reach.
MESSAGE_KINDS = (
    "successful_payment",
    "subscription_first_payment",
    "subscription_renewal",
    "refunded_payment",
    "command",
)
KINDS = (
    "pre_checkout_query",
    "pre_checkout_query_subscription",
    *MESSAGE_KINDS,
    "subscription",
    "callback_query",
)
ROUTES = {
    "pre_checkout_query": "pre_checkout_query",
    "pre_checkout_query_subscription": "pre_checkout_query",
    "successful_payment": "successful_payment",
    "subscription_first_payment": "successful_payment",
    "subscription_renewal": "successful_payment",
    "refunded_payment": "refunded_payment",
    "command": "command",
    "subscription": "subscription",
    "callback_query": "callback_query",
}

#: The typed object each Bot API method's result must parse into: (PTB, aiogram).
RESULT_TYPES: dict[str, tuple[type, type]] = {
    "getMe": (telegram.User, at.User),
    "setWebhook": (bool, bool),
    "getWebhookInfo": (telegram.WebhookInfo, at.WebhookInfo),
    "deleteWebhook": (bool, bool),
    "createInvoiceLink": (str, str),
    "sendInvoice": (telegram.Message, at.Message),
    "sendMessage": (telegram.Message, at.Message),
    "answerPreCheckoutQuery": (bool, bool),
    "answerCallbackQuery": (bool, bool),
    "refundStarPayment": (bool, bool),
    "editUserStarSubscription": (bool, bool),
    "getStarTransactions": (telegram.StarTransactions, at.StarTransactions),
    "getMyStarBalance": (telegram.StarAmount, at.StarAmount),
}


# --- strictness: unknown fields anywhere in a parsed tree -----------------------------------


def ptb_unknown_fields(obj: Any, path: str = "") -> list[str]:
    """Paths of keys PTB did not know (kept in ``api_kwargs``), in the whole object tree."""
    found: list[str] = []
    if isinstance(obj, telegram.TelegramObject):
        here = path or type(obj).__name__
        found += [f"{here}.{key}" for key in obj.api_kwargs]
        names = {n for cls in type(obj).__mro__ for n in getattr(cls, "__slots__", ())}
        for name in sorted(names):
            if name.startswith("_") or name == "api_kwargs":
                continue
            found += ptb_unknown_fields(getattr(obj, name, None), f"{here}.{name}")
    elif isinstance(obj, (list, tuple)):
        for i, item in enumerate(obj):
            found += ptb_unknown_fields(item, f"{path}[{i}]")
    return found


def aiogram_unknown_fields(obj: Any, path: str = "") -> list[str]:
    """Paths of keys aiogram did not know (kept in ``model_extra``), in the whole object tree."""
    found: list[str] = []
    if isinstance(obj, BaseModel):
        here = path or type(obj).__name__
        found += [f"{here}.{key}" for key in (obj.model_extra or {})]
        for name, info in type(obj).model_fields.items():
            found += aiogram_unknown_fields(getattr(obj, name, None), f"{here}.{info.alias or name}")
    elif isinstance(obj, (list, tuple)):
        for i, item in enumerate(obj):
            found += aiogram_unknown_fields(item, f"{path}[{i}]")
    return found


#: Update fields newer than the installed PTB: it keeps them in ``Update.api_kwargs`` by design.
#: ``subscription`` (BotSubscriptionUpdated) is Bot API 10.2; PTB 22.8 implements Bot API 10.0.
PTB_TOO_OLD_FOR = {"Update.subscription"} if telegram.__bot_api_version_info__ < (10, 2) else set()


# --- the clients ----------------------------------------------------------------------------


def snake(method: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", method).lower()


class Witness:
    """One client calling the sandbox by Bot API method name, with Bot API parameter names."""

    name: str

    async def call(self, method: str, **params: Any) -> Any:
        raise NotImplementedError


class PtbWitness(Witness):
    name = "ptb"

    def __init__(self, bot: telegram.Bot) -> None:
        self.bot = bot

    async def call(self, method: str, **params: Any) -> Any:
        if "prices" in params:
            params["prices"] = [telegram.LabeledPrice(p["label"], p["amount"]) for p in params["prices"]]
        if "reply_markup" in params:
            params["reply_markup"] = telegram.InlineKeyboardMarkup.de_json(params["reply_markup"], self.bot)
        return await getattr(self.bot, snake(method))(**params)


class AiogramWitness(Witness):
    name = "aiogram"

    def __init__(self, bot: AiogramBot) -> None:
        self.bot = bot

    async def call(self, method: str, **params: Any) -> Any:
        if "prices" in params:
            params["prices"] = [at.LabeledPrice(**p) for p in params["prices"]]
        if "reply_markup" in params:
            params["reply_markup"] = at.InlineKeyboardMarkup.model_validate(params["reply_markup"])
        return await getattr(self.bot, snake(method))(**params)


def ptb_bot(api_url: str, token: str = TEST_TOKEN) -> telegram.Bot:
    return telegram.Bot(token, base_url=api_url + "/bot")


def aiogram_bot(api_url: str, token: str = TEST_TOKEN) -> AiogramBot:
    return AiogramBot(token, session=AiohttpSession(api=TelegramAPIServer.from_base(api_url)))


@asynccontextmanager
async def witness(client: str, api_url: str, token: str = TEST_TOKEN) -> AsyncIterator[Witness]:
    if client == "ptb":
        bot = ptb_bot(api_url, token)
        try:
            yield PtbWitness(bot)
        finally:
            await bot.shutdown()
    else:
        abot = aiogram_bot(api_url, token)
        try:
            yield AiogramWitness(abot)
        finally:
            await abot.session.close()


# --- the webhook the clients point the sandbox at -------------------------------------------


@dataclass
class Delivered:
    update: dict[str, Any]
    headers: dict[str, str]
    http_method: str


class Receiver:
    """A webhook on 127.0.0.1 that keeps every update and answers 200 with an empty body."""

    def __init__(self) -> None:
        self.delivered: list[Delivered] = []
        self._cond = threading.Condition()
        self._server: BaseWSGIServer = make_server(
            "127.0.0.1", 0, self._wsgi, threaded=True, request_handler=QuietRequestHandler
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/webhook"

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        body = request.get_json(force=True, silent=True)
        with self._cond:
            self.delivered.append(Delivered(body, dict(request.headers), request.method))
            self._cond.notify_all()
        return Response(b"", 200)(environ, start_response)

    def updates(self) -> list[dict[str, Any]]:
        with self._cond:
            return [d.update for d in self.delivered]

    def wait(self, match: Callable[[dict[str, Any]], bool], timeout: float = 5.0) -> dict[str, Any]:
        """The first update delivered that ``match``es, waiting up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for d in self.delivered:
                    if isinstance(d.update, dict) and match(d.update):
                        return d.update
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("the sandbox delivered no such update")
                self._cond.wait(left)


def message_part(update: dict[str, Any], name: str) -> dict[str, Any]:
    part: dict[str, Any] = (update.get("message") or {}).get(name) or {}
    return part


# --- the scenario, once per client ----------------------------------------------------------


@dataclass
class Run:
    """What one client saw: results of every call, the updates captured, the charges made."""

    client: str
    sandbox: Sandbox
    receiver: Receiver
    results: dict[str, list[Any]] = field(default_factory=dict)
    updates: dict[str, dict[str, Any]] = field(default_factory=dict)
    charges: dict[str, str] = field(default_factory=dict)
    errors: dict[str, BaseException | None] = field(default_factory=dict)
    webhook_info: dict[str, Any] = field(default_factory=dict)
    #: what the buyer saw when the bot refused a pre-checkout query.
    refusal: PaymentAttempt | None = None
    #: callback queries delivered although setWebhook's allowed_updates left them out.
    leaked: list[dict[str, Any]] = field(default_factory=list)


async def drive(run: Run) -> None:
    """A Stars shop's life through one client: every method, every kind of update."""
    tg, rx = run.sandbox, run.receiver

    async with witness(run.client, tg.url) as w:

        async def call(method: str, **params: Any) -> Any:
            try:
                result = await w.call(method, **params)
            except Exception as exc:
                result = exc
            run.results.setdefault(method, []).append(result)
            return result

        async def wait(match: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
            return await asyncio.to_thread(rx.wait, match)

        async def pay(link: str, payload: str, pre_kind: str, paid_kind: str) -> str:
            paying = asyncio.create_task(asyncio.to_thread(tg.pay, link, PAYER))
            pre = await wait(lambda u: (u.get("pre_checkout_query") or {}).get("invoice_payload") == payload)
            run.updates[pre_kind] = pre
            await call(
                "answerPreCheckoutQuery", pre_checkout_query_id=pre["pre_checkout_query"]["id"], ok=True
            )
            attempt = await paying
            assert attempt.ok and attempt.charge_id, attempt
            charge = attempt.charge_id
            run.updates[paid_kind] = await wait(
                lambda u: message_part(u, "successful_payment").get("telegram_payment_charge_id") == charge
            )
            return charge

        await call("getMe")
        await call(
            "setWebhook",
            url=rx.url,
            secret_token=SECRET,
            max_connections=10,
            allowed_updates=ALLOWED_UPDATES,
        )
        await call("getWebhookInfo")
        run.webhook_info["set"] = run.results["getWebhookInfo"][-1]

        one_off = await call(
            "createInvoiceLink",
            **ONE_OFF,
            currency="XTR",
            prices=[{"label": ONE_OFF["title"], "amount": ONE_OFF_STARS}],
            provider_token="",
        )
        assert isinstance(one_off, str), one_off
        run.charges["one_off"] = await pay(
            one_off, ONE_OFF["payload"], "pre_checkout_query", "successful_payment"
        )
        # The same link paid again (Telegram allows it): the bot refuses this one.
        seen = {u["update_id"] for u in rx.updates()}
        paying = asyncio.create_task(asyncio.to_thread(tg.pay, one_off, PAYER))
        again = await wait(lambda u: "pre_checkout_query" in u and u["update_id"] not in seen)
        await call(
            "answerPreCheckoutQuery",
            pre_checkout_query_id=again["pre_checkout_query"]["id"],
            ok=False,
            error_message=REFUSAL,
        )
        run.refusal = await paying

        monthly = await call(
            "createInvoiceLink",
            **MONTHLY,
            currency="XTR",
            prices=[{"label": MONTHLY["title"], "amount": MONTHLY_STARS}],
            provider_token="",
            subscription_period=SUBSCRIPTION_PERIOD,
        )
        assert isinstance(monthly, str), monthly
        first = await pay(
            monthly, MONTHLY["payload"], "pre_checkout_query_subscription", "subscription_first_payment"
        )
        run.charges["subscription_first"] = first
        renewal, _ = await asyncio.to_thread(tg.renew, first)
        run.charges["subscription_renewal"] = renewal
        run.updates["subscription_renewal"] = await wait(
            lambda u: message_part(u, "successful_payment").get("telegram_payment_charge_id") == renewal
        )
        # The bot cancels the subscription and enables it again; then the user cancels it.
        await call(
            "editUserStarSubscription",
            user_id=PAYER["id"],
            telegram_payment_charge_id=first,
            is_canceled=True,
        )
        await call(
            "editUserStarSubscription",
            user_id=PAYER["id"],
            telegram_payment_charge_id=first,
            is_canceled=False,
        )
        await asyncio.to_thread(tg.subscription_update, PAYER, MONTHLY["payload"], "canceled")
        run.updates["subscription"] = await wait(lambda u: "subscription" in u)

        await call(
            "refundStarPayment", user_id=PAYER["id"], telegram_payment_charge_id=run.charges["one_off"]
        )
        run.updates["refunded_payment"] = await wait(
            lambda u: (
                message_part(u, "refunded_payment").get("telegram_payment_charge_id")
                == run.charges["one_off"]
            )
        )
        try:
            await w.call(
                "refundStarPayment", user_id=PAYER["id"], telegram_payment_charge_id=run.charges["one_off"]
            )
            run.errors["refund_again"] = None
        except Exception as exc:
            run.errors["refund_again"] = exc

        await call("getStarTransactions", offset=0, limit=100)
        await call("getMyStarBalance")
        await call(
            "sendInvoice",
            chat_id=PAYER["id"],
            **ONE_OFF,
            currency="XTR",
            prices=[{"label": ONE_OFF["title"], "amount": ONE_OFF_STARS}],
            provider_token="",
        )

        # /buy_stars, answered with one button per pack; the user presses one.
        await asyncio.to_thread(tg.send_text, PAYER, "/buy_stars")
        run.updates["command"] = await wait(lambda u: (u.get("message") or {}).get("text") == "/buy_stars")
        await call("sendMessage", chat_id=PAYER["id"], text=CHOOSE_TEXT, reply_markup=PACK_BUTTONS)
        await asyncio.to_thread(tg.press_button, PAYER, "stars_pack_1")
        pressed = await wait(lambda u: (u.get("callback_query") or {}).get("data") == "stars_pack_1")
        run.updates["callback_query"] = pressed
        await call(
            "answerCallbackQuery", callback_query_id=pressed["callback_query"]["id"], text="Invoice sent"
        )

        # A webhook for messages and payments only: a button press must not reach it.
        await call(
            "setWebhook", url=rx.url, secret_token=SECRET, allowed_updates=["message", "pre_checkout_query"]
        )
        with contextlib.suppress(Exception):  # a sandbox that refuses to deliver it is right too
            await asyncio.to_thread(tg.press_button, PAYER, "stars_pack_2")
        run.leaked = [
            u for u in rx.updates() if (u.get("callback_query") or {}).get("data") == "stars_pack_2"
        ]

        await call("deleteWebhook")
        await call("getWebhookInfo")
        run.webhook_info["deleted"] = run.results["getWebhookInfo"][-1]

    async with witness(run.client, tg.url, token="987654321:not-this-sandboxs-bot") as stranger:
        try:
            await stranger.call("getMe")
            run.errors["wrong_token"] = None
        except Exception as exc:
            run.errors["wrong_token"] = exc


@pytest.fixture(scope="module")
def runs() -> Iterator[dict[str, Run]]:
    """The scenario through each client, each against its own sandbox and webhook."""
    with contextlib.ExitStack() as stack:
        done: dict[str, Run] = {}
        for client in CLIENTS:
            sandbox = stack.enter_context(Sandbox(token=TEST_TOKEN))
            receiver = Receiver().start()
            stack.callback(receiver.stop)
            done[client] = Run(client, sandbox, receiver)
            run_in_own_loop(drive(done[client]))
        yield done


def results(runs: dict[str, Run], client: str, method: str) -> list[Any]:
    found = runs[client].results.get(method)
    assert found, f"{client} never called {method}"
    for result in found:
        if isinstance(result, BaseException):
            raise AssertionError(f"{client} {method} failed: {result!r}") from result
    return found


def captured(runs: dict[str, Run], kind: str) -> list[dict[str, Any]]:
    found = [run.updates[kind] for run in runs.values() if kind in run.updates]
    assert len(found) == len(runs), f"{kind} was not captured in every run"
    return found


def bot_id() -> int:
    return int(TEST_TOKEN.split(":")[0])


# --- the witnesses themselves ---------------------------------------------------------------


def test_both_witnesses_see_an_unknown_field_deep_in_an_update(runs: dict[str, Run]) -> None:
    """The strictness walkers are not blind: a made-up key three levels down is reported."""
    data = copy.deepcopy(captured(runs, "refunded_payment")[0])
    data["message"]["refunded_payment"]["made_up"] = 1
    data["message"]["chat"]["also_made_up"] = True
    ptb = ptb_unknown_fields(telegram.Update.de_json(data, ptb_bot(runs["ptb"].sandbox.url)))
    assert ptb == ["Update.message.chat.also_made_up", "Update.message.refunded_payment.made_up"]
    update = at.Update.model_validate(data, context={"bot": aiogram_bot(runs["aiogram"].sandbox.url)})
    assert sorted(aiogram_unknown_fields(update)) == [
        "Update.message.chat.also_made_up",
        "Update.message.refunded_payment.made_up",
    ]


# --- Bot API methods through both clients ---------------------------------------------------


def test_every_method_the_sandbox_implements_is_called_through_both_clients(runs: dict[str, Run]) -> None:
    implemented = {name[len("_api_") :] for name in dir(Sandbox) if name.startswith("_api_")}
    assert implemented <= set(RESULT_TYPES), f"no conformance check for {implemented - set(RESULT_TYPES)}"
    for run in runs.values():
        called = {c.method for c in run.sandbox.calls if c.http_method != "WEBHOOK-REPLY"}
        assert implemented <= called, f"{run.client} did not call {implemented - called}"


@pytest.mark.parametrize("method", sorted(RESULT_TYPES))
@pytest.mark.parametrize("client", CLIENTS)
def test_method_result_parses_into_the_clients_type(runs: dict[str, Run], client: str, method: str) -> None:
    expected = RESULT_TYPES[method][CLIENTS.index(client)]
    unknown = ptb_unknown_fields if client == "ptb" else aiogram_unknown_fields
    for result in results(runs, client, method):
        assert isinstance(result, expected), f"{method}: {type(result).__name__}, not {expected.__name__}"
        if expected is bool:
            assert result is True
        assert unknown(result) == [], f"{method}: fields {client} does not know"


@pytest.mark.parametrize("client", CLIENTS)
def test_get_me_is_the_tokens_bot(runs: dict[str, Run], client: str) -> None:
    (me,) = results(runs, client, "getMe")
    assert me.id == bot_id() and me.is_bot is True and me.first_name and me.username


@pytest.mark.parametrize("client", CLIENTS)
def test_invoice_links_are_telegram_invoice_links(runs: dict[str, Run], client: str) -> None:
    for link in results(runs, client, "createInvoiceLink"):
        assert re.fullmatch(r"https://t\.me/\$[\w-]+", link), link
    sandbox = runs[client].sandbox
    one_off, monthly = results(runs, client, "createInvoiceLink")
    assert sandbox.invoice(one_off).subscription_period is None
    assert sandbox.invoice(monthly).subscription_period == SUBSCRIPTION_PERIOD


BOT_MESSAGE_METHODS = ("sendInvoice", "sendMessage")


@pytest.mark.parametrize("method", BOT_MESSAGE_METHODS)
@pytest.mark.parametrize("client", CLIENTS)
def test_sent_message_content(runs: dict[str, Run], client: str, method: str) -> None:
    (message,) = results(runs, client, method)
    if method == "sendInvoice":
        invoice = message.invoice
        assert (invoice.title, invoice.description, invoice.currency, invoice.total_amount) == (
            ONE_OFF["title"],
            ONE_OFF["description"],
            "XTR",
            ONE_OFF_STARS,
        )
    else:
        assert message.text == CHOOSE_TEXT
    assert message.chat.id == PAYER["id"] and message.chat.type == "private"
    assert message.date is not None


@pytest.mark.parametrize("method", BOT_MESSAGE_METHODS)
@pytest.mark.parametrize("client", CLIENTS)
def test_sent_message_is_from_the_bot(runs: dict[str, Run], client: str, method: str) -> None:
    (message,) = results(runs, client, method)
    assert message.from_user is not None, "Message.from is missing"
    assert message.from_user.id == bot_id() and message.from_user.is_bot is True


@pytest.mark.parametrize("method", BOT_MESSAGE_METHODS)
@pytest.mark.parametrize("client", CLIENTS)
def test_sent_message_private_chat_has_first_name(runs: dict[str, Run], client: str, method: str) -> None:
    (message,) = results(runs, client, method)
    assert message.chat.first_name == PAYER["first_name"], "Message.chat.first_name"


@pytest.mark.parametrize("client", CLIENTS)
def test_sent_message_carries_its_inline_keyboard(runs: dict[str, Run], client: str) -> None:
    (message,) = results(runs, client, "sendMessage")
    assert message.reply_markup is not None, "Message.reply_markup is missing"
    buttons = [(b.text, b.callback_data) for row in message.reply_markup.inline_keyboard for b in row]
    assert buttons == [
        (b["text"], b["callback_data"]) for row in PACK_BUTTONS["inline_keyboard"] for b in row
    ]


@pytest.mark.parametrize("method", BOT_MESSAGE_METHODS)
@pytest.mark.parametrize("client", CLIENTS)
def test_sent_message_id_fits_32_bits(runs: dict[str, Run], client: str, method: str) -> None:
    (message,) = results(runs, client, method)
    assert 0 < message.message_id <= INT32_MAX, message.message_id


@pytest.mark.parametrize("client", CLIENTS)
def test_webhook_info_reports_the_webhook_set(runs: dict[str, Run], client: str) -> None:
    results(runs, client, "getWebhookInfo")
    run = runs[client]
    info = run.webhook_info["set"]
    assert info.url == run.receiver.url
    assert info.has_custom_certificate is False
    assert info.pending_update_count == 0
    assert set(info.allowed_updates) == set(ALLOWED_UPDATES)  # in the server's order, not the bot's
    assert run.webhook_info["deleted"].url == ""


@pytest.mark.parametrize("client", CLIENTS)
def test_webhook_info_reports_max_connections(runs: dict[str, Run], client: str) -> None:
    assert runs[client].webhook_info["set"].max_connections == 10


@pytest.mark.parametrize("client", CLIENTS)
def test_star_transactions_list_the_charges_and_the_refund(runs: dict[str, Run], client: str) -> None:
    (page,) = results(runs, client, "getStarTransactions")
    charges = runs[client].charges
    incoming = [(t.id, t.amount) for t in page.transactions if t.source is not None]
    assert incoming == [
        (charges["one_off"], ONE_OFF_STARS),
        (charges["subscription_first"], MONTHLY_STARS),
        (charges["subscription_renewal"], MONTHLY_STARS),
    ]
    for t in page.transactions:
        partner = t.source or t.receiver
        assert partner is not None and partner.type == "user"
    by_id = {t.id: t for t in page.transactions if t.source is not None}
    assert {t.source.transaction_type for t in by_id.values()} == {"invoice_payment"}
    assert by_id[charges["one_off"]].source.invoice_payload == ONE_OFF["payload"]
    period = by_id[charges["subscription_first"]].source.subscription_period
    assert period in (SUBSCRIPTION_PERIOD, dt.timedelta(seconds=SUBSCRIPTION_PERIOD))  # PTB: a timedelta
    # A refund coincides with the id of the transaction it refunds and goes to the user.
    (refund,) = [t for t in page.transactions if t.receiver is not None]
    assert (refund.id, refund.amount) == (charges["one_off"], ONE_OFF_STARS)


@pytest.mark.parametrize("client", CLIENTS)
def test_star_transactions_name_the_payer(runs: dict[str, Run], client: str) -> None:
    (page,) = results(runs, client, "getStarTransactions")
    for t in page.transactions:
        partner = t.source or t.receiver
        assert partner.user.first_name == PAYER["first_name"], f"transaction {t.id}: {partner.user}"
        assert partner.user.username == PAYER["username"], f"transaction {t.id}: {partner.user}"


@pytest.mark.parametrize("client", CLIENTS)
def test_refused_pre_checkout_shows_the_bots_message_and_charges_nothing(
    runs: dict[str, Run], client: str
) -> None:
    run = runs[client]
    assert run.refusal is not None
    assert (run.refusal.ok, run.refusal.error_message, run.refusal.charge_id) == (False, REFUSAL, None)
    paid = [u for u in run.receiver.updates() if message_part(u, "successful_payment")]
    assert len(paid) == 3  # the one-off, the subscription's first payment and its renewal


@pytest.mark.parametrize("client", CLIENTS)
def test_star_balance_counts_charges_less_refunds(runs: dict[str, Run], client: str) -> None:
    (balance,) = results(runs, client, "getMyStarBalance")
    assert balance.amount == MONTHLY_STARS * 2


@pytest.mark.parametrize("client", CLIENTS)
def test_errors_reach_the_client_as_its_own_exceptions(runs: dict[str, Run], client: str) -> None:
    errors = runs[client].errors
    bad_request = telegram.error.BadRequest if client == "ptb" else TelegramBadRequest
    unauthorized = telegram.error.InvalidToken if client == "ptb" else TelegramUnauthorizedError
    assert isinstance(errors["refund_again"], bad_request), repr(errors["refund_again"])
    # PTB capitalises Telegram's description ("Charge_already_refunded"); aiogram keeps it.
    assert "CHARGE_ALREADY_REFUNDED" in str(errors["refund_again"]).upper()
    assert isinstance(errors["wrong_token"], unauthorized), repr(errors["wrong_token"])


# --- updates: strict parsing ----------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_update_parses_strictly_with_ptb(runs: dict[str, Run], kind: str) -> None:
    bot = ptb_bot(runs["ptb"].sandbox.url)
    for data in captured(runs, kind):
        update = telegram.Update.de_json(data, bot)
        assert update is not None and update.update_id == data["update_id"]
        unknown = [path for path in ptb_unknown_fields(update) if path not in PTB_TOO_OLD_FOR]
        assert unknown == [], f"{kind}: fields python-telegram-bot does not know"
        if kind != "subscription":
            assert update.effective_user is not None


@pytest.mark.parametrize("kind", KINDS)
def test_update_parses_strictly_with_aiogram(runs: dict[str, Run], kind: str) -> None:
    bot = aiogram_bot(runs["aiogram"].sandbox.url)
    for data in captured(runs, kind):
        update = at.Update.model_validate(data, context={"bot": bot})
        assert update.update_id == data["update_id"]
        assert aiogram_unknown_fields(update) == [], f"{kind}: fields aiogram does not know"
        assert update.event_type == ("message" if kind in MESSAGE_KINDS else ROUTES[kind])


def test_subscription_update_is_bot_api_botsubscriptionupdated(runs: dict[str, Run]) -> None:
    """``Update.subscription`` exists: Bot API 10.2 (BotSubscriptionUpdated), aiogram 3.30+.

    python-telegram-bot 22.8 implements Bot API 10.0 and keeps the field in ``api_kwargs``.
    """
    bot = aiogram_bot(runs["aiogram"].sandbox.url)
    for data in captured(runs, "subscription"):
        event = at.Update.model_validate(data, context={"bot": bot}).subscription
        assert isinstance(event, at.BotSubscriptionUpdated)
        assert event.state in ("canceled", "active", "failed")
        assert event.invoice_payload == MONTHLY["payload"]
        assert event.user.id == PAYER["id"]
        ptb_update = telegram.Update.de_json(data, ptb_bot(runs["ptb"].sandbox.url))
        if PTB_TOO_OLD_FOR:
            assert dict(ptb_update.api_kwargs) == {"subscription": data["subscription"]}


# --- updates: routing to a bot's handlers ----------------------------------------------------


async def aiogram_route(api_url: str, data: dict[str, Any]) -> Any:
    router = Router()

    @router.pre_checkout_query()
    async def on_pre_checkout(query: at.PreCheckoutQuery) -> str:
        assert query.currency == "XTR"
        return "pre_checkout_query"

    @router.message(Command("buy_stars"))
    async def on_command(message: at.Message) -> str:
        return "command"

    @router.message(F.successful_payment)
    async def on_paid(message: at.Message) -> str:
        assert message.successful_payment is not None
        return "successful_payment"

    @router.message(F.refunded_payment)
    async def on_refunded(message: at.Message) -> str:
        assert message.refunded_payment is not None
        return "refunded_payment"

    @router.message()
    async def on_other_message(message: at.Message) -> str:
        return "other message"

    @router.callback_query()
    async def on_button(query: at.CallbackQuery) -> str:
        return "callback_query"

    @router.subscription()
    async def on_subscription(event: at.BotSubscriptionUpdated) -> str:
        return "subscription"

    dp = Dispatcher()
    dp.include_router(router)
    bot = aiogram_bot(api_url)
    try:
        update = at.Update.model_validate(data, context={"bot": bot})
        return await dp.feed_update(bot, update)
    finally:
        await bot.session.close()


@pytest.mark.parametrize("kind", KINDS)
def test_update_routes_to_the_aiogram_handler(runs: dict[str, Run], kind: str) -> None:
    for data in captured(runs, kind):
        assert run_in_own_loop(aiogram_route(runs["aiogram"].sandbox.url, data)) == ROUTES[kind]


async def ptb_route(api_url: str, data: dict[str, Any]) -> list[str]:
    ran: list[str] = []
    errors: list[object] = []

    def record(name: str) -> Callable[[telegram.Update, ContextTypes.DEFAULT_TYPE], Any]:
        async def handler(update: telegram.Update, context: ContextTypes.DEFAULT_TYPE) -> None:
            ran.append(name)

        return handler

    async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        errors.append(context.error)

    app = Application.builder().token(TEST_TOKEN).base_url(api_url + "/bot").updater(None).build()
    app.add_handler(PreCheckoutQueryHandler(record("pre_checkout_query")))
    app.add_handler(CommandHandler("buy_stars", record("command")))
    app.add_handler(MessageHandler(filters.SUCCESSFUL_PAYMENT, record("successful_payment")))
    app.add_handler(MessageHandler(filters.StatusUpdate.REFUNDED_PAYMENT, record("refunded_payment")))
    app.add_handler(MessageHandler(filters.ALL, record("other message")))
    app.add_handler(CallbackQueryHandler(record("callback_query")))
    app.add_handler(TypeHandler(telegram.Update, record("no PTB handler")))
    app.add_error_handler(on_error)
    await app.initialize()  # getMe at the sandbox: CommandHandler needs the bot's username
    try:
        await app.process_update(telegram.Update.de_json(data, app.bot))
    finally:
        await app.shutdown()
    assert errors == []
    return ran


@pytest.mark.parametrize("kind", KINDS)
def test_update_routes_to_the_ptb_handler(runs: dict[str, Run], kind: str) -> None:
    # PTB 22 has no handler for Bot API 10.2's subscription update: only a catch-all sees it.
    expected = "no PTB handler" if kind == "subscription" and PTB_TOO_OLD_FOR else ROUTES[kind]
    for data in captured(runs, kind):
        assert run_in_own_loop(ptb_route(runs["ptb"].sandbox.url, data)) == [expected]


# --- updates: what Telegram puts in them ----------------------------------------------------


def sender(update: dict[str, Any]) -> dict[str, Any]:
    if "message" in update:
        return dict(update["message"]["from"])
    if "subscription" in update:
        return dict(update["subscription"]["user"])
    (event,) = [v for k, v in update.items() if k != "update_id"]
    return dict(event["from"])


@pytest.mark.parametrize("kind", KINDS)
def test_update_sender_is_who_telegram_names(runs: dict[str, Run], kind: str) -> None:
    """The buyer (their whole User, as their client gave it) sends everything they do, the
    renewal included; the ``refunded_payment`` that follows the bot's refundStarPayment is the
    bot's own service message (``from`` is the bot: aiogram issue #1692, seen on Telegram)."""
    for run in runs.values():
        data = run.updates[kind]
        if kind == "refunded_payment":
            (me,) = results(runs, run.client, "getMe")
            bot = {"id": me.id, "is_bot": True, "first_name": me.first_name, "username": me.username}
            assert sender(data) == bot, f"{kind}: the sender is not the bot that refunded"
        else:
            assert sender(data) == PAYER, f"{kind}: the sender is not the user who paid"


@pytest.mark.parametrize("kind", MESSAGE_KINDS)
def test_user_message_is_in_the_users_private_chat(runs: dict[str, Run], kind: str) -> None:
    for data in captured(runs, kind):
        chat = data["message"]["chat"]
        assert chat["id"] == PAYER["id"] and chat["type"] == "private"
        assert chat.get("first_name"), f"{kind}: message.chat.first_name"


@pytest.mark.parametrize("kind", MESSAGE_KINDS)
def test_user_message_chat_carries_the_users_names(runs: dict[str, Run], kind: str) -> None:
    expected = {"id": PAYER["id"], "type": "private"} | {
        name: PAYER[name] for name in ("first_name", "last_name", "username") if name in PAYER
    }
    for data in captured(runs, kind):
        assert data["message"]["chat"] == expected, f"{kind}: message.chat"


@pytest.mark.parametrize("kind", KINDS)
def test_update_ids_fit_32_bits(runs: dict[str, Run], kind: str) -> None:
    for data in captured(runs, kind):
        assert 0 < data["update_id"] <= INT32_MAX, f"{kind}: update_id {data['update_id']}"
        message = data.get("message") or (data.get("callback_query") or {}).get("message")
        if message is not None:
            assert 0 < message["message_id"] <= INT32_MAX, f"{kind}: message_id {message['message_id']}"


def test_button_message_is_from_the_bot(runs: dict[str, Run]) -> None:
    for data in captured(runs, "callback_query"):
        message = data["callback_query"]["message"]
        assert "from" in message, "callback_query.message.from is missing"
        assert message["from"]["id"] == bot_id() and message["from"]["is_bot"] is True


def test_button_message_private_chat_has_first_name(runs: dict[str, Run]) -> None:
    for data in captured(runs, "callback_query"):
        chat = data["callback_query"]["message"]["chat"]
        assert chat.get("first_name") == PAYER["first_name"], "callback_query.message.chat.first_name"


def test_button_press_carries_the_message_with_the_button(runs: dict[str, Run]) -> None:
    for data in captured(runs, "callback_query"):
        query = data["callback_query"]
        message = query["message"]
        assert message.get("text") == CHOOSE_TEXT, "callback_query.message.text"
        rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
        assert query["data"] in [b.get("callback_data") for row in rows for b in row], (
            "callback_query.message.reply_markup has no button with the pressed callback_data"
        )


def test_payments_agree_with_their_invoices(runs: dict[str, Run]) -> None:
    for run in runs.values():
        u = run.updates
        pre = u["pre_checkout_query"]["pre_checkout_query"]
        assert (pre["currency"], pre["total_amount"], pre["invoice_payload"]) == (
            "XTR",
            ONE_OFF_STARS,
            ONE_OFF["payload"],
        )
        paid = message_part(u["successful_payment"], "successful_payment")
        assert (paid["currency"], paid["total_amount"], paid["invoice_payload"]) == (
            "XTR",
            ONE_OFF_STARS,
            ONE_OFF["payload"],
        )
        assert paid["provider_payment_charge_id"] == ""
        assert not {"is_recurring", "is_first_recurring", "subscription_expiration_date"} & set(paid)

        first = message_part(u["subscription_first_payment"], "successful_payment")
        assert first["total_amount"] == MONTHLY_STARS and first["invoice_payload"] == MONTHLY["payload"]
        assert first["is_recurring"] is True and first["is_first_recurring"] is True
        paid_at = u["subscription_first_payment"]["message"]["date"]
        assert abs(first["subscription_expiration_date"] - (paid_at + SUBSCRIPTION_PERIOD)) <= 5

        renewal = message_part(u["subscription_renewal"], "successful_payment")
        assert renewal["is_recurring"] is True and "is_first_recurring" not in renewal
        assert renewal["invoice_payload"] == MONTHLY["payload"]
        assert (
            renewal["subscription_expiration_date"]
            == first["subscription_expiration_date"] + SUBSCRIPTION_PERIOD
        )
        assert renewal["telegram_payment_charge_id"] != first["telegram_payment_charge_id"]

        refunded = message_part(u["refunded_payment"], "refunded_payment")
        assert refunded == {
            "currency": "XTR",
            "total_amount": ONE_OFF_STARS,
            "invoice_payload": ONE_OFF["payload"],
            "telegram_payment_charge_id": run.charges["one_off"],
        } | ({"provider_payment_charge_id": ""} if "provider_payment_charge_id" in refunded else {})

        assert u["command"]["message"]["entities"] == [
            {"type": "bot_command", "offset": 0, "length": len("/buy_stars")}
        ]
        query = u["callback_query"]["callback_query"]
        assert query["data"] == "stars_pack_1" and query["chat_instance"]


def test_webhook_posts_json_with_the_secret_token(runs: dict[str, Run]) -> None:
    for run in runs.values():
        assert run.receiver.delivered
        for d in run.receiver.delivered:
            assert d.http_method == "POST"
            assert d.headers.get("Content-Type", "").startswith("application/json")
            assert d.headers.get("X-Telegram-Bot-Api-Secret-Token") == SECRET


@pytest.mark.parametrize("client", CLIENTS)
def test_webhook_gets_only_the_allowed_updates(runs: dict[str, Run], client: str) -> None:
    assert runs[client].leaked == [], "a callback_query reached a webhook set for message, pre_checkout_query"
