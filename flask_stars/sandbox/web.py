"""``/stars/sandbox/``: the pages that play the Telegram client around the Mini App.

They are their own blueprint (``stars_sandbox``), registered on an app only by
``attach_sandbox`` (done by ``flask stars sandbox``, the example app's default run and the
browser tests), below the stars blueprint's prefix; everywhere else, production included,
these URLs do not exist.

The page shows the Mini App in an iframe with initData signed for a chosen test user (the
HMAC ``hash`` with the bot token and, as Telegram does since Bot API 8.0, the third-party
Ed25519 ``signature``, with a key pair the sandbox makes for itself in place of Telegram's),
speaks Telegram Web's postMessage protocol to it, answers ``web_app_open_invoice`` with a
payment sheet, and on Pay has the sandbox deliver ``pre_checkout_query`` and
``successful_payment`` to the real webhook before sending ``invoice_closed`` back.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

import sqlalchemy as sa
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    jsonify,
    render_template,
    request,
    send_from_directory,
    url_for,
)
from werkzeug.exceptions import HTTPException

from ..audit import python_actor
from ..errors import BotApiError, PaymentNotFound
from ..http_errors import INTERNAL_ERROR_BODY, http_exception_body
from ..initdata import ed25519_public_key_hex, sign_init_data
from ..models import Payment
from ..operations.refund import refund as refund_payment
from ..state import get_state
from ..transaction import end_read
from .buyer import TEST_USERS
from .chats import make_user
from .run import SandboxRun, sandbox_run_of

__all__ = ["WEB_APP_VERSION", "sandbox_bp"]

log = logging.getLogger(__name__)

WEB_APP_VERSION = "8.0"
STATIC_FOLDER = os.path.join(os.path.dirname(__file__), "static")

sandbox_bp = Blueprint(
    "stars_sandbox",
    __name__,
    template_folder="templates",
    static_folder=STATIC_FOLDER,
)


def _pages() -> SandboxRun:
    """The app's ``SandboxRun``; 404 when no sandbox is attached."""
    pages = sandbox_run_of(current_app)
    if pages is None:
        abort(404)
    return pages


# --- errors: JSON, as the stars blueprint answers ------------------------------------------


@sandbox_bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> tuple[Response, int]:
    body, code = http_exception_body(exc)
    return jsonify(body), code


@sandbox_bp.errorhandler(Exception)
def _unexpected(exc: Exception) -> tuple[Response, int]:
    log.exception("unexpected error on %s %s", request.method, request.path)
    return jsonify(INTERNAL_ERROR_BODY), 500


# --- the pages -----------------------------------------------------------------------------


@sandbox_bp.get("/")
def page() -> str:
    """The Telegram client: the Mini App in an iframe, a payment sheet, payments, traffic."""
    pages = _pages()
    state = get_state()
    return render_template(
        "stars_sandbox/sandbox.html",
        users=TEST_USERS,
        mini_app_url=pages.mini_app_url,
        base=request.script_root + state.url_prefix.rstrip("/"),
        web_app_version=WEB_APP_VERSION,
        packs=list(state.packs.values()),
        # The operator's dashboard, when the app mounts it (flask_stars.dashboard).
        dashboard_url=url_for("stars_dashboard.overview")
        if "stars_dashboard.overview" in current_app.view_functions
        else None,
    )


@sandbox_bp.get("/init-data")
def init_data() -> Response:
    """initData for a test user, signed as Telegram signs it: the HMAC ``hash`` with the bot
    token, and the third-party Ed25519 ``signature`` with the sandbox's key (whose public
    half, ``public_key``, the app trusts in ``ed25519`` mode during a sandbox run)."""
    pages = _pages()
    user = _test_user(request.args.get("user", type=int))
    raw = sign_init_data(get_state().settings.bot_token, user, ed25519_private_key=pages.init_data_key)
    return jsonify(
        {
            "init_data": raw,
            "user": user,
            "version": WEB_APP_VERSION,
            "public_key": ed25519_public_key_hex(pages.init_data_key),
        }
    )


@sandbox_bp.get("/invoices/<slug>")
def invoice(slug: str) -> Response:
    """An invoice the sandbox made, for the payment sheet."""
    try:
        inv = _pages().sandbox.invoice(slug)
    except KeyError:
        abort(404)
    return jsonify(
        {
            "slug": inv.slug,
            "title": inv.title,
            "description": inv.description,
            "currency": inv.currency,
            "amount": inv.amount,
            "subscription_period": inv.subscription_period,
        }
    )


@sandbox_bp.post("/pay")
def pay() -> Response:
    """The test user pressed Pay: pre-checkout, then the charge (unless it is 'lost')."""
    sandbox = _pages().sandbox
    body = request.get_json(silent=True) or {}
    user = _test_user(body.get("user_id"))
    try:
        inv = sandbox.invoice(str(body.get("slug", "")))
    except KeyError:
        abort(404)
    attempt = sandbox.pay(inv, user, deliver_payment=not body.get("lose_webhook"))
    return jsonify(
        {
            "ok": attempt.ok,
            "error_message": attempt.error_message,
            "charge_id": attempt.charge_id,
            "delivered": attempt.payment is not None,
            "webhook_status": attempt.payment.status if attempt.payment else None,
        }
    )


@sandbox_bp.get("/payments")
def payments() -> Response:
    """The newest payments in the ledger, for the page's Refund buttons."""
    _pages()
    session = get_state().session
    rows = session.scalars(sa.select(Payment).order_by(Payment.id.desc()).limit(20)).all()
    body = [
        {
            "charge_id": p.telegram_payment_charge_id,
            "user_id": p.user_id,
            "pack_id": p.pack_id,
            "stars": p.stars,
            "status": p.status,
            "credited": p.credited,
        }
        for p in rows
    ]
    end_read(get_state())
    return jsonify({"payments": body})


@sandbox_bp.post("/refund")
def refund() -> Response | tuple[Response, int]:
    """Refund a payment as the shop would (``stars.refund``): Telegram, ledger, debit."""
    _pages()
    charge_id = str((request.get_json(silent=True) or {}).get("charge_id", ""))
    try:
        payment = refund_payment(
            get_state(),
            charge_id,
            reason="refunded from the sandbox page",
            actor=python_actor("sandbox page"),
        )
    except BotApiError as exc:
        return jsonify({"ok": False, "error": exc.description}), 502
    except PaymentNotFound as exc:
        return jsonify({"error": exc.error, "message": exc.message}), 404
    return jsonify({"ok": True, "status": payment.status})


@sandbox_bp.get("/log", endpoint="log")
def traffic() -> Response:
    """What went over the wire: Bot API calls and webhook deliveries, newest last."""
    sandbox = _pages().sandbox
    since = request.args.get("since", default=0.0, type=float)
    events: list[dict[str, Any]] = [
        {"at": c.at, "kind": "api", "method": c.method, "params": _short(c.params)}
        for c in list(sandbox.calls)
        if c.at > since
    ]
    events += [
        {"at": d.at, "kind": "webhook", "update": _update_kind(d.update), "status": d.status}
        for d in list(sandbox.deliveries)
        if d.at > since
    ]
    events.sort(key=lambda e: e["at"])
    return jsonify({"events": events[-200:], "now": time.time()})


@sandbox_bp.get("/telegram-web-app.js")
def telegram_web_app_js() -> Response:
    """A small stand-in for telegram-web-app.js, for machines that cannot reach telegram.org."""
    _pages()
    return send_from_directory(STATIC_FOLDER, "telegram-web-app.js", mimetype="text/javascript", max_age=0)


def _test_user(user_id: Any) -> dict[str, Any]:
    for user in TEST_USERS:
        if user["id"] == user_id:
            return user
    return make_user(int(user_id)) if isinstance(user_id, int) and user_id > 0 else TEST_USERS[0]


def _update_kind(update: dict[str, Any]) -> str:
    if "pre_checkout_query" in update:
        return "pre_checkout_query"
    msg = update.get("message") or {}
    for key in ("successful_payment", "refunded_payment", "text"):
        if key in msg:
            return key if key != "text" else f"message: {msg['text'][:30]}"
    return next((k for k in update if k != "update_id"), "update")


def _short(params: dict[str, Any]) -> str:
    text = json.dumps({k: v for k, v in params.items() if not k.startswith("__")}, ensure_ascii=False)
    return text if len(text) <= 300 else text[:297] + "..."
