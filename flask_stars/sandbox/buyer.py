"""The sandbox's user, in the Telegram client: writes to the bot, presses buttons, pays.

``Buyer`` turns what a user does into the updates Telegram would send the app's webhook
(a text or command, a button press, Pay: ``pre_checkout_query`` then, if the app approves
in time, the charge and ``successful_payment``; cancelling a subscription), and takes what
the bot sends back to the user (answers to the pre-checkout query and to button presses,
messages).
"""

from __future__ import annotations

import copy
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from .ledger import Invoice, Ledger, chat_id_arg
from .server import ApiError, arg, bad_request, to_integer, truthy
from .webhook import Delivery

__all__ = ["PRE_CHECKOUT_DEADLINE", "TEST_USERS", "Buyer", "PaymentAttempt"]

PRE_CHECKOUT_DEADLINE = 10.0  # Telegram's: answer within 10 s or the payment fails
#: Client.cpp fail_query_with_error's words for QUERY_ID_INVALID, which Telegram's servers
#: return for an answer to a query they never sent, already answered, or answered too late.
QUERY_TOO_OLD = "Bad Request: query is too old and response timeout expired or query ID is invalid"

#: Test users the sandbox page offers (one speaks Russian, to see the Russian texts).
TEST_USERS: list[dict[str, Any]] = [
    {"id": 111111, "is_bot": False, "first_name": "Ann", "username": "ann_test", "language_code": "en"},
    {"id": 222222, "is_bot": False, "first_name": "Иван", "username": "ivan_test", "language_code": "ru"},
    {"id": 333333, "is_bot": False, "first_name": "Bob", "username": "bob_test", "language_code": "en"},
]


@dataclass
class _Query:
    """A pre-checkout query sent to the bot: until when it may be answered, and the answer."""

    deadline: float  # time.monotonic()
    answer: dict[str, Any] | None = None
    closed: bool = False


@dataclass
class PaymentAttempt:
    """What ``pay()`` saw: the pre-checkout answer and, if approved, the charge."""

    ok: bool
    query_id: str
    error_message: str | None = None
    charge_id: str | None = None
    pre_checkout: Delivery | None = None
    payment: Delivery | None = None
    payment_update: dict[str, Any] | None = None


class Buyer(Ledger):
    """The user's actions, as updates to the webhook, and the bot's answers to the user."""

    def __init__(self, token: str | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(token, host=host, port=port)
        self._queries: dict[str, _Query] = {}  # pre-checkout query id -> its deadline and answer

    # --- what the user does ------------------------------------------------------------

    def send_text(self, user: int | dict[str, Any], text: str) -> Delivery:
        """The user writes ``text`` to the bot in a private chat (e.g. ``/buy_stars``)."""
        update = self.message_update(user, text=text)
        if text.startswith("/"):
            update["message"]["entities"] = [
                {"type": "bot_command", "offset": 0, "length": len(text.split()[0])}
            ]
        return self.deliver(update)

    def press_button(
        self, user: int | dict[str, Any], callback_data: str, chat_id: int | None = None
    ) -> Delivery:
        """The user presses an inline button carrying ``callback_data`` under a bot's message.

        The update carries that message as the bot sent it (the latest one in the chat with
        such a button), or a stand-in message from the bot when it sent none.
        """
        u = self.user_object(user)
        message = self._message_with_button(chat_id or u["id"], callback_data) or self.bot_message(
            chat_id or u["id"], text="…"
        )
        update = {
            "update_id": self.next_id(),
            "callback_query": {
                "id": self._new_query_id(),
                "from": u,
                "message": message,
                "chat_instance": str(-(10**18 + message["chat"]["id"])),
                "data": callback_data,
            },
        }
        return self.deliver(update)

    def _message_with_button(self, chat_id: int, callback_data: str) -> dict[str, Any] | None:
        with self._cond:
            for message in reversed(self.bot_messages):
                rows = (message.get("reply_markup") or {}).get("inline_keyboard") or []
                buttons = [b for row in rows if isinstance(row, list) for b in row if isinstance(b, dict)]
                if message["chat"]["id"] == chat_id and any(
                    b.get("callback_data") == callback_data for b in buttons
                ):
                    found: dict[str, Any] = copy.deepcopy(message)
                    return found
        return None

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
        """The user presses Pay: pre-checkout, then (if approved in time) the charge and its update.

        The bot has ``answer_timeout`` seconds (Telegram's 10) from the moment the query is
        sent: without an answer by then the payment fails on the buyer's side, no
        ``successful_payment`` follows, and a late answer is refused. ``deliver_payment=False``
        charges but never sends ``successful_payment`` (a lost webhook, for reconciliation).
        ``retries`` resends updates answered non-2xx.
        """
        inv = self.invoice(invoice)
        u = self.user_object(user)
        query_id = self._new_query_id()
        update = {
            "update_id": self.next_id(),
            "pre_checkout_query": {
                "id": query_id,
                "from": u,
                "currency": currency or inv.currency,
                "total_amount": inv.amount if total_amount is None else total_amount,
                "invoice_payload": inv.payload,
            },
        }
        with self._cond:
            self._queries[query_id] = _Query(deadline=time.monotonic() + answer_timeout)
        sent: dict[str, Any] = {}

        def send() -> None:
            try:
                sent["delivery"] = self.deliver(update, retries=retries)
            except Exception as exc:  # the webhook cannot be reached: no answer can come
                sent["error"] = exc
            with self._cond:
                sent["done"] = True
                self._cond.notify_all()

        sender = threading.Thread(target=send, name="stars-sandbox-pre-checkout", daemon=True)
        self._in_background(sender)
        answer = self._wait_answer(query_id, sent)
        if answer is not None:
            sender.join()  # the webhook's own answer (its 2xx) follows the API call
        pre: Delivery | None = sent.get("delivery")
        if answer is None:
            return PaymentAttempt(False, query_id, "pre-checkout not answered in time", pre_checkout=pre)
        if not answer["ok"]:
            return PaymentAttempt(False, query_id, answer.get("error_message"), pre_checkout=pre)
        charge_id, paid = self.charge(inv, u, total_amount=total_amount, currency=currency)
        attempt = PaymentAttempt(True, query_id, charge_id=charge_id, pre_checkout=pre, payment_update=paid)
        if deliver_payment:
            attempt.payment = self.deliver(paid, retries=retries)
        return attempt

    def subscription_update(self, user: int | dict[str, Any], invoice_payload: str, state: str) -> Delivery:
        """The ``subscription`` update: the user cancelled (``canceled``), re-enabled
        (``active``), or a renewal failed (``failed``)."""
        self._user_sets_subscription(invoice_payload, state)
        return self.deliver(
            {
                "update_id": self.next_id(),
                "subscription": {
                    "user": self.user_object(user),
                    "invoice_payload": invoice_payload,
                    "state": state,
                },
            }
        )

    def expect_pre_checkout(self, query_id: str, *, answer_timeout: float = PRE_CHECKOUT_DEADLINE) -> None:
        """Take the bot's answer to a pre-checkout query this sandbox did not send (a test or a
        load generator posted it to the app itself) for ``answer_timeout`` seconds, as
        Telegram takes one it sent; any other unknown query id is refused, as on Telegram."""
        deadline = time.monotonic() + answer_timeout
        with self._cond:
            self._queries.setdefault(query_id, _Query(deadline=deadline))

    def _new_query_id(self) -> str:
        """A query id as Telegram's look: a 64-bit number, as a string."""
        return str(secrets.randbits(62) + (1 << 62))

    def _note_outgoing(self, update: dict[str, Any]) -> None:
        """A pre-checkout query Telegram sends (also one a test built and delivers itself) may
        be answered, until its deadline."""
        query = update.get("pre_checkout_query")
        if isinstance(query, dict) and isinstance(query.get("id"), str):
            deadline = time.monotonic() + PRE_CHECKOUT_DEADLINE
            with self._cond:
                self._queries.setdefault(query["id"], _Query(deadline=deadline))

    def _wait_answer(self, query_id: str, sent: dict[str, Any]) -> dict[str, Any] | None:
        """The bot's answer to the query, or None once its deadline passed (the query is then
        closed: a later answer is refused). Returns early when the query never reached the bot
        (not in ``allowed_updates``, or the webhook could not be reached): no answer can come."""
        with self._cond:
            query = self._queries[query_id]
            while query.answer is None:
                undeliverable = sent.get("done") and ("error" in sent or sent["delivery"].dropped is not None)
                left = query.deadline - time.monotonic()
                if left <= 0 or undeliverable:
                    query.closed = True
                    return None
                self._cond.wait(left)
            return query.answer

    # --- the Bot API: what the bot sends the user --------------------------------------

    def _api_answerPreCheckoutQuery(self, p: dict[str, Any]) -> bool:
        # Client.cpp process_answer_pre_checkout_query_query: error_message is required when
        # ok is false; the id then goes to Telegram, whose servers refuse one they never sent,
        # already answered, or that is past its 10 s (QUERY_ID_INVALID, worded by Client.cpp).
        ok = truthy(p.get("ok"))
        if not ok and not arg(p, "error_message"):
            raise bad_request('Parameter "error_message" is required')
        raw_id = arg(p, "pre_checkout_query_id")
        with self._cond:
            query = self._queries.get(raw_id) or self._queries.get(str(to_integer(raw_id, 64)))
            if query is None or query.closed or query.answer is not None:
                raise ApiError(400, QUERY_TOO_OLD)
            if self._arrived() > query.deadline:
                query.closed = True
                raise ApiError(400, QUERY_TOO_OLD)
            query.answer = {"ok": ok, "error_message": arg(p, "error_message") or None}
            self._cond.notify_all()
        return True

    def _api_answerCallbackQuery(self, p: dict[str, Any]) -> bool:
        return True

    def _api_sendMessage(self, p: dict[str, Any]) -> dict[str, Any]:
        # Client.cpp process_send_message_query: the text is read first ("Message text is
        # empty"), then the chat (check_chat: "chat_id is empty").
        text = arg(p, "text")
        if not text:
            raise bad_request("Message text is empty")
        return self._sent(self.bot_message(chat_id_arg(p), text=text), arg(p, "reply_markup"))
