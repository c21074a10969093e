"""The sandbox's Stars ledger: what Telegram's side of the money knows.

``Ledger`` keeps the invoices (createInvoiceLink, sendInvoice), the charges and refunds,
the bot's balance and the transactions getStarTransactions lists, and the subscriptions
and their renewals; it answers the Bot API methods that act on them, and sends the
``refunded_payment`` update a refund brings, as Telegram does.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from .server import ApiError, int_param, truthy
from .webhook import Webhook, make_user

__all__ = ["SUBSCRIPTION_PERIOD", "XTR", "Invoice", "Ledger"]

XTR = "XTR"
SUBSCRIPTION_PERIOD = 2_592_000


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
        u = make_user(user)
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
        return charge_id, self.message_update(u, successful_payment=payment)

    def refund(self, charge_id: str) -> dict[str, Any]:
        """A refund made outside the bot (say, by Telegram support): the ledger entry and the
        ``refunded_payment`` update, delivered unless ``deliver_refund_updates`` is off."""
        with self._cond:
            if charge_id not in self._charges:
                raise KeyError(f"no charge {charge_id!r} in the sandbox")
            if charge_id in self._refunded:
                raise ValueError(f"charge {charge_id!r} is already refunded")
            return self._record_refund(charge_id)

    def renew(self, first_charge_id: str, *, deliver: bool = True) -> tuple[str, dict[str, Any]]:
        """Telegram renews a subscription: a new charge for the same invoice, ``is_recurring``."""
        with self._cond:
            first = self._charges[first_charge_id]
            inv = self.invoices[first["slug"]]
            sub = self._subscriptions[first_charge_id]
            if sub["canceled"]:
                raise ValueError("the subscription is cancelled: Telegram would not renew it")
            sub["expires"] += SUBSCRIPTION_PERIOD
        charge_id, update = self.charge(inv, first["user_id"], renewal_of=first_charge_id)
        if deliver:
            self.deliver(update)
        return charge_id, update

    def _record_refund(self, charge_id: str) -> dict[str, Any]:
        """Take the Stars back (ledger entry) and, as Telegram does, send ``refunded_payment``."""
        with self._cond:
            charge = self._charges[charge_id]
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
                        "user": make_user(charge["user_id"]),
                        "invoice_payload": charge["payload"],
                    },
                }
            )
        update = self.message_update(
            charge["user_id"],
            refunded_payment={
                "currency": XTR,
                "total_amount": charge["amount"],
                "invoice_payload": charge["payload"],
                "telegram_payment_charge_id": charge_id,
            },
        )
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
        for name in ("title", "description", "payload", "currency", "prices"):
            if not p.get(name):
                raise ApiError(400, f'Bad Request: parameter "{name}" is required')
        if not 1 <= len(p["title"]) <= 32:
            raise ApiError(400, "Bad Request: invoice title length must be 1-32")
        if not 1 <= len(p["description"]) <= 255:
            raise ApiError(400, "Bad Request: invoice description length must be 1-255")
        if not 1 <= len(p["payload"].encode()) <= 128:
            raise ApiError(400, "Bad Request: invoice payload length must be 1-128 bytes")
        try:
            prices = json.loads(p["prices"]) if isinstance(p["prices"], str) else p["prices"]
        except ValueError:
            raise ApiError(400, "Bad Request: can't parse prices JSON object") from None
        if not isinstance(prices, list) or not prices:
            raise ApiError(400, "Bad Request: there must be at least one price")
        for price in prices:
            if not isinstance(price, dict) or not price.get("label"):
                raise ApiError(400, "Bad Request: LabeledPrice label must be non-empty")
            if not isinstance(price.get("amount"), int) or price["amount"] <= 0:
                raise ApiError(400, "Bad Request: can't parse prices JSON object")
        period = p.get("subscription_period")
        if p["currency"] == XTR:
            if len(prices) != 1 or p.get("provider_token") or p.get("max_tip_amount"):
                raise ApiError(400, "Bad Request: STARS_INVOICE_INVALID")
            if period is not None and (int(period) != SUBSCRIPTION_PERIOD or prices[0]["amount"] > 10_000):
                raise ApiError(400, "Bad Request: SUBSCRIPTION_PERIOD_INVALID")
        elif not p.get("provider_token"):
            raise ApiError(400, "Bad Request: PAYMENT_PROVIDER_INVALID")
        return Invoice(
            slug=secrets.token_urlsafe(12),
            title=p["title"],
            description=p["description"],
            payload=p["payload"],
            currency=p["currency"],
            amount=sum(price["amount"] for price in prices),
            subscription_period=int(period) if period is not None else None,
        )

    def _api_createInvoiceLink(self, p: dict[str, Any]) -> str:
        inv = self._invoice_from(p)
        inv.link = f"https://t.me/${inv.slug}"
        with self._cond:
            self.invoices[inv.slug] = inv
        return inv.link

    def _api_sendInvoice(self, p: dict[str, Any]) -> dict[str, Any]:
        if p.get("subscription_period"):
            raise ApiError(400, "Bad Request: subscription_period is not supported by sendInvoice")
        chat_id = int_param(p.get("chat_id"), "chat_id")
        inv = self._invoice_from(p)
        inv.chat_id = chat_id
        inv.message_id = self.next_id()
        with self._cond:
            self.invoices[inv.slug] = inv
        return {
            "message_id": inv.message_id,
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private"},
            "invoice": {
                "title": inv.title,
                "description": inv.description,
                "start_parameter": "",
                "currency": inv.currency,
                "total_amount": inv.amount,
            },
        }

    def _api_refundStarPayment(self, p: dict[str, Any]) -> bool:
        user_id = int_param(p.get("user_id"), "user_id", "Bad Request: invalid user_id specified")
        charge_id = p.get("telegram_payment_charge_id")
        if not charge_id:
            raise ApiError(400, 'Bad Request: parameter "telegram_payment_charge_id" is required')
        with self._cond:
            charge = self._charges.get(charge_id)
            if charge is None or charge["user_id"] != user_id:
                raise ApiError(400, "Bad Request: CHARGE_NOT_FOUND")
            if charge_id in self._refunded:
                raise ApiError(400, "Bad Request: CHARGE_ALREADY_REFUNDED")
            self._record_refund(charge_id)  # under the same lock: two refunds cannot both pass
        return True

    def _api_editUserStarSubscription(self, p: dict[str, Any]) -> bool:
        user_id = int_param(p.get("user_id"), "user_id", "Bad Request: invalid user_id specified")
        charge_id = p.get("telegram_payment_charge_id") or ""
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
        offset = int(p.get("offset") or 0)
        limit = max(1, min(int(p.get("limit") or 100), 100))
        with self._cond:
            return {"transactions": self.transactions[offset : offset + limit]}

    def _api_getMyStarBalance(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"amount": self.balance}


def _slug_of(ref: str) -> str:
    if ref.startswith(("http://", "https://")):
        path = urlparse(ref).path
        return path.rsplit("/", 1)[-1].lstrip("$")
    return ref.lstrip("$")
