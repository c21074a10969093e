"""The OpenAPI 3 document of ``stars_bp``, generated from the marshmallow schemas by apispec."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from . import schemas

if TYPE_CHECKING:
    from .state import StarsState

VERSION = "0.1.0"


def _errors(*codes: int) -> dict[str, Any]:
    texts = {
        400: "malformed body or query (fields has marshmallow's messages)",
        401: "initData missing, forged or expired",
        403: "wrong webhook secret",
        404: "unknown pack, order or subscription (or another user's)",
        409: "the subscription was cancelled by the user in Telegram; only they can renew it",
        413: "body larger than STARS_MAX_BODY",
        429: "too many requests of this kind from this user (Retry-After is set)",
        500: "not configured, or an update that must be redelivered",
        502: "the Bot API failed",
        503: "try again after Retry-After: the Bot API asked to wait (bot_api_unavailable), the "
        "rate-limit storage could not be reached (rate_limit_unavailable), or concurrent "
        "requests (order_conflict)",
    }
    return {
        str(code): {
            "description": texts[code],
            "content": {"application/json": {"schema": "Error"}},
        }
        for code in codes
    }


def _json(schema: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def build_spec(state: StarsState) -> dict[str, Any]:
    """The OpenAPI document for the app's mount point of ``stars_bp``."""
    spec = _new_spec()
    base = state.url_prefix.rstrip("/")
    for path, operations in (
        (f"{base}/packs", _packs()),
        (f"{base}/invoice", _invoice()),
        (f"{base}/orders/{{order_id}}", _order()),
        (f"{base}/subscriptions", _subscriptions()),
        (f"{base}/subscriptions/{{subscription_id}}/{{action}}", _change_subscription()),
        (f"{base}/webhook", _webhook()),
        (f"{base}/openapi.json", _this_document()),
    ):
        spec.path(path=path, operations=operations)
    return spec.to_dict()


def _new_spec() -> APISpec:
    """The document's head: title, version, the two security schemes and the schemas."""
    spec = APISpec(
        title="flask_stars",
        version=VERSION,
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={"description": "Sell in-app currency for Telegram Stars (XTR)."},
    )
    spec.components.security_scheme(
        "initData",
        {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`tma <Telegram.WebApp.initData>`",
        },
    )
    spec.components.security_scheme(
        "webhookSecret",
        {"type": "apiKey", "in": "header", "name": "X-Telegram-Bot-Api-Secret-Token"},
    )
    for name, schema in (
        ("Pack", schemas.PackSchema),
        ("Packs", schemas.PacksSchema),
        ("InvoiceRequest", schemas.InvoiceRequestSchema),
        ("Invoice", schemas.InvoiceSchema),
        ("Order", schemas.OrderSchema),
        ("Error", schemas.ErrorSchema),
        ("WebhookAck", schemas.WebhookAckSchema),
        ("TelegramUpdate", schemas.TelegramUpdateSchema),
        ("Subscription", schemas.SubscriptionSchema),
        ("Subscriptions", schemas.SubscriptionsSchema),
    ):
        spec.components.schema(name, schema=schema)
    return spec


def _path_parameter(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _packs() -> dict[str, Any]:
    return {"get": {"summary": "The catalogue", "responses": {"200": _json("Packs", "the packs")}}}


def _invoice() -> dict[str, Any]:
    return {
        "post": {
            "summary": "Make or reuse the caller's pending order and return its invoice link",
            "security": [{"initData": []}],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": "InvoiceRequest"}},
            },
            "responses": {
                "201": _json("Invoice", "a new order"),
                "200": _json("Invoice", "the caller's pending order for this pack"),
                **_errors(400, 401, 404, 413, 429, 500, 502, 503),
            },
        }
    }


def _order() -> dict[str, Any]:
    # Anything but an order id's pattern names no order: 404.
    order_id = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,32}$", "maxLength": 32}
    return {
        "get": {
            "summary": "The caller's order; wait=N long-polls while it is pending",
            "security": [{"initData": []}],
            "parameters": [
                _path_parameter("order_id", order_id),
                {"in": "query", "schema": schemas.OrderQuerySchema},
            ],
            "responses": {"200": _json("Order", "the order"), **_errors(400, 401, 404)},
        }
    }


def _subscriptions() -> dict[str, Any]:
    return {
        "get": {
            "summary": "The caller's subscriptions (monthly plans)",
            "security": [{"initData": []}],
            "responses": {"200": _json("Subscriptions", "newest first"), **_errors(401)},
        }
    }


def _change_subscription() -> dict[str, Any]:
    return {
        "post": {
            "summary": "Stop (cancel) or resume (enable) the caller's own subscription",
            "security": [{"initData": []}],
            "parameters": [
                _path_parameter("subscription_id", {"type": "integer", "format": "int64", "minimum": 0}),
                _path_parameter("action", {"type": "string", "enum": ["cancel", "enable"]}),
            ],
            "responses": {
                "200": _json("Subscription", "its new state"),
                **_errors(401, 404, 409, 429, 502, 503),
            },
        }
    }


def _webhook() -> dict[str, Any]:
    return {
        "post": {
            "summary": "Telegram's updates (set with `flask stars set-webhook`)",
            "security": [{"webhookSecret": []}],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": "TelegramUpdate"}},
            },
            "responses": {
                "200": _json("WebhookAck", "handled or ignored"),
                **_errors(400, 403, 413, 500),
            },
        }
    }


def _this_document() -> dict[str, Any]:
    return {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3"}}}}
