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

import json
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from .server import (
    ApiError,
    arg,
    bad_request,
    get_integer_arg,
    get_user_id,
    to_integer,
    to_integer_safe,
    truthy,
)
from .webhook import Webhook

__all__ = ["SUBSCRIPTION_PERIOD", "XTR", "Invoice", "Ledger"]

XTR = "XTR"
SUBSCRIPTION_PERIOD = 2_592_000
#: TDLib's largest amount of a currency (td/telegram/InputInvoice.cpp ``check_currency_amount``).
MAX_AMOUNT = 999_999_999_999


@dataclass
class Invoice:
    """An invoice made by createInvoiceLink (``link`` set) or sendInvoice (``chat_id`` set)."""

    slug: str
    title: str
    description: str
    payload: str
    currency: str
    amount: int
    subscription_period: int | None = None
    link: str | None = None
    chat_id: int | None = None
    message_id: int | None = None


class Ledger(Webhook):
    """Invoices, charges, refunds and subscriptions, and the Bot API methods on them."""

    def __init__(self, token: str | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(token, host=host, port=port)
        self.invoices: dict[str, Invoice] = {}
        self.transactions: list[dict[str, Any]] = []
        self.balance = 0
        self.deliver_refund_updates = True  # send refunded_payment after a refund, as Telegram does
        self._charges: dict[str, dict[str, Any]] = {}
        self._refunded: set[str] = set()
        self._subscriptions: dict[str, dict[str, Any]] = {}  # first charge id -> expiry, cancelled

    # --- invoices ----------------------------------------------------------------------

    def invoice(self, ref: str | Invoice) -> Invoice:
        """An invoice by link (``https://t.me/$slug``), slug or payload."""
        if isinstance(ref, Invoice):
            return ref
        with self._cond:
            slug = _slug_of(ref)
            if slug in self.invoices:
                return self.invoices[slug]
            for inv in reversed(list(self.invoices.values())):
                if inv.payload == ref:
                    return inv
        raise KeyError(f"no invoice {ref!r} in the sandbox")

    def last_invoice(self, chat_id: int | None = None) -> Invoice:
        """The newest invoice (sent to ``chat_id``, if given)."""
        with self._cond:
            for inv in reversed(list(self.invoices.values())):
                if chat_id is None or inv.chat_id == chat_id:
                    return inv
        raise KeyError("the sandbox has made no invoice")

    # --- charges, refunds, renewals ----------------------------------------------------

    def charge(
        self,
        invoice: str | Invoice,
        user: int | dict[str, Any],
        *,
        total_amount: int | None = None,
        currency: str | None = None,
        renewal_of: str | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """Take the Stars (ledger entry) and build the ``successful_payment`` update, unsent."""
        inv = self.invoice(invoice)
        u = self.user_object(user)
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
        with self._cond:
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
        return charge_id, self.message_update(u, successful_payment=payment)

    def refund(self, charge_id: str) -> dict[str, Any]:
        """A refund made outside the bot (say, by Telegram support): the ledger entry and the
        ``refunded_payment`` update, delivered unless ``deliver_refund_updates`` is off."""
        with self._cond:
            if charge_id not in self._charges:
                raise KeyError(f"no charge {charge_id!r} in the sandbox")
            if charge_id in self._refunded:
                raise ValueError(f"charge {charge_id!r} is already refunded")
            return self._record_refund(charge_id, by_bot=False)

    def renew(self, first_charge_id: str, *, deliver: bool = True) -> tuple[str, dict[str, Any]]:
        """Telegram renews a subscription: a new charge for the same invoice, ``is_recurring``."""
        with self._cond:
            first = self._charges[first_charge_id]
            inv = self.invoices[first["slug"]]
            sub = self._subscriptions[first_charge_id]
            if sub["canceled"]:
                raise ValueError("the subscription is cancelled: Telegram would not renew it")
            sub["expires"] += SUBSCRIPTION_PERIOD
        # The renewal is the buyer's payment: their message, as the first one was.
        charge_id, update = self.charge(inv, first["user"], renewal_of=first_charge_id)
        if deliver:
            self.deliver(update)
        return charge_id, update

    def _record_refund(self, charge_id: str, *, by_bot: bool) -> dict[str, Any]:
        """Take the Stars back (ledger entry) and, as Telegram does, send ``refunded_payment``.

        After the bot's refundStarPayment the message is the bot's own (``from``: the bot, in
        the buyer's private chat); a refund made elsewhere is sent as the buyer's message
        (which sender Telegram gives that one is not documented: UNCONFIRMED).
        """
        with self._cond:
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
            message = self.bot_message(user["id"], refunded_payment=refunded)
            update = {"update_id": self.next_id(), "message": message}
        else:
            update = self.message_update(user, refunded_payment=refunded)
        if self.deliver_refund_updates and self.webhook.get("url"):
            self._deliver_later(update)
        return update

    def _user_sets_subscription(self, invoice_payload: str, state: str) -> None:
        """The user cancelled (``canceled``) or re-enabled (``active``) the subscriptions to a payload."""
        if state in ("canceled", "active"):
            with self._cond:
                for charge_id, sub in self._subscriptions.items():
                    if self._charges[charge_id]["payload"] == invoice_payload:
                        sub.update(
                            canceled=state == "canceled", canceled_by="user" if state == "canceled" else None
                        )

    # --- the Bot API: invoices and Stars -----------------------------------------------

    def _invoice_from(self, p: dict[str, Any]) -> Invoice:
        """The invoice's parameters, checked in the order and words of Client.cpp
        ``get_input_message_invoice`` and ``get_labeled_price_parts``, then TDLib's (total
        price), then Telegram's servers' (the upper-case errors)."""
        for name in ("title", "description", "payload", "currency", "prices"):
            if not arg(p, name):
                raise bad_request(f'Parameter "{name}" is required')
        title, description, payload = arg(p, "title"), arg(p, "description"), arg(p, "payload")
        prices = _labeled_prices(arg(p, "prices"))
        max_tip = arg(p, "max_tip_amount")
        if max_tip and to_integer_safe(max_tip) is None:
            raise bad_request('Can\'t parse "max_tip_amount" as Number')
        # Client.cpp get_input_message_invoice: get_integer_arg(query, "subscription_period", 0, 0).
        period = get_integer_arg(p, "subscription_period", 0, 0)
        # TDLib (td/telegram/InputInvoice.cpp): each amount at most 999999999999 either way,
        # and the total must be positive.
        if any(abs(amount) > MAX_AMOUNT for _, amount in prices):
            raise bad_request("Too big amount of the currency specified")
        total = sum(amount for _, amount in prices)
        if total <= 0:
            raise bad_request("Total price must be positive")
        # The sandbox's own length checks (Telegram's servers refuse these too, in their words).
        if not 1 <= len(title) <= 32:
            raise ApiError(400, "Bad Request: invoice title length must be 1-32")
        if not 1 <= len(description) <= 255:
            raise ApiError(400, "Bad Request: invoice description length must be 1-255")
        if not 1 <= len(payload.encode()) <= 128:
            raise ApiError(400, "Bad Request: invoice payload length must be 1-128 bytes")
        currency = arg(p, "currency")
        # From Telegram's servers (not in the Bot API server's source): upper-case errors.
        if currency == XTR:
            if len(prices) != 1 or arg(p, "provider_token") or to_integer(max_tip, 64):
                raise ApiError(400, "Bad Request: STARS_INVOICE_INVALID")
            if period and (period != SUBSCRIPTION_PERIOD or total > 10_000):
                raise ApiError(400, "Bad Request: SUBSCRIPTION_PERIOD_INVALID")
        elif not arg(p, "provider_token"):
            raise ApiError(400, "Bad Request: PAYMENT_PROVIDER_INVALID")
        return Invoice(
            slug=secrets.token_urlsafe(12),
            title=title,
            description=description,
            payload=payload,
            currency=currency,
            amount=total,
            subscription_period=period or None,
        )

    def _api_createInvoiceLink(self, p: dict[str, Any]) -> str:
        inv = self._invoice_from(p)
        inv.link = f"https://t.me/${inv.slug}"
        with self._cond:
            self.invoices[inv.slug] = inv
        return inv.link

    def _api_sendInvoice(self, p: dict[str, Any]) -> dict[str, Any]:
        if get_integer_arg(p, "subscription_period", 0, 0):
            raise ApiError(400, "Bad Request: subscription_period is not supported by sendInvoice")
        # Client.cpp process_send_invoice_query: the invoice is read first, then the chat.
        inv = self._invoice_from(p)
        chat_id = chat_id_arg(p)
        inv.chat_id = chat_id
        message = self.bot_message(
            chat_id,
            invoice={
                "title": inv.title,
                "description": inv.description,
                "start_parameter": arg(p, "start_parameter"),
                "currency": inv.currency,
                "total_amount": inv.amount,
            },
        )
        inv.message_id = message["message_id"]
        with self._cond:
            self.invoices[inv.slug] = inv
        return self._sent(message, arg(p, "reply_markup"))

    def _api_refundStarPayment(self, p: dict[str, Any]) -> bool:
        # Client.cpp process_refund_star_payment_query: get_user_id, then
        # get_required_string_arg; the upper-case errors come from Telegram's servers.
        user_id = get_user_id(p)
        charge_id = arg(p, "telegram_payment_charge_id")
        if not charge_id:
            raise bad_request('Parameter "telegram_payment_charge_id" is required')
        with self._cond:
            charge = self._charges.get(charge_id)
            if charge is None or charge["user_id"] != user_id:
                raise ApiError(400, "Bad Request: CHARGE_NOT_FOUND")
            if charge_id in self._refunded:
                raise ApiError(400, "Bad Request: CHARGE_ALREADY_REFUNDED")
            self._record_refund(charge_id, by_bot=True)  # under the same lock: two refunds cannot both pass
        return True

    def _api_editUserStarSubscription(self, p: dict[str, Any]) -> bool:
        user_id = get_user_id(p)
        charge_id = arg(p, "telegram_payment_charge_id")
        with self._cond:
            charge = self._charges.get(charge_id)
            if charge is None or charge["user_id"] != user_id or charge_id not in self._subscriptions:
                raise ApiError(400, "Bad Request: SUBSCRIPTION_NOT_FOUND")
            sub = self._subscriptions[charge_id]
            canceled = truthy(p.get("is_canceled"))
            if not canceled and sub.get("canceled_by") == "user":
                raise ApiError(400, "Bad Request: SUBSCRIPTION_CANCELED_BY_USER")
            sub["canceled"] = canceled
            sub["canceled_by"] = "bot" if canceled else None
        return True

    def _api_getStarTransactions(self, p: dict[str, Any]) -> dict[str, Any]:
        # Client.cpp process_get_star_transactions_query: get_integer_arg(offset, 0, 0) and
        # get_integer_arg(limit, 100, 1, 100): "abc" reads 0, then each is clamped.
        offset = get_integer_arg(p, "offset", 0, 0)
        limit = get_integer_arg(p, "limit", 100, 1, 100)
        with self._cond:
            return {"transactions": [dict(t) for t in self.transactions[offset : offset + limit]]}

    def _api_getMyStarBalance(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"amount": self.balance}


class _Number(str):
    """A JSON number's text, kept as written (the server reads numbers from their text)."""


def _labeled_prices(text: str) -> list[tuple[str, int]]:
    """``prices`` as Client.cpp ``get_labeled_price_parts`` reads it, with its errors.

    A label is a string (or a number's text); an amount is a number or a numeric string
    (td's ``JsonObject::get_required_long_field``), exactly an integer.
    """
    try:
        value = json.loads(text, parse_int=_Number, parse_float=_Number)
    except ValueError:
        raise bad_request("Can't parse prices JSON object") from None
    if not isinstance(value, list):
        raise bad_request("Expected an Array of labeled prices")
    prices: list[tuple[str, int]] = []
    for price in value:
        problem, label, amount = _labeled_price(price)
        if problem is not None:
            raise bad_request(f"Can't parse labeled price: {problem}")
        prices.append((label, amount))
    if not prices:
        raise bad_request("There must be at least one price")
    return prices


def _labeled_price(price: Any) -> tuple[str | None, str, int]:
    """(problem, label, amount) of one LabeledPrice (Client.cpp ``get_labeled_price_part``,
    td/utils/JsonBuilder.cpp for the field errors)."""
    if not isinstance(price, dict):
        return "LabeledPrice must be an Object", "", 0
    if "label" not in price:
        return 'Can\'t find field "label"', "", 0
    label = price["label"]
    if not isinstance(label, str):  # a _Number is a str too: its text is the label
        return 'Field "label" must be of type String', "", 0
    if not label:
        return "LabeledPrice label must be non-empty", "", 0
    if "amount" not in price:
        return 'Can\'t find field "amount"', label, 0
    raw = price["amount"]
    if not isinstance(raw, str):
        return 'Field "amount" must be a Number', label, 0
    amount = to_integer_safe(raw)
    if amount is None:
        return 'Field "amount" must be a valid Number', label, 0
    return None, label, amount


def chat_id_arg(p: dict[str, Any]) -> int:
    """The chat a message goes to, as Client.cpp ``check_chat`` reads ``chat_id``."""
    text = arg(p, "chat_id")
    if not text:
        raise ApiError(400, "Bad Request: chat_id is empty")  # Client.cpp check_chat
    chat_id = to_integer(text, 64)
    if text.startswith("@") or chat_id == 0:
        # TDLib's getChat/searchPublicChat: "Chat not found" (the sandbox knows no public chats).
        raise bad_request("Chat not found")
    return chat_id


def _slug_of(ref: str) -> str:
    if ref.startswith(("http://", "https://")):
        path = urlparse(ref).path
        return path.rsplit("/", 1)[-1].lstrip("$")
    return ref.lstrip("$")
