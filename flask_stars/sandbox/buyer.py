"""The sandbox's user, in the Telegram client: writes to the bot, presses buttons, pays.

``Buyer`` turns what a user does into the updates Telegram would send the app's webhook
(a text or command, a button press, Pay: ``pre_checkout_query`` then, if the app approves
in time, the charge and ``successful_payment``; cancelling a subscription).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from .chats import Chats
from .invoices import Invoice
from .ledger import Ledger
from .queries import PRE_CHECKOUT_DEADLINE, PreCheckoutQueries
from .webhook import Delivery, WebhookDeliverer

__all__ = ["TEST_USERS", "Buyer", "PaymentAttempt"]

#: Test users the sandbox page offers (Russian and German ones, to see the texts in their language).
TEST_USERS: list[dict[str, Any]] = [
    {"id": 111111, "is_bot": False, "first_name": "Ann", "username": "ann_test", "language_code": "en"},
    {"id": 222222, "is_bot": False, "first_name": "Иван", "username": "ivan_test", "language_code": "ru"},
    {"id": 333333, "is_bot": False, "first_name": "Bob", "username": "bob_test", "language_code": "en"},
    {"id": 444444, "is_bot": False, "first_name": "Hanna", "username": "hanna_test", "language_code": "de"},
]


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


class Buyer:
    """The user's actions, as updates to the webhook."""

    def __init__(
        self, chats: Chats, deliverer: WebhookDeliverer, ledger: Ledger, queries: PreCheckoutQueries
    ) -> None:
        """:param chats: the users and the bot's messages.
        :param deliverer: where the user's updates go.
        :param ledger: the invoices paid and the charges made.
        :param queries: the pre-checkout queries and the bot's answers.
        """
        self.chats = chats
        self.deliverer = deliverer
        self.ledger = ledger
        self.queries = queries

    def send_text(self, user: int | dict[str, Any], text: str) -> Delivery:
        """The user writes ``text`` to the bot in a private chat (e.g. ``/buy_stars``).

        :param user: the user, an id or a ``User`` dict.
        :param text: the message's text (a leading ``/word`` is a bot command).
        """
        update = self.chats.message_update(user, text=text)
        if text.startswith("/"):
            update["message"]["entities"] = [
                {"type": "bot_command", "offset": 0, "length": len(text.split()[0])}
            ]
        return self.deliverer.deliver(update)

    def press_button(
        self, user: int | dict[str, Any], callback_data: str, chat_id: int | None = None
    ) -> Delivery:
        """The user presses an inline button carrying ``callback_data`` under a bot's message.

        The update carries that message as the bot sent it (the latest one in the chat with
        such a button), or a stand-in message from the bot when it sent none.

        :param user: the user, an id or a ``User`` dict.
        :param callback_data: the button's data.
        :param chat_id: the chat of the message (the user's private chat when None).
        """
        u = self.chats.user_object(user)
        chat = chat_id or u["id"]
        message = self.chats.message_with_button(chat, callback_data) or self.chats.bot_message(
            chat, text="…"
        )
        update = {
            "update_id": self.chats.next_id(),
            "callback_query": {
                "id": self.queries.new_id(),
                "from": u,
                "message": message,
                "chat_instance": str(-(10**18 + message["chat"]["id"])),
                "data": callback_data,
            },
        }
        return self.deliverer.deliver(update)

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
        ``successful_payment`` follows, and a late answer is refused.

        :param invoice: the invoice (link, slug, payload or ``Invoice``).
        :param user: the buyer, an id or a ``User`` dict.
        :param total_amount: the amount in the query and the charge, if not the invoice's.
        :param currency: the currency, if not the invoice's.
        :param deliver_payment: False charges but never sends ``successful_payment`` (a lost
            webhook, for reconciliation).
        :param retries: how many times updates answered non-2xx are resent.
        :param answer_timeout: seconds the bot has to answer the pre-checkout query.
        """
        inv = self.ledger.invoice(invoice)
        u = self.chats.user_object(user)
        query_id = self.queries.new_id()
        update = {
            "update_id": self.chats.next_id(),
            "pre_checkout_query": {
                "id": query_id,
                "from": u,
                "currency": currency or inv.currency,
                "total_amount": inv.amount if total_amount is None else total_amount,
                "invoice_payload": inv.payload,
            },
        }
        self.queries.open(query_id, answer_timeout)
        sent: dict[str, Any] = {}
        sender = self._send_query(update, query_id, retries, sent)
        answer = self.queries.wait(query_id)
        if answer is not None:
            sender.join()  # the webhook's own answer (its 2xx) follows the API call
        pre: Delivery | None = sent.get("delivery")
        if answer is None:
            return PaymentAttempt(False, query_id, "pre-checkout not answered in time", pre_checkout=pre)
        if not answer["ok"]:
            return PaymentAttempt(False, query_id, answer.get("error_message"), pre_checkout=pre)
        charge_id, paid = self.ledger.charge(inv, u, total_amount=total_amount, currency=currency)
        attempt = PaymentAttempt(True, query_id, charge_id=charge_id, pre_checkout=pre, payment_update=paid)
        if deliver_payment:
            attempt.payment = self.deliverer.deliver(paid, retries=retries)
        return attempt

    def _send_query(
        self, update: dict[str, Any], query_id: str, retries: int, sent: dict[str, Any]
    ) -> threading.Thread:
        """Post the pre-checkout query from a background thread, keeping its ``Delivery`` in
        ``sent``; a query that cannot reach the bot stops the wait for its answer."""

        def send() -> None:
            try:
                sent["delivery"] = delivery = self.deliverer.deliver(update, retries=retries)
                reached = delivery.dropped is None
            except Exception:  # the webhook cannot be reached: no answer can come
                reached = False
            if not reached:
                self.queries.undeliverable(query_id)

        sender = threading.Thread(target=send, name="stars-sandbox-pre-checkout", daemon=True)
        self.deliverer.in_background(sender)
        return sender

    def subscription_update(self, user: int | dict[str, Any], invoice_payload: str, state: str) -> Delivery:
        """The ``subscription`` update: the user cancelled (``canceled``), re-enabled
        (``active``), or a renewal failed (``failed``).

        :param user: the subscriber, an id or a ``User`` dict.
        :param invoice_payload: the subscription invoice's payload.
        :param state: ``canceled``, ``active`` or ``failed``.
        """
        self.ledger.user_sets_subscription(invoice_payload, state)
        return self.deliverer.deliver(
            {
                "update_id": self.chats.next_id(),
                "subscription": {
                    "user": self.chats.user_object(user),
                    "invoice_payload": invoice_payload,
                    "state": state,
                },
            }
        )
