"""``stars_bp``: the HTTP endpoints. Thin: parse, call ``payments``/``handlers``, render."""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request, send_from_directory
from flask.sansio.blueprints import BlueprintSetupState
from werkzeug.exceptions import HTTPException

from . import payments
from .auth import request_init_data
from .cli import register_cli
from .db import kept_after_commit
from .errors import (
    BadGateway,
    BadRequest,
    BotApiError,
    Forbidden,
    MissingCallbackError,
    NotFound,
    ServerError,
    ServiceUnavailable,
    StarsConfigError,
    StarsHTTPError,
)
from .extension import EXTENSION_KEY, FlaskStars, get_state
from .handlers import MalformedUpdate, handle_update
from .sandbox_web import register_sandbox_routes
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

log = logging.getLogger("flask_stars")

stars_bp = Blueprint(
    "stars",
    __name__,
    url_prefix="/stars",
    static_folder="static",
    static_url_path="/static",
    template_folder="templates",
)


@stars_bp.record
def _on_register(setup: BlueprintSetupState) -> None:
    """Check the config and keep the state when the blueprint is mounted."""
    app = setup.app
    state = app.extensions.get(EXTENSION_KEY)
    if state is None:
        # Mounted on its own (no FlaskStars object, so no decorator can come later):
        # everything, the credit callback included, must be in the config now.
        state = FlaskStars().setup_state(app, require_callback=True)
    if state.blueprint_registered:
        raise StarsConfigError("stars_bp is already registered on this app; register it once")
    state.blueprint_registered = True
    state.url_prefix = setup.url_prefix or ""
    csrf = app.extensions.get("csrf")
    if csrf is not None and hasattr(csrf, "exempt"):
        csrf.exempt(stars_bp)  # Telegram and initData-signed requests carry no CSRF token


# --- plumbing ------------------------------------------------------------------------------


@stars_bp.before_request
def _limit_body() -> None:
    request.max_content_length = get_state().settings.max_body


@stars_bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> tuple[Response, int]:
    if isinstance(exc, StarsHTTPError):
        response = jsonify(exc.to_dict())
        for key, value in exc.extra_headers.items():
            response.headers[key] = value
        return response, exc.code or 500
    code = exc.code or 500
    error = {413: "payload_too_large", 405: "method_not_allowed", 404: "not_found"}.get(
        code, (exc.name or "error").lower().replace(" ", "_")
    )
    return jsonify({"error": error, "message": exc.description or exc.name}), code


@stars_bp.errorhandler(MissingCallbackError)
def _missing_callback(exc: MissingCallbackError) -> tuple[Response, int]:
    log.error("flask_stars: %s", exc)
    return jsonify({"error": "not_configured", "message": str(exc)}), 500


@stars_bp.errorhandler(Exception)
def _unexpected(exc: Exception) -> tuple[Response, int]:
    log.exception("flask_stars: unexpected error on %s %s", request.method, request.path)
    return jsonify({"error": "internal_error", "message": "The server could not handle this request."}), 500


def _json_body(schema: Any = None) -> Any:
    raw = request.get_data(cache=True)  # raises 413 above STARS_MAX_BODY
    try:
        data = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("The body is not valid JSON.", error="invalid_json") from None
    if schema is None:
        return data
    if not isinstance(data, dict):
        raise BadRequest("The body must be a JSON object.", error="invalid_json")
    try:
        return schema.load(data)
    except ValidationError as exc:
        raise BadRequest("The body is not valid.", error="validation_error", fields=exc.messages) from None


def _bot_api_failure(exc: BotApiError) -> StarsHTTPError:
    log.warning("flask_stars: %s", exc)
    if exc.retry_after is not None:
        return ServiceUnavailable(
            "Telegram asked us to wait; try again shortly.",
            headers={"Retry-After": str(exc.retry_after)},
        )
    if exc.timeout:
        return BadGateway("Telegram did not answer in time; try again.", error="bot_api_timeout")
    return BadGateway("Telegram's Bot API failed; try again.")


def _order_json(order: Any) -> dict[str, Any]:
    return order_schema.dump(
        {
            "order_id": order.id,
            "status": payments.order_status(order),
            "pack_id": order.pack_id,
            "stars": order.stars,
            "created_at": order.created_at,
            "expires_at": order.expires_at,
            "paid_at": order.paid_at,
        }
    )


# --- endpoints ---------------------------------------------------------------------------


@stars_bp.get("/packs")
def packs() -> Response:
    """The catalogue."""
    return jsonify(packs_schema.dump({"packs": list(get_state().packs.values())}))


@stars_bp.post("/invoice")
def create_invoice() -> tuple[Response, int]:
    """Make (or reuse) the caller's pending order for a pack and return its invoice link."""
    state = get_state()
    body = _json_body(invoice_request_schema)
    init = request_init_data()
    state.invoice_limit.hit(init.user.id)
    pack = state.packs.get(body["pack_id"])
    if pack is None:
        raise NotFound(f"No pack {body['pack_id']!r}.", error="pack_not_found")
    state.credit_callback()  # do not sell what could not be credited
    try:
        with kept_after_commit(state.session):
            order, created = payments.open_invoice(state, init.user.id, pack)
    except BotApiError as exc:
        raise _bot_api_failure(exc) from None
    payload = invoice_schema.dump(
        {
            "order_id": order.id,
            "invoice_url": order.invoice_url,
            "status": payments.order_status(order),
            "expires_at": order.expires_at,
            "pack": pack,
        }
    )
    return jsonify(payload), 201 if created else 200


@stars_bp.get("/orders/<order_id>")
def order_status(order_id: str) -> Response:
    """The caller's order; ``?wait=N`` long-polls while it is pending (N ≤ 25 s)."""
    state = get_state()
    init = request_init_data()
    try:
        query = order_query_schema.load(request.args.to_dict())
    except ValidationError as exc:
        raise BadRequest(
            "The query string is not valid.", error="validation_error", fields=exc.messages
        ) from None
    if len(order_id) > 32:
        raise NotFound("No such order.", error="order_not_found")
    order = payments.wait_for_order(state, order_id, init.user.id, query["wait"])
    return jsonify(_order_json(order))


@stars_bp.post("/webhook")
def webhook() -> tuple[Response, int]:
    """Telegram's updates: payments handled here, in the request; the rest to the bot."""
    state = get_state()
    received = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
    if not any(hmac.compare_digest(received.encode(), s.encode()) for s in state.settings.webhook_secrets):
        raise Forbidden("Wrong or missing webhook secret.", error="invalid_secret")
    raw = request.get_data(cache=True)
    update = _json_body()
    update_id = update.get("update_id") if isinstance(update, dict) else None
    if not isinstance(update_id, int) or isinstance(update_id, bool) or not 0 <= update_id < 2**63:
        raise BadRequest("The body is not a Telegram update.", error="invalid_update")
    try:
        outcome = handle_update(state, update, raw.decode("utf-8", "replace"), can_reply=True)
    except MalformedUpdate as exc:
        raise BadRequest(
            "The payment update is malformed.", error="invalid_update", fields=exc.messages
        ) from None
    except BotApiError as exc:
        log.error("flask_stars: update %s needs redelivery: %s", update.get("update_id"), exc)
        raise ServerError("Telegram could not be answered; redeliver.", error="bot_api_error") from None
    response = jsonify(outcome.reply or {"ok": True, "result": outcome.kind, "detail": outcome.detail})
    if outcome.after is not None:
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        after = outcome.after

        def run_after() -> None:
            with app.app_context():
                after()

        response.call_on_close(run_after)
    return response, 200


def _subscription_json(sub: Any) -> dict[str, Any]:
    from .subscriptions import is_live

    return {
        "id": sub.id,
        "pack_id": sub.pack_id,
        "state": sub.state,
        "active": is_live(sub),
        "expires_at": sub.expires_at,
        "payments": sub.payments,
        "can_enable": sub.state == "canceled" and sub.canceled_by_bot,
    }


@stars_bp.get("/subscriptions")
def subscriptions() -> Response:
    """The caller's subscriptions (monthly plans), newest first."""
    from .subscriptions import user_subscriptions

    init = request_init_data()
    subs = user_subscriptions(get_state(), init.user.id)
    return jsonify(subscriptions_schema.dump({"subscriptions": [_subscription_json(s) for s in subs]}))


@stars_bp.post("/subscriptions/<subscription_id>/<action>")
def change_subscription(subscription_id: str, action: str) -> Response:
    """Stop or resume the caller's own subscription (access lasts until it expires)."""
    from .subscriptions import get_subscription, set_canceled

    state = get_state()
    init = request_init_data()
    if action not in ("cancel", "enable"):
        raise NotFound("Use .../cancel or .../enable.", error="not_found")
    if not subscription_id.isdigit() or len(subscription_id) > 18:
        raise NotFound("No such subscription.", error="subscription_not_found")
    sub = get_subscription(state, int(subscription_id), init.user.id)
    try:
        sub = set_canceled(state, sub, action == "cancel")
    except BotApiError as exc:
        raise _bot_api_failure(exc) from None
    return jsonify(subscription_schema.dump(_subscription_json(sub)))


@stars_bp.get("/stars.js")
def stars_js() -> Response:
    """The browser helper (``FlaskStars.buy``, ``FlaskStars.packs``)."""
    return send_from_directory(stars_bp.static_folder, "stars.js", mimetype="text/javascript", max_age=300)


@stars_bp.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI 3 document of these endpoints."""
    from .openapi import build_spec

    return jsonify(build_spec(get_state()))


register_cli(stars_bp)
register_sandbox_routes(stars_bp)
