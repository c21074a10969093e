"""``/stars/sandbox/``: a page that plays the Telegram client around the Mini App.

It exists only on an app that a running ``Sandbox`` was attached to in this process
(``attach_sandbox``, done by ``flask stars sandbox`` and the example app's default run);
everywhere else, production included, these URLs answer 404.

The page shows the Mini App in an iframe with initData signed for a chosen test user,
speaks Telegram Web's postMessage protocol to it, answers ``web_app_open_invoice`` with a
payment sheet, and on Pay has the sandbox deliver ``pre_checkout_query`` and
``successful_payment`` to the real webhook before sending ``invoice_closed`` back.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Flask, Response, abort, jsonify, render_template, request, send_from_directory

from .extension import get_state
from .initdata import sign_init_data
from .sandbox import TEST_USERS, make_user

if TYPE_CHECKING:
    from .sandbox import Sandbox

WEB_APP_VERSION = "8.0"


def attach_sandbox(app: Flask, sandbox: Sandbox, base_url: str, *, mini_app_url: str = "/") -> str:
    """Wire a running sandbox to ``app`` served at ``base_url``; returns the sandbox page URL.

    The sandbox's webhook points at the app's ``/stars/webhook`` with the app's secret, and
    the app's Bot API calls go to the sandbox (``STARS_API_URL`` must be its URL).
    """
    state = get_state(app)
    if state.settings.api_url != sandbox.url:
        raise RuntimeError(f"STARS_API_URL must be the sandbox's URL ({sandbox.url}) to attach it")
    state.sandbox = sandbox
    state.sandbox_mini_app_url = mini_app_url
    prefix = state.url_prefix.rstrip("/")
    sandbox.set_webhook_target(base_url.rstrip("/") + prefix + "/webhook", state.settings.webhook_secrets[0])
    return base_url.rstrip("/") + prefix + "/sandbox/"


def _sandbox() -> Sandbox:
    sandbox = getattr(get_state(), "sandbox", None)
    if sandbox is None:
        abort(404)
    return sandbox


def register_sandbox_routes(bp: Blueprint) -> None:
    """Add the sandbox pages to ``bp`` (they 404 unless a sandbox is attached)."""

    @bp.get("/sandbox/")
    def sandbox_page() -> str:
        _sandbox()
        state = get_state()
        return render_template(
            "stars/sandbox.html",
            users=TEST_USERS,
            mini_app_url=state.sandbox_mini_app_url,
            base=request.script_root + state.url_prefix.rstrip("/"),
            web_app_version=WEB_APP_VERSION,
            packs=list(state.packs.values()),
        )

    @bp.get("/sandbox/init-data")
    def sandbox_init_data() -> Response:
        """initData for a test user, signed with the bot token as Telegram would."""
        _sandbox()
        user = _test_user(request.args.get("user", type=int))
        raw = sign_init_data(get_state().settings.bot_token, user)
        return jsonify({"init_data": raw, "user": user, "version": WEB_APP_VERSION})

    @bp.get("/sandbox/invoices/<slug>")
    def sandbox_invoice(slug: str) -> Response:
        try:
            inv = _sandbox().invoice(slug)
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

    @bp.post("/sandbox/pay")
    def sandbox_pay() -> Response:
        """The test user pressed Pay: pre-checkout, then the charge (unless it is 'lost')."""
        sandbox = _sandbox()
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

    @bp.get("/sandbox/payments")
    def sandbox_payments() -> Response:
        """The newest payments in the ledger, for the page's Refund buttons."""
        import sqlalchemy as sa

        from .models import Payment

        _sandbox()
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
        session.rollback()
        return jsonify({"payments": body})

    @bp.post("/sandbox/refund")
    def sandbox_refund() -> Response:
        """Refund a payment as the shop would (``stars.refund``): Telegram, ledger, debit."""
        from .errors import BotApiError
        from .payments import refund

        _sandbox()
        charge_id = str((request.get_json(silent=True) or {}).get("charge_id", ""))
        try:
            payment = refund(get_state(), charge_id, reason="refunded from the sandbox page")
        except BotApiError as exc:
            return jsonify({"ok": False, "error": exc.description}), 502
        return jsonify({"ok": True, "status": payment.status})

    @bp.get("/sandbox/log")
    def sandbox_log() -> Response:
        """What went over the wire: Bot API calls and webhook deliveries, newest last."""
        sandbox = _sandbox()
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

    @bp.get("/sandbox/telegram-web-app.js")
    def sandbox_web_app_js() -> Response:
        """A small stand-in for telegram-web-app.js, for machines that cannot reach telegram.org."""
        _sandbox()
        return send_from_directory(
            bp.static_folder, "sandbox/telegram-web-app.js", mimetype="text/javascript", max_age=0
        )


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
