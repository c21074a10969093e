"""Invoices: what createInvoiceLink and sendInvoice make, and how their parameters are read.

``invoice_from`` checks an invoice's parameters in the order and words of the Bot API server
(Client.cpp ``get_input_message_invoice`` and ``get_labeled_price_parts``), then TDLib's
(the total price), then Telegram's servers' (the upper-case errors such as
``STARS_INVOICE_INVALID``).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from .params import ApiError, Params, arg, bad_request, get_integer_arg, to_integer, to_integer_safe

__all__ = ["MAX_AMOUNT", "SUBSCRIPTION_PERIOD", "XTR", "Invoice", "invoice_from", "slug_of"]

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


def invoice_from(p: Params) -> Invoice:
    """The invoice's parameters, checked in the order and words of Client.cpp
    ``get_input_message_invoice`` and ``get_labeled_price_parts``, then TDLib's (total
    price), then Telegram's servers' (the upper-case errors).

    :param p: createInvoiceLink's or sendInvoice's parameters.
    """
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


def slug_of(ref: str) -> str:
    """The invoice's slug in a link (``https://t.me/$slug``), or ``ref`` itself without ``$``.

    :param ref: an invoice link or slug.
    """
    if ref.startswith(("http://", "https://")):
        path = urlparse(ref).path
        return path.rsplit("/", 1)[-1].lstrip("$")
    return ref.lstrip("$")
