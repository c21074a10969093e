"""marshmallow schemas for every request, response and Telegram update flask_stars reads.

The same schemas validate input (a failure is a 400 with marshmallow's messages per
field) and describe the endpoints in ``/stars/openapi.json``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from .models import INT64_MAX
from .packs import PACK_ID_RE

__all__ = ["ValidationError"]


class UTCDateTime(fields.DateTime):
    """ISO 8601 in UTC with a ``Z``: ``2026-01-01T12:00:00Z``."""

    def _serialize(self, value: datetime | None, attr: Any, obj: Any, **kwargs: Any) -> str | None:
        if value is None:
            return None
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


class _IgnoresUnknown(Schema):
    """Unknown keys are dropped, not refused: Telegram adds fields to its objects over time."""

    class Meta:
        unknown = EXCLUDE


# --- Mini App API ------------------------------------------------------------------------


class PackSchema(Schema):
    id = fields.String(required=True, metadata={"example": "stars_pack_1"})
    title = fields.String(
        required=True, metadata={"description": "in the buyer's language", "example": "Starter pack"}
    )
    description = fields.String(required=True, metadata={"description": "in the buyer's language"})
    stars = fields.Integer(
        required=True, metadata={"description": "price in whole Telegram Stars", "example": 10}
    )
    credits = fields.Raw(
        allow_none=True, metadata={"description": "what the app gives for it", "example": 1000000}
    )
    subscription = fields.Boolean(required=True)


class PacksSchema(Schema):
    packs = fields.List(fields.Nested(PackSchema), required=True)


class InvoiceRequestSchema(_IgnoresUnknown):
    pack_id = fields.String(
        required=True,
        validate=validate.Regexp(PACK_ID_RE, error="Not a pack id."),
        metadata={"example": "stars_pack_1"},
    )


class InvoiceSchema(Schema):
    order_id = fields.String(required=True)
    invoice_url = fields.String(required=True, metadata={"example": "https://t.me/$AbCdEf"})
    status = fields.String(required=True, metadata={"example": "pending"})
    expires_at = UTCDateTime(required=True)
    pack = fields.Nested(PackSchema, required=True)


class OrderSchema(Schema):
    order_id = fields.String(required=True)
    status = fields.String(
        required=True,
        validate=validate.OneOf(["pending", "paid", "refunded", "expired", "failed"]),
        metadata={"description": "only a successful_payment from Telegram makes an order paid"},
    )
    pack_id = fields.String(required=True)
    stars = fields.Integer(required=True)
    created_at = UTCDateTime(required=True)
    expires_at = UTCDateTime(required=True)
    paid_at = UTCDateTime(allow_none=True)


class OrderQuerySchema(_IgnoresUnknown):
    wait = fields.Float(
        load_default=0,
        validate=validate.Range(min=0),
        metadata={"description": "long-poll up to this many seconds (at most 25) while the order is pending"},
    )


class SubscriptionSchema(Schema):
    id = fields.Integer(required=True)
    pack_id = fields.String(required=True)
    state = fields.String(
        required=True,
        validate=validate.OneOf(["active", "canceled", "failed"]),
        metadata={"description": "canceled: no renewal, but paid up until expires_at"},
    )
    active = fields.Boolean(required=True, metadata={"description": "paid up now (expires_at in the future)"})
    expires_at = UTCDateTime(allow_none=True)
    payments = fields.Integer(required=True, metadata={"description": "first payment and renewals so far"})
    can_enable = fields.Boolean(
        required=True, metadata={"description": "cancelled by the bot, so it can renew again"}
    )


class SubscriptionsSchema(Schema):
    subscriptions = fields.List(fields.Nested(SubscriptionSchema), required=True)


class ErrorSchema(Schema):
    error = fields.String(required=True, metadata={"example": "invalid_init_data"})
    message = fields.String(required=True)
    fields_ = fields.Dict(data_key="fields", metadata={"description": "per-field messages, on 400"})


class WebhookAckSchema(Schema):
    ok = fields.Boolean(required=True)
    result = fields.String(metadata={"description": "the update's kind, or 'other'"})
    detail = fields.String(metadata={"description": "what became of it, e.g. 'credited'"})


# --- Telegram updates ----------------------------------------------------------------


# What the columns hold: every integer flask_stars stores from an update is a signed 64-bit
# BIGINT (an amount a 32-bit INTEGER), every string is UTF-8 text without NUL (``Text``). An
# update that breaks this is refused here, before any SQL runs, and kept with the reason.
INT64 = validate.Range(min=-INT64_MAX - 1, max=INT64_MAX)
POSITIVE_INT64 = validate.Range(min=1, max=INT64_MAX)
STARS_AMOUNT = validate.Range(min=1, max=2**31 - 1)


def unstorable_text(value: str) -> str | None:
    """Why a text column cannot hold ``value``, or None when every database can.

    A NUL character is refused by PostgreSQL; a lone surrogate (JSON ``"\\udc80"``) is not
    UTF-8, so no driver can send it.
    """
    if "\x00" in value:
        return "Contains a NUL character (\\u0000), which PostgreSQL cannot store."
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "Contains a lone surrogate, which is not UTF-8 and cannot be stored."
    return None


class Text(fields.String):
    """A string that every database can store (``unstorable_text``)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text: str = super()._deserialize(value, attr, data, **kwargs)
        problem = unstorable_text(text)
        if problem is not None:
            raise ValidationError(problem)
        return text


class TelegramUserSchema(_IgnoresUnknown):
    id = fields.Integer(required=True, strict=True, validate=POSITIVE_INT64)
    language_code = Text(load_default=None)


class ChatSchema(_IgnoresUnknown):
    id = fields.Integer(required=True, strict=True, validate=INT64)


class PreCheckoutQuerySchema(_IgnoresUnknown):
    id = Text(required=True, validate=validate.Length(min=1, max=64))
    from_ = fields.Nested(TelegramUserSchema, required=True, data_key="from")
    currency = Text(required=True)
    total_amount = fields.Integer(required=True, strict=True, validate=STARS_AMOUNT)
    invoice_payload = Text(required=True)


class ChargeSchema(_IgnoresUnknown):
    # A longer currency or payload is stored cut (the ledger records it as not ours).
    currency = Text(required=True)
    total_amount = fields.Integer(required=True, strict=True, validate=STARS_AMOUNT)
    invoice_payload = Text(required=True)
    telegram_payment_charge_id = Text(required=True, validate=validate.Length(min=1, max=255))
    provider_payment_charge_id = Text(load_default=None, validate=validate.Length(max=255))
    is_recurring = fields.Boolean(load_default=False)
    is_first_recurring = fields.Boolean(load_default=False)
    subscription_expiration_date = fields.Integer(load_default=None, validate=INT64)


class PaymentMessageSchema(_IgnoresUnknown):
    message_id = fields.Integer(load_default=None)
    from_ = fields.Nested(TelegramUserSchema, required=True, data_key="from")
    # Not nullable: apispec would describe a nullable nested field as "any object".
    chat = fields.Nested(ChatSchema)
    successful_payment = fields.Nested(ChargeSchema)
    refunded_payment = fields.Nested(ChargeSchema)


class SubscriptionUpdateSchema(_IgnoresUnknown):
    """Telegram's ``subscription`` update: the user cancelled or re-enabled a plan, or a
    renewal failed."""

    user = fields.Nested(TelegramUserSchema, required=True)
    invoice_payload = Text(required=True)
    state = Text(required=True, metadata={"example": "canceled"})


class TelegramUpdateSchema(_IgnoresUnknown):
    """A Telegram Update, as far as flask_stars reads it (anything else goes to the bot)."""

    update_id = fields.Integer(required=True, strict=True, validate=validate.Range(min=0, max=INT64_MAX))
    pre_checkout_query = fields.Nested(PreCheckoutQuerySchema)
    message = fields.Nested(PaymentMessageSchema)
    subscription = fields.Nested(SubscriptionUpdateSchema)


pack_schema = PackSchema()
subscription_schema = SubscriptionSchema()
subscriptions_schema = SubscriptionsSchema()
packs_schema = PacksSchema()
invoice_request_schema = InvoiceRequestSchema()
invoice_schema = InvoiceSchema()
order_schema = OrderSchema()
order_query_schema = OrderQuerySchema()
pre_checkout_query_schema = PreCheckoutQuerySchema()
payment_message_schema = PaymentMessageSchema()
subscription_update_schema = SubscriptionUpdateSchema()
