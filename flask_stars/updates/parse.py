"""What an update is: its payment kind, and its fields as the ledger and the decision want them.

Nothing here touches the database: an update whose fields are not what Telegram sends
raises ``MalformedUpdate``, and the intake decides what becomes of it.
"""

from __future__ import annotations

from typing import Any

from ..errors import StarsError
from ..ledger import ChargeReport
from ..models import INT64_MAX, UpdateKind
from ..precheckout import PreCheckout
from ..schemas import (
    ValidationError,
    payment_message_schema,
    pre_checkout_query_schema,
    subscription_update_schema,
)


class MalformedUpdate(StarsError):
    """A payment update whose fields are not what Telegram sends."""

    error = "invalid_update"

    def __init__(self, messages: Any) -> None:
        super().__init__(f"malformed payment update: {messages}")
        self.messages = messages


#: Why an ``update_id`` no column can hold is refused.
BAD_UPDATE_ID = {"update_id": ["Not an update id: an integer from 0 to 2^63-1."]}


def classify(update: dict[str, Any]) -> str | None:
    """The payment kind of an update (``UpdateKind``), or None for any other update."""
    if update.get("pre_checkout_query") is not None:
        return UpdateKind.PRE_CHECKOUT
    if isinstance(update.get("subscription"), dict):
        return UpdateKind.SUBSCRIPTION
    msg = update.get("message")
    if isinstance(msg, dict):
        if msg.get("successful_payment") is not None:
            return UpdateKind.SUCCESSFUL_PAYMENT
        if msg.get("refunded_payment") is not None:
            return UpdateKind.REFUNDED_PAYMENT
    return None


def storable_update_id(raw_id: Any) -> int | None:
    """``raw_id`` when it is an update id a column holds (an int from 0 to 2^63-1), else None."""
    if not isinstance(raw_id, int) or isinstance(raw_id, bool):
        return None
    return raw_id if 0 <= raw_id <= INT64_MAX else None


def parse_pre_checkout(data: Any) -> PreCheckout:
    """A ``pre_checkout_query`` object as a ``PreCheckout``; ``MalformedUpdate`` if it is not one."""
    try:
        q = pre_checkout_query_schema.load(data if isinstance(data, dict) else {})
    except ValidationError as exc:
        raise MalformedUpdate(exc.messages) from None
    return PreCheckout(
        id=q["id"],
        user_id=q["from_"]["id"],
        currency=q["currency"],
        total_amount=q["total_amount"],
        invoice_payload=q["invoice_payload"],
        language_code=q["from_"]["language_code"],
    )


def parse_charge(msg: Any, kind: str, update_id: int | None) -> ChargeReport:
    """A payment message's ``successful_payment``/``refunded_payment`` as a ``ChargeReport``."""
    try:
        m = payment_message_schema.load(msg if isinstance(msg, dict) else {})
    except ValidationError as exc:
        raise MalformedUpdate(exc.messages) from None
    charge = m.get(kind)
    if charge is None:
        raise MalformedUpdate({kind: ["Missing data for required field."]})
    return ChargeReport(
        telegram_payment_charge_id=charge["telegram_payment_charge_id"],
        currency=charge["currency"],
        total_amount=charge["total_amount"],
        invoice_payload=charge["invoice_payload"],
        provider_payment_charge_id=charge["provider_payment_charge_id"],
        user_id=m["from_"]["id"],
        chat_id=(m.get("chat") or {}).get("id"),
        language_code=m["from_"]["language_code"],
        update_id=update_id,
        is_recurring=bool(charge.get("is_recurring")),
        subscription_expiration_date=charge.get("subscription_expiration_date"),
        raw=msg,
    )


def parse_subscription(data: Any) -> dict[str, Any]:
    """A ``subscription`` object's fields (``user``, ``invoice_payload``, ``state``);
    ``MalformedUpdate`` if it is not one."""
    try:
        fields: dict[str, Any] = subscription_update_schema.load(data if isinstance(data, dict) else {})
    except ValidationError as exc:
        raise MalformedUpdate({"subscription": exc.messages}) from None
    return fields
