"""``stars_bp``: the HTTP endpoints. Thin: parse, call the domain modules, render.

Domain errors become HTTP answers here and only here (``http_errors.to_http``).
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request, send_from_directory
from marshmallow import Schema
from werkzeug.exceptions import HTTPException

from . import metrics, orders
from .auth import request_init_data
from .errors import (
    BotApiError,
    InvalidInitData,
    OrderNotFound,
    PackNotFound,
    RateLimitUnavailable,
    StarsError,
    SubscriptionNotFound,
)
from .http_errors import INTERNAL_ERROR_BODY, StarsHTTPError, http_exception_body, to_http
from .models import INT64_MAX, ORDER_ID_RE, Order, Subscription
from .openapi import build_spec
from .operations import invoice
from .operations.subscription import set_canceled
from .packs import Pack
from .schemas import (
    ValidationError,
    invoice_request_schema,
    invoice_schema,
    order_query_schema,
    order_schema,
    packs_schema,
    subscription_schema,
    subscriptions_schema,
)
from .state import StarsState, get_state
from .subscriptions import get_subscription, is_live, user_subscriptions
from .transaction import end_read
from .updates import classify, handle_update
from .wiring import mount_blueprint

log = logging.getLogger(__name__)

#: A row id in a URL: ASCII digits (``str.isdigit`` takes "²", which ``int`` refuses) that
#: fit the 64-bit column.
ROW_ID_RE = re.compile(r"[0-9]{1,19}")


stars_bp = Blueprint(
    "stars",
    __name__,
    url_prefix="/stars",
    static_folder="static",
    static_url_path="/static",
)


# Mounting it sets the app up (unless FlaskStars did) and adds `flask stars`: the setup
# code's job, so this module never imports the CLI.
stars_bp.record(mount_blueprint)


# --- plumbing ------------------------------------------------------------------------------


@stars_bp.before_request
def _limit_body() -> None:
    request.max_content_length = get_state().settings.max_body


@stars_bp.errorhandler(StarsError)
def _stars_error(exc: StarsError) -> tuple[Response, int]:
    if isinstance(exc, RateLimitUnavailable):
        metrics.rate_limit_unavailable(get_state(), exc.limit)  # logged where it was raised
    http = to_http(exc)
    if http.code == 500:
        log.error("%s", exc)
    response = jsonify(http.to_dict())
    for key, value in http.extra_headers.items():
        response.headers[key] = value
    return response, http.code or 500


@stars_bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> tuple[Response, int]:
    body, code = http_exception_body(exc)
    return jsonify(body), code


@stars_bp.errorhandler(Exception)
def _unexpected(exc: Exception) -> tuple[Response, int]:
    log.exception("unexpected error on %s %s", request.method, request.path)
    return jsonify(INTERNAL_ERROR_BODY), 500


def _bad_request(message: str, error: str, fields: Any = None) -> StarsHTTPError:
    return StarsHTTPError(message, error=error, fields=fields, code=400)


def _json_body(schema: Schema | None = None) -> Any:
    raw = request.get_data(cache=True)  # raises 413 above STARS_MAX_BODY
    try:
        data = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError, RecursionError):
        # RecursionError: nesting deeper than the parser goes ("[" * 100_000) is not JSON we take.
        raise _bad_request("The body is not valid JSON.", "invalid_json") from None
    if schema is None:
        return data
    if not isinstance(data, dict):
        raise _bad_request("The body must be a JSON object.", "invalid_json")
    try:
        return schema.load(data)
    except ValidationError as exc:
        raise _bad_request("The body is not valid.", "validation_error", exc.messages) from None


def _order_id(value: str) -> str:
    """``value`` if it can be an order id; ``OrderNotFound`` (404) otherwise, as for a missing one."""
    if not ORDER_ID_RE.fullmatch(value):
        raise OrderNotFound()
    return value


def _row_id(value: str) -> int | None:
    """``value`` as a row id the database can hold, or None."""
    if not ROW_ID_RE.fullmatch(value):
        return None
    number = int(value)
    return number if number <= INT64_MAX else None


def _order_json(order: Order) -> dict[str, Any]:
    body: dict[str, Any] = order_schema.dump(
        {
            "order_id": order.id,
            "status": orders.order_status(order),
            "pack_id": order.pack_id,
            "stars": order.stars,
            "created_at": order.created_at,
            "expires_at": order.expires_at,
            "paid_at": order.paid_at,
        }
    )
    return body


def _subscription_json(sub: Subscription) -> dict[str, Any]:
    return {
        "id": sub.id,
        "pack_id": sub.pack_id,
        "state": sub.state,
        "active": is_live(sub),
        "expires_at": sub.expires_at,
        "payments": sub.payments,
        "can_enable": sub.state == "canceled" and sub.canceled_by_bot,
    }


# --- endpoints ---------------------------------------------------------------------------


@stars_bp.get("/packs")
def packs() -> Response:
    """The catalogue, in the buyer's language: initData's ``user.language_code`` when the Mini
    App sends it (``stars.js`` does), else the best of ``Accept-Language``."""
    state = get_state()
    language = _buyer_language(state)
    return jsonify(packs_schema.dump({"packs": [_pack_view(p, language) for p in state.packs.values()]}))


def _buyer_language(state: StarsState) -> str | None:
    """The language to answer an unauthenticated catalogue request in (None: English)."""
    if request.headers.get("Authorization"):
        try:
            return request_init_data().user.language_code
        except InvalidInitData:
            pass  # the catalogue is public: a stale initData still gets it, by Accept-Language
    offered = sorted({tag for pack in state.packs.values() for tag in (*pack.titles, *pack.descriptions)})
    return request.accept_languages.best_match(offered) if offered else None


def _pack_view(pack: Pack, language: str | None) -> dict[str, Any]:
    """``pack`` as the Mini App shows it to a buyer of ``language``."""
    return {
        "id": pack.id,
        "title": pack.title_in(language),
        "description": pack.description_in(language),
        "stars": pack.stars,
        "credits": pack.credits,
        "subscription": pack.subscription,
    }


@stars_bp.post("/invoice")
def create_invoice() -> tuple[Response, int]:
    """Make (or reuse) the caller's pending order for a pack and return its invoice link."""
    state = get_state()
    # Who is asking first, from the header alone: an unauthenticated request is answered
    # 401 before its body is read, so a body that never comes parks no thread.
    init = request_init_data()
    state.invoice_limit.hit(init.user.id)
    body = _json_body(invoice_request_schema)
    pack = state.packs.get(body["pack_id"])
    if pack is None:
        raise PackNotFound(f"No pack {body['pack_id']!r}.")
    state.credit_callback()  # do not sell what could not be credited
    language = init.user.language_code
    order, created = invoice.open_invoice(state, init.user.id, pack, language)
    payload = invoice_schema.dump(
        {
            "order_id": order.id,
            "invoice_url": order.invoice_url,
            "status": orders.order_status(order),
            "expires_at": order.expires_at,
            "pack": _pack_view(pack, language),
        }
    )
    return jsonify(payload), 201 if created else 200


@stars_bp.get("/orders/<order_id>")
def order_status(order_id: str) -> Response:
    """The caller's order; ``?wait=N`` long-polls while it is pending (N ≤ 25 s).

    A long-poll holds a thread, so only ``STARS_ORDER_WAITS_PER_USER`` per user and
    ``STARS_ORDER_WAITS_MAX`` in all run at once in this process; past that the order is
    answered at once, as it is now (the client polls again).
    """
    state = get_state()
    init = request_init_data()
    try:
        query = order_query_schema.load(request.args.to_dict())
    except ValidationError as exc:
        raise _bad_request("The query string is not valid.", "validation_error", exc.messages) from None
    wait: float = query["wait"]
    order_id = _order_id(order_id)
    if wait <= 0:
        return jsonify(_order_json(invoice.wait_for_order(state, order_id, init.user.id, 0)))
    with state.order_waits.slot(init.user.id) as may_wait:
        if not may_wait:
            log.debug("long-poll of user %s answered at once: its wait slots are taken", init.user.id)
        order = invoice.wait_for_order(state, order_id, init.user.id, wait if may_wait else 0)
    return jsonify(_order_json(order))


@stars_bp.post("/webhook")
def webhook() -> tuple[Response, int]:
    """Telegram's updates: payments handled here, in the request; the rest to the bot."""
    state = get_state()
    with metrics.webhook_timer(state) as timer:
        return _webhook(state, timer)


def _webhook(state: StarsState, timer: metrics.WebhookTimer) -> tuple[Response, int]:
    received = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
    if not any(hmac.compare_digest(received.encode(), s.encode()) for s in state.settings.webhook_secrets):
        raise StarsHTTPError("Wrong or missing webhook secret.", error="invalid_secret", code=403)
    # Tables of another bot (flask_stars.binding) answer 500 until the operator fixes it, so
    # Telegram keeps every update, those that never reach the tables too. Once per process.
    state.database.ensure_ready()
    raw = request.get_data(cache=True)
    update = _json_body()
    update_id = update.get("update_id") if isinstance(update, dict) else None
    if not isinstance(update_id, int) or isinstance(update_id, bool):
        raise _bad_request("The body is not a Telegram update.", "invalid_update")
    timer.kind = classify(update) or "other"
    # The text json parsed (handle_update logs it storable): an id out of range, a NUL or a
    # lone surrogate in it is kept with the update's error and answered 200.
    body = raw.decode(json.detect_encoding(raw), "surrogatepass")
    try:
        outcome = handle_update(state, update, body, can_reply=True)
    except BotApiError as exc:
        log.error("update %s needs redelivery: %s", update_id, exc)
        raise StarsHTTPError(
            "Telegram could not be answered; redeliver.", error="bot_api_error", code=500
        ) from None
    response = jsonify(outcome.reply or {"ok": True, "result": outcome.kind, "detail": outcome.detail})
    if outcome.after is not None:
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        after = outcome.after

        def run_after() -> None:
            with app.app_context():
                after()

        response.call_on_close(run_after)
    return response, 200


@stars_bp.get("/subscriptions")
def subscriptions() -> Response:
    """The caller's subscriptions (monthly plans), newest first."""
    init = request_init_data()
    state = get_state()
    subs = [_subscription_json(s) for s in user_subscriptions(state, init.user.id)]
    end_read(state)
    return jsonify(subscriptions_schema.dump({"subscriptions": subs}))


@stars_bp.post("/subscriptions/<subscription_id>/<action>")
def change_subscription(subscription_id: str, action: str) -> Response:
    """Stop or resume the caller's own subscription (access lasts until it expires)."""
    state = get_state()
    init = request_init_data()
    if action not in ("cancel", "enable"):
        raise StarsHTTPError("Use .../cancel or .../enable.", error="not_found", code=404)
    # Each change is an editUserStarSubscription call: STARS_SUBSCRIPTION_RATE_LIMIT per user.
    state.subscription_limit.hit(init.user.id)
    sub_id = _row_id(subscription_id)
    if sub_id is None:
        raise SubscriptionNotFound()
    sub = get_subscription(state, sub_id, init.user.id)
    sub = set_canceled(state, sub, action == "cancel")
    return jsonify(subscription_schema.dump(_subscription_json(sub)))


@stars_bp.get("/stars.js")
def stars_js() -> Response:
    """The browser helper (``FlaskStars.buy``, ``FlaskStars.packs``)."""
    assert stars_bp.static_folder is not None
    return send_from_directory(stars_bp.static_folder, "stars.js", mimetype="text/javascript", max_age=300)


@stars_bp.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI 3 document of these endpoints."""
    return jsonify(build_spec(get_state()))
