"""The sandbox's Stars ledger: what Telegram's side of the money knows.

``Ledger`` keeps the invoices (createInvoiceLink, sendInvoice), the charges and refunds,
the bot's balance and the transactions getStarTransactions lists, and the subscriptions
and their renewals; it answers the Bot API methods that act on them, and sends the
``refunded_payment`` update a refund brings, as Telegram does.

Who Telegram names as the sender (Bot API server, tdlib/telegram-bot-api Client.cpp
``JsonMessage``: ``from`` is the message's sender): a payment and a renewal are the buyer's
messages (their ``User``, language_code included); the ``refunded_payment`` that follows the
bot's own refundStarPayment is the bot's outgoing service message, which
``Client::need_skip_update_message`` lets through (``messagePaymentRefunded`` is in its list of
outgoing messages not skipped; seen as ``from_user`` = the bot in aiogram issue #1692).
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import Any

from .chats import Chats
from .invoices import SUBSCRIPTION_PERIOD, XTR, Invoice, invoice_from, slug_of
from .params import ApiError, Params, arg, bad_request, chat_id_arg, get_integer_arg, get_user_id, truthy
from .webhook import WebhookDeliverer

__all__ = ["Ledger"]


class Ledger:
    """Invoices, charges, refunds and subscriptions, and the Bot API methods on them."""

    def __init__(self, chats: Chats, deliverer: WebhookDeliverer) -> None:
        """:param chats: the users and messages (a payment is the buyer's message).
        :param deliverer: where ``refunded_payment`` and renewals are delivered.
        """
        self.chats = chats
        self.deliverer = deliverer
        self.invoices: dict[str, Invoice] = {}
        self.transactions: list[dict[str, Any]] = []
        self.balance = 0
        self.deliver_refund_updates = True  # send refunded_payment after a refund, as Telegram does
        self._lock = threading.RLock()
        self._charges: dict[str, dict[str, Any]] = {}
        self._refunded: set[str] = set()
        self._subscriptions: dict[str, dict[str, Any]] = {}  # first charge id -> expiry, cancelled

    # --- invoices ----------------------------------------------------------------------------

    def invoice(self, ref: str | Invoice) -> Invoice:
        """An invoice by link (``https://t.me/$slug``), slug or payload.

        :param ref: a link, slug or payload (an ``Invoice`` is returned as it is).
        """
        if isinstance(ref, Invoice):
            return ref
        with self._lock:
            slug = slug_of(ref)
            if slug in self.invoices:
                return self.invoices[slug]
            for inv in reversed(list(self.invoices.values())):
                if inv.payload == ref:
                    return inv
        raise KeyError(f"no invoice {ref!r} in the sandbox")

    def last_invoice(self, chat_id: int | None = None) -> Invoice:
        """The newest invoice (sent to ``chat_id``, if given).

        :param chat_id: only invoices sent to this chat; any when None.
        """
        with self._lock:
            for inv in reversed(list(self.invoices.values())):
                if chat_id is None or inv.chat_id == chat_id:
                    return inv
        raise KeyError("the sandbox has made no invoice")

    # --- charges, refunds, renewals ----------------------------------------------------------

    def charge(
        self,
        invoice: str | Invoice,
        user: int | dict[str, Any],
        *,
        total_amount: int | None = None,
        currency: str | None = None,
        renewal_of: str | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """Take the Stars (ledger entry) and build the ``successful_payment`` update, unsent.

        :param invoice: the invoice paid (link, slug, payload or ``Invoice``).
        :param user: the buyer, a user id or a ``User`` dict.
        :param total_amount: the amount charged, if not the invoice's.
        :param currency: the currency, if not the invoice's.
        :param renewal_of: the first charge of the subscription this renews.
        """
        inv = self.invoice(invoice)
        u = self.chats.user_object(user)
        amount = inv.amount if total_amount is None else total_amount
        charge_id = "stx" + secrets.token_urlsafe(24)
        now = int(time.time())
        source: dict[str, Any] = {
            "type": "user",
            "transaction_type": "invoice_payment",
            "user": u,
            "invoice_payload": inv.payload,
        }
        payment: dict[str, Any] = {
            "currency": currency or inv.currency,
            "total_amount": amount,
            "invoice_payload": inv.payload,
            "telegram_payment_charge_id": charge_id,
            "provider_payment_charge_id": "",
        }
        with self._lock:
            self._charges[charge_id] = {
                "user_id": u["id"],
                "user": u,  # as Telegram knows the buyer: renewals and refunds name them so
                "amount": amount,
                "payload": inv.payload,
                "slug": inv.slug,
            }
            if inv.subscription_period:
                source["subscription_period"] = inv.subscription_period
                if renewal_of is None:
                    self._subscriptions[charge_id] = {"expires": now + SUBSCRIPTION_PERIOD, "canceled": False}
                    payment["is_first_recurring"] = True
                payment["is_recurring"] = True
                payment["subscription_expiration_date"] = self._subscriptions[renewal_of or charge_id][
                    "expires"
                ]
            self.balance += amount
            self.transactions.append({"id": charge_id, "amount": amount, "date": now, "source": source})
        # The buyer's message (from: their User), in their private chat with the bot.
        return charge_id, self.chats.message_update(u, successful_payment=payment)

    def refund(self, charge_id: str) -> dict[str, Any]:
        """A refund made outside the bot (say, by Telegram support): the ledger entry and the
        ``refunded_payment`` update, delivered unless ``deliver_refund_updates`` is off.

        :param charge_id: the charge's ``telegram_payment_charge_id``.
        """
        with self._lock:
            if charge_id not in self._charges:
                raise KeyError(f"no charge {charge_id!r} in the sandbox")
            if charge_id in self._refunded:
                raise ValueError(f"charge {charge_id!r} is already refunded")
            return self._record_refund(charge_id, by_bot=False)

    def renew(self, first_charge_id: str, *, deliver: bool = True) -> tuple[str, dict[str, Any]]:
        """Telegram renews a subscription: a new charge for the same invoice, ``is_recurring``.

        :param first_charge_id: the subscription's first charge.
        :param deliver: post the renewal's ``successful_payment`` to the webhook.
        """
        with self._lock:
            first = self._charges[first_charge_id]
            inv = self.invoices[first["slug"]]
            sub = self._subscriptions[first_charge_id]
            if sub["canceled"]:
                raise ValueError("the subscription is cancelled: Telegram would not renew it")
            sub["expires"] += SUBSCRIPTION_PERIOD
        # The renewal is the buyer's payment: their message, as the first one was.
        charge_id, update = self.charge(inv, first["user"], renewal_of=first_charge_id)
        if deliver:
            self.deliverer.deliver(update)
        return charge_id, update

    def _record_refund(self, charge_id: str, *, by_bot: bool) -> dict[str, Any]:
        """Take the Stars back (ledger entry) and, as Telegram does, send ``refunded_payment``.

        After the bot's refundStarPayment the message is the bot's own (``from``: the bot, in
        the buyer's private chat); a refund made elsewhere is sent as the buyer's message
        (which sender Telegram gives that one is not documented: UNCONFIRMED).
        """
        with self._lock:
            charge = self._charges[charge_id]
            user = dict(charge["user"])
            self._refunded.add(charge_id)
            self.balance -= charge["amount"]
            self.transactions.append(
                {
                    "id": charge_id,
                    "amount": charge["amount"],
                    "date": int(time.time()),
                    "receiver": {
                        "type": "user",
                        "transaction_type": "invoice_payment",
                        "user": user,
                        "invoice_payload": charge["payload"],
                    },
                }
            )
        refunded = {
            "currency": XTR,
            "total_amount": charge["amount"],
            "invoice_payload": charge["payload"],
            "telegram_payment_charge_id": charge_id,
        }
        if by_bot:
            message = self.chats.bot_message(user["id"], refunded_payment=refunded)
            update = {"update_id": self.chats.next_id(), "message": message}
        else:
            update = self.chats.message_update(user, refunded_payment=refunded)
        if self.deliver_refund_updates and self.deliverer.target.get("url"):
            self.deliverer.deliver_later(update)
        return update

    def user_sets_subscription(self, invoice_payload: str, state: str) -> None:
        """The user cancelled (``canceled``) or re-enabled (``active``) the subscriptions to a
        payload; any other state changes nothing.

        :param invoice_payload: the subscription invoice's payload.
        :param state: ``canceled``, ``active`` or another state of the ``subscription`` update.
        """
        if state in ("canceled", "active"):
            with self._lock:
                for charge_id, sub in self._subscriptions.items():
                    if self._charges[charge_id]["payload"] == invoice_payload:
                        sub.update(
                            canceled=state == "canceled", canceled_by="user" if state == "canceled" else None
                        )

    # --- the Bot API: invoices and Stars -----------------------------------------------------

    def create_invoice_link(self, params: Params) -> str:
        """``createInvoiceLink``: the invoice's ``https://t.me/$slug`` link.

        :param params: the request's parameters.
        """
        inv = invoice_from(params)
        inv.link = f"https://t.me/${inv.slug}"
        with self._lock:
            self.invoices[inv.slug] = inv
        return inv.link

    def send_invoice(self, params: Params) -> dict[str, Any]:
        """``sendInvoice``: the invoice is read first, then the chat (Client.cpp
        ``process_send_invoice_query``); no subscriptions.

        :param params: the request's parameters.
        """
        if get_integer_arg(params, "subscription_period", 0, 0):
            raise ApiError(400, "Bad Request: subscription_period is not supported by sendInvoice")
        inv = invoice_from(params)
        chat_id = chat_id_arg(params)
        inv.chat_id = chat_id
        message = self.chats.bot_message(
            chat_id,
            invoice={
                "title": inv.title,
                "description": inv.description,
                "start_parameter": arg(params, "start_parameter"),
                "currency": inv.currency,
                "total_amount": inv.amount,
            },
        )
        inv.message_id = message["message_id"]
        with self._lock:
            self.invoices[inv.slug] = inv
        return self.chats.keep_sent(message, arg(params, "reply_markup"))

    def refund_star_payment(self, params: Params) -> bool:
        """``refundStarPayment`` (Client.cpp ``process_refund_star_payment_query``:
        ``get_user_id``, then the charge id; the upper-case errors come from Telegram's servers).

        :param params: the request's parameters.
        """
        user_id = get_user_id(params)
        charge_id = arg(params, "telegram_payment_charge_id")
        if not charge_id:
            raise bad_request('Parameter "telegram_payment_charge_id" is required')
        with self._lock:
            charge = self._charges.get(charge_id)
            if charge is None or charge["user_id"] != user_id:
                raise ApiError(400, "Bad Request: CHARGE_NOT_FOUND")
            if charge_id in self._refunded:
                raise ApiError(400, "Bad Request: CHARGE_ALREADY_REFUNDED")
            self._record_refund(charge_id, by_bot=True)  # under the same lock: two refunds cannot both pass
        return True

    def edit_user_star_subscription(self, params: Params) -> bool:
        """``editUserStarSubscription``: the bot cancels or re-enables a subscription (not one
        the user cancelled).

        :param params: the request's parameters.
        """
        user_id = get_user_id(params)
        charge_id = arg(params, "telegram_payment_charge_id")
        with self._lock:
            charge = self._charges.get(charge_id)
            if charge is None or charge["user_id"] != user_id or charge_id not in self._subscriptions:
                raise ApiError(400, "Bad Request: SUBSCRIPTION_NOT_FOUND")
            sub = self._subscriptions[charge_id]
            canceled = truthy(params.get("is_canceled"))
            if not canceled and sub.get("canceled_by") == "user":
                raise ApiError(400, "Bad Request: SUBSCRIPTION_CANCELED_BY_USER")
            sub["canceled"] = canceled
            sub["canceled_by"] = "bot" if canceled else None
        return True

    def get_star_transactions(self, params: Params) -> dict[str, Any]:
        """``getStarTransactions`` (Client.cpp ``process_get_star_transactions_query``:
        ``offset`` and ``limit`` through ``get_integer_arg``, so "abc" reads 0, then clamped).

        :param params: the request's parameters.
        """
        offset = get_integer_arg(params, "offset", 0, 0)
        limit = get_integer_arg(params, "limit", 100, 1, 100)
        with self._lock:
            return {"transactions": [dict(t) for t in self.transactions[offset : offset + limit]]}

    def get_my_star_balance(self, params: Params) -> dict[str, Any]:
        """``getMyStarBalance``: the bot's balance.

        :param params: the request's parameters (none are read).
        """
        return {"amount": self.balance}
