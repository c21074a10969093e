"""``Sandbox``: a Telegram Bot API emulator for Stars payments, on 127.0.0.1; no account, no network.

``Sandbox`` is a facade: it builds the parts, each an object of its own module that holds
the parts it needs (none inherits from another), and offers their public methods in one
place:

- ``bot`` (``Bot``): the bot served, its token and ``User``;
- ``call_log`` (``CallLog``): the calls received, the faults and delays queued;
- ``chats`` (``Chats``): users, private chats, the bot's messages, Telegram's ids;
- ``queries`` (``PreCheckoutQueries``): pre-checkout queries and the bot's answers;
- ``deliverer`` (``WebhookDeliverer``): the app's webhook, and updates posted to it;
- ``ledger`` (``Ledger``): invoices, charges, refunds, subscriptions;
- ``buyer`` (``Buyer``): the user who writes, presses buttons and pays;
- ``server`` (``ApiServer``): the HTTP endpoint, which answers through ``api.METHODS``.

It answers the methods flask_stars uses the way Telegram's server does (telebot sends
every parameter in the query string, for GET and POST alike), records each call, keeps
a Stars ledger, and plays the buyer: ``pay()`` posts a ``pre_checkout_query`` to the
webhook with the secret, waits for the answer (Telegram's 10 s; a later one is refused)
and, if approved, posts ``successful_payment``. It delivers only the update types in the
webhook's ``allowed_updates`` (sticky, as on Telegram), at most ``max_connections`` at a
time, and reports pending updates and the last delivery error in ``getWebhookInfo``. It
can also fail or delay a method, redeliver, and drop updates.

    with Sandbox(token=TOKEN) as tg:
        app.config["STARS_API_URL"] = tg.url
        tg.set_webhook_target("http://127.0.0.1:5000/stars/webhook", secret)
        link = ...  # POST /stars/invoice
        tg.pay(link, user=42)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Self

from .api import METHODS
from .api import answer as answer_method
from .bot import Bot
from .buyer import Buyer, PaymentAttempt
from .calls import Call, CallLog
from .chats import Chats
from .invoices import Invoice
from .ledger import Ledger
from .params import Params
from .queries import PRE_CHECKOUT_DEADLINE, PreCheckoutQueries
from .server import ApiServer
from .webhook import Delivery, WebhookDeliverer

__all__ = ["Sandbox"]


class Sandbox:
    """The emulator. ``token`` restricts it to one bot (others get 401, as on Telegram).

    Start it with ``start()`` or ``with``; give ``url`` as ``STARS_API_URL``.
    """

    def __init__(self, token: str | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        """:param token: the one bot token answered (None: any bot's).
        :param host: the address to listen on.
        :param port: the port to listen on (a free one when 0).
        """
        self.bot = Bot(token)
        self.call_log = CallLog()
        self.chats = Chats(self.bot)
        self.queries = PreCheckoutQueries(self.bot)
        self.deliverer = WebhookDeliverer(self.call_log, self.queries, self.answer, token)
        self.ledger = Ledger(self.chats, self.deliverer)
        self.buyer = Buyer(self.chats, self.deliverer, self.ledger, self.queries)
        self.server = ApiServer(self.bot, self.call_log, self.answer, host=host, port=port)

    def answer(self, method: str, params: Params) -> Any:
        """Answer a Bot API method directly, as over HTTP but unrecorded and without faults.

        :param method: the method's name.
        :param params: its parameters, as a request would carry them.
        """
        return answer_method(self, method, params)

    # --- life --------------------------------------------------------------------------------

    def start(self) -> Self:
        """Serve on ``host:port`` (a free port when 0) in a daemon thread; returns ``self``."""
        self.server.start()
        return self

    def stop(self) -> None:
        """Wait for background deliveries, stop serving, and close the HTTP session."""
        self.deliverer.join_background()
        self.server.stop()
        self.deliverer.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base URL to give as ``STARS_API_URL``."""
        return self.server.url

    @property
    def host(self) -> str:
        """The address served on."""
        return self.server.host

    @property
    def port(self) -> int:
        """The port served on (0 until started with a free port)."""
        return self.server.port

    @property
    def token(self) -> str | None:
        """The one bot token answered, or None for any bot's."""
        return self.bot.token

    # --- calls, faults, delays (``CallLog``) -------------------------------------------------

    @property
    def calls(self) -> list[Call]:
        """Every call received, oldest first."""
        return self.call_log.calls

    def calls_to(self, method: str) -> list[Params]:
        """The parameters of every call to ``method``, oldest first (``CallLog.calls_to``)."""
        return self.call_log.calls_to(method)

    def fail(
        self,
        method: str,
        error_code: int = 500,
        description: str = "Internal Server Error",
        *,
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        """Make the next ``times`` calls to ``method`` fail as Telegram would (``CallLog.fail``)."""
        self.call_log.fail(method, error_code, description, retry_after=retry_after, times=times)

    def delay(self, method: str, seconds: float, *, times: int = 1) -> None:
        """Make the next ``times`` calls to ``method`` answer after ``seconds`` (``CallLog.delay``)."""
        self.call_log.delay(method, seconds, times=times)

    def wait_for_call(self, method: str, count: int = 1, timeout: float = 5.0) -> list[Params]:
        """Block until ``method`` was called ``count`` times (``CallLog.wait_for_call``)."""
        return self.call_log.wait_for_call(method, count, timeout)

    # --- the bot and its chats (``Bot``, ``Chats``) ------------------------------------------

    def bot_token(self) -> str:
        """The token of the bot being served (``Bot.current_token``)."""
        return self.bot.current_token()

    def bot_user(self, token: str | None = None) -> dict[str, Any]:
        """The bot's ``User`` (``Bot.user``)."""
        return self.bot.user(token)

    @property
    def users(self) -> dict[int, dict[str, Any]]:
        """The users this sandbox has seen, by id."""
        return self.chats.users

    @property
    def bot_messages(self) -> list[dict[str, Any]]:
        """Messages the bot sent (sendMessage, sendInvoice), oldest first."""
        return self.chats.bot_messages

    def next_id(self) -> int:
        """A fresh update or message id, below 2**31 (``Chats.next_id``)."""
        return self.chats.next_id()

    def user_object(self, user: int | dict[str, Any]) -> dict[str, Any]:
        """The ``User`` for an id or dict (``Chats.user_object``)."""
        return self.chats.user_object(user)

    def private_chat(self, user: int | dict[str, Any]) -> dict[str, Any]:
        """The private ``Chat`` with ``user`` (``Chats.private_chat``)."""
        return self.chats.private_chat(user)

    def message_update(self, user: int | dict[str, Any], **content: Any) -> dict[str, Any]:
        """An update with a message from ``user`` (``Chats.message_update``)."""
        return self.chats.message_update(user, **content)

    def bot_message(self, chat_id: int, token: str | None = None, **content: Any) -> dict[str, Any]:
        """A message the bot sent to ``chat_id`` (``Chats.bot_message``)."""
        return self.chats.bot_message(chat_id, token, **content)

    # --- the webhook (``WebhookDeliverer``) --------------------------------------------------

    def set_webhook_target(self, url: str, secret: str | None, *, max_connections: int | None = None) -> None:
        """Where updates go, without a Bot API call (``WebhookDeliverer.set_target``)."""
        self.deliverer.set_target(url, secret, max_connections=max_connections)

    def deliver(self, update: dict[str, Any], *, retries: int = 0, timeout: float = 30.0) -> Delivery:
        """POST ``update`` to the webhook with the secret (``WebhookDeliverer.deliver``)."""
        return self.deliverer.deliver(update, retries=retries, timeout=timeout)

    def pending_update_count(self) -> int:
        """Updates Telegram would still be trying to deliver (``WebhookDeliverer``)."""
        return self.deliverer.pending_update_count()

    @property
    def webhook(self) -> dict[str, Any]:
        """The webhook's target: ``url``, ``secret_token``, ``max_connections`` (empty: none)."""
        return self.deliverer.target

    @property
    def deliveries(self) -> list[Delivery]:
        """Every webhook POST and the app's answer, oldest first."""
        return self.deliverer.deliveries

    @property
    def dropped(self) -> list[Delivery]:
        """Updates not posted because their type was not in ``allowed_updates``."""
        return self.deliverer.dropped

    @property
    def peak_connections(self) -> int:
        """The most webhook requests that were in flight at once."""
        return self.deliverer.peak_connections

    @property
    def allowed_updates(self) -> frozenset[str]:
        """The update types the webhook gets (sticky, as on Telegram)."""
        return self.deliverer.allowed_updates

    @allowed_updates.setter
    def allowed_updates(self, value: frozenset[str]) -> None:
        self.deliverer.allowed_updates = value

    @property
    def answer_in_response(self) -> bool:
        """Whether a method call in the webhook's reply is taken, as Telegram takes it."""
        return self.deliverer.answer_in_response

    @answer_in_response.setter
    def answer_in_response(self, value: bool) -> None:
        self.deliverer.answer_in_response = value

    # --- the ledger (``Ledger``) -------------------------------------------------------------

    @property
    def invoices(self) -> dict[str, Invoice]:
        """The invoices made, by slug."""
        return self.ledger.invoices

    @property
    def transactions(self) -> list[dict[str, Any]]:
        """The bot's Star transactions, oldest first, as getStarTransactions lists them."""
        return self.ledger.transactions

    @property
    def balance(self) -> int:
        """The bot's Stars balance."""
        return self.ledger.balance

    @property
    def deliver_refund_updates(self) -> bool:
        """Whether a refund sends ``refunded_payment`` to the webhook, as Telegram does."""
        return self.ledger.deliver_refund_updates

    @deliver_refund_updates.setter
    def deliver_refund_updates(self, value: bool) -> None:
        self.ledger.deliver_refund_updates = value

    def invoice(self, ref: str | Invoice) -> Invoice:
        """An invoice by link, slug or payload (``Ledger.invoice``)."""
        return self.ledger.invoice(ref)

    def last_invoice(self, chat_id: int | None = None) -> Invoice:
        """The newest invoice, sent to ``chat_id`` if given (``Ledger.last_invoice``)."""
        return self.ledger.last_invoice(chat_id)

    def charge(
        self,
        invoice: str | Invoice,
        user: int | dict[str, Any],
        *,
        total_amount: int | None = None,
        currency: str | None = None,
        renewal_of: str | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """Take the Stars and build the ``successful_payment`` update, unsent (``Ledger.charge``)."""
        return self.ledger.charge(
            invoice, user, total_amount=total_amount, currency=currency, renewal_of=renewal_of
        )

    def refund(self, charge_id: str) -> dict[str, Any]:
        """A refund made outside the bot (``Ledger.refund``)."""
        return self.ledger.refund(charge_id)

    def renew(self, first_charge_id: str, *, deliver: bool = True) -> tuple[str, dict[str, Any]]:
        """Telegram renews a subscription (``Ledger.renew``)."""
        return self.ledger.renew(first_charge_id, deliver=deliver)

    # --- the buyer (``Buyer``, ``PreCheckoutQueries``) ---------------------------------------

    def send_text(self, user: int | dict[str, Any], text: str) -> Delivery:
        """The user writes ``text`` to the bot (``Buyer.send_text``)."""
        return self.buyer.send_text(user, text)

    def press_button(
        self, user: int | dict[str, Any], callback_data: str, chat_id: int | None = None
    ) -> Delivery:
        """The user presses an inline button (``Buyer.press_button``)."""
        return self.buyer.press_button(user, callback_data, chat_id)

    def pay(
        self,
        invoice: str | Invoice,
        user: int | dict[str, Any],
        *,
        total_amount: int | None = None,
        currency: str | None = None,
        deliver_payment: bool = True,
        retries: int = 0,
        answer_timeout: float = PRE_CHECKOUT_DEADLINE,
    ) -> PaymentAttempt:
        """The user presses Pay: pre-checkout, then the charge and its update (``Buyer.pay``)."""
        return self.buyer.pay(
            invoice,
            user,
            total_amount=total_amount,
            currency=currency,
            deliver_payment=deliver_payment,
            retries=retries,
            answer_timeout=answer_timeout,
        )

    def subscription_update(self, user: int | dict[str, Any], invoice_payload: str, state: str) -> Delivery:
        """The ``subscription`` update (``Buyer.subscription_update``)."""
        return self.buyer.subscription_update(user, invoice_payload, state)

    def expect_pre_checkout(self, query_id: str, *, answer_timeout: float = PRE_CHECKOUT_DEADLINE) -> None:
        """Take the bot's answer to a pre-checkout query this sandbox did not send (a test or a
        load generator posted it to the app itself) for ``answer_timeout`` seconds, as
        Telegram takes one it sent; any other unknown query id is refused, as on Telegram.

        :param query_id: the query's id.
        :param answer_timeout: seconds the bot has to answer.
        """
        self.queries.open(query_id, answer_timeout)


def _direct(method: str) -> Callable[[Sandbox, Params], Any]:
    def call(self: Sandbox, params: Params) -> Any:
        return self.answer(method, params)

    call.__name__ = f"_api_{method}"
    call.__qualname__ = f"Sandbox._api_{method}"
    call.__doc__ = f"``{method}``, answered directly (``Sandbox.answer``)."
    return call


# Each method of the table is also ``Sandbox._api_<method>(params)``: what the conformance
# tests list (every one must be called through python-telegram-bot and aiogram), and a
# shorthand for tests that make an invoice without HTTP. The table stays the one home.
for _method in METHODS:
    setattr(Sandbox, f"_api_{_method}", _direct(_method))
