"""The sandbox's user, in the Telegram client: writes to the bot, presses buttons, pays.

``Buyer`` turns what a user does into the updates Telegram would send the app's webhook
(a text or command, a button press, Pay: ``pre_checkout_query`` then, if the app approves
in time, the charge and ``successful_payment``; cancelling a subscription), and takes what
the bot sends back to the user (answers to the pre-checkout query and to button presses,
messages).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from .ledger import Invoice, Ledger
from .server import ApiError, int_param, truthy
from .webhook import Delivery, make_user

__all__ = ["PRE_CHECKOUT_DEADLINE", "TEST_USERS", "Buyer", "PaymentAttempt"]

PRE_CHECKOUT_DEADLINE = 10.0  # Telegram's: answer within 10 s or the payment fails

#: Test users the sandbox page offers (one speaks Russian, to see the Russian texts).
TEST_USERS: list[dict[str, Any]] = [
    {"id": 111111, "is_bot": False, "first_name": "Ann", "username": "ann_test", "language_code": "en"},
    {"id": 222222, "is_bot": False, "first_name": "Иван", "username": "ivan_test", "language_code": "ru"},
    {"id": 333333, "is_bot": False, "first_name": "Bob", "username": "bob_test", "language_code": "en"},
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


class Buyer(Ledger):
    """The user's actions, as updates to the webhook, and the bot's answers to the user."""

    def __init__(self, token: str | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(token, host=host, port=port)
        self._answers: dict[str, dict[str, Any]] = {}  # pre-checkout query id -> the app's answer

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
        """The user presses an inline button carrying ``callback_data``."""
        u = make_user(user)
        update = {
            "update_id": self.next_id(),
            "callback_query": {
                "id": str(self.next_id()),
                "from": u,
                "chat_instance": "1",
                "data": callback_data,
                "message": {
                    "message_id": self.next_id(),
                    "date": int(time.time()),
                    "chat": {"id": chat_id or u["id"], "type": "private"},
                    "text": "…",
                },
            },
        }
        return self.deliver(update)

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
        """The user presses Pay: pre-checkout, then (if approved) the charge and its update.

        ``deliver_payment=False`` charges but never sends ``successful_payment`` (a lost
        webhook, for reconciliation). ``retries`` resends updates answered non-2xx.
        """
        inv = self.invoice(invoice)
        u = make_user(user)
        query_id = str(self.next_id())
        pre = self.deliver(
            {
                "update_id": self.next_id(),
                "pre_checkout_query": {
                    "id": query_id,
                    "from": u,
                    "currency": currency or inv.currency,
                    "total_amount": inv.amount if total_amount is None else total_amount,
                    "invoice_payload": inv.payload,
                },
            },
            retries=retries,
        )
        answer = self._wait_answer(query_id, answer_timeout)
        if answer is None:
            return PaymentAttempt(False, query_id, "pre-checkout not answered in time", pre_checkout=pre)
        if not truthy(answer.get("ok")):
            return PaymentAttempt(False, query_id, answer.get("error_message"), pre_checkout=pre)
        charge_id, update = self.charge(inv, u, total_amount=total_amount, currency=currency)
        attempt = PaymentAttempt(True, query_id, charge_id=charge_id, pre_checkout=pre, payment_update=update)
        if deliver_payment:
            attempt.payment = self.deliver(update, retries=retries)
        return attempt

    def subscription_update(self, user: int | dict[str, Any], invoice_payload: str, state: str) -> Delivery:
        """The ``subscription`` update: the user cancelled (``canceled``), re-enabled
        (``active``), or a renewal failed (``failed``)."""
        self._user_sets_subscription(invoice_payload, state)
        return self.deliver(
            {
                "update_id": self.next_id(),
                "subscription": {"user": make_user(user), "invoice_payload": invoice_payload, "state": state},
            }
        )

    def _wait_answer(self, query_id: str, timeout: float) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while query_id not in self._answers:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
            return self._answers[query_id]

    # --- the Bot API: what the bot sends the user --------------------------------------

    def _api_answerPreCheckoutQuery(self, p: dict[str, Any]) -> bool:
        query_id = str(p.get("pre_checkout_query_id") or "")
        if not query_id:
            raise ApiError(400, 'Bad Request: parameter "pre_checkout_query_id" is required')
        ok = truthy(p.get("ok"))
        if not ok and not p.get("error_message"):
            raise ApiError(400, 'Bad Request: parameter "error_message" is required')
        with self._cond:
            if query_id in self._answers:
                raise ApiError(
                    400, "Bad Request: query is too old and response timeout expired or query ID is invalid"
                )
            self._answers[query_id] = {"ok": ok, "error_message": p.get("error_message")}
            self._cond.notify_all()
        return True

    def _api_answerCallbackQuery(self, p: dict[str, Any]) -> bool:
        return True

    def _api_sendMessage(self, p: dict[str, Any]) -> dict[str, Any]:
        chat_id = int_param(p.get("chat_id"), "chat_id")
        if not p.get("text"):
            raise ApiError(400, "Bad Request: message text is empty")
        return {
            "message_id": self.next_id(),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private"},
            "text": p["text"],
        }
