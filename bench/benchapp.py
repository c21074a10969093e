"""The host app the benchmarks serve: flask_stars mounted as a user would, plus bare endpoints.

The bare endpoints (``/bare/...``) are the baseline: on the same Flask app, the same
gunicorn workers and the same database, they parse the same JSON and do the minimal
equivalent work by hand (SQL text through the same Flask-SQLAlchemy session, Bot API calls
with a per-thread ``requests.Session`` and the parameters in the query string, as telebot
sends them). Under gunicorn it is built by ``served()`` from environment variables.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
from typing import Any
from urllib.parse import parse_qsl

import requests
import sqlalchemy as sa
from flask import Flask, Response, jsonify, request
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase

from flask_stars import stars_bp
from flask_stars.config import default_webhook_secret

TOKEN = "123456789:BENCH-sandbox-token_for-flask-stars"
SECRET = default_webhook_secret(TOKEN)
PACKS = [
    {"id": "stars_pack_1", "stars": 10, "title": "Starter pack", "credits": 1_000_000},
    {"id": "stars_pack_2", "stars": 40, "title": "Premium pack", "credits": 5_000_000},
]
PACK_BY_ID = {p["id"]: p for p in PACKS}


class BenchBase(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=BenchBase)


class User(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "host_users"
    id = db.Column(db.BigInteger, primary_key=True, autoincrement=False)
    coins = db.Column(db.BigInteger, nullable=False, default=0)


# The baseline's own tables: an order table and a ledger with a unique charge id.
bare_orders = sa.Table(
    "bare_orders",
    BenchBase.metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("user_id", sa.BigInteger, nullable=False, index=True),
    sa.Column("pack_id", sa.String(64), nullable=False),
    sa.Column("stars", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("invoice_url", sa.Text),
)
bare_payments = sa.Table(
    "bare_payments",
    BenchBase.metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("charge_id", sa.String(255), nullable=False, unique=True),
    sa.Column("order_id", sa.String(32)),
    sa.Column("user_id", sa.BigInteger, nullable=False),
    sa.Column("stars", sa.Integer, nullable=False),
    sa.Column("raw", sa.Text),
)


def credit_coins(payment: Any) -> None:
    """The host's credit callback, as in the README: add the pack's credits to the user."""
    user = db.session.get(User, payment.user_id)
    if user is None:
        user = User(id=payment.user_id, coins=0)
        db.session.add(user)
    user.coins += payment.pack.credits


# --- the baseline: bare endpoints ---------------------------------------------------------

_local = threading.local()


def _bot_api(app: Flask, method: str, params: dict[str, Any]) -> Any:
    """One Bot API call, as telebot makes it: POST, parameters in the query string."""
    session = getattr(_local, "http", None)
    if session is None:
        session = _local.http = requests.Session()
    resp = session.post(
        f"{app.config['STARS_API_URL']}/bot{TOKEN}/{method}",
        params=params,
        timeout=app.config["BARE_TIMEOUT"],
    )
    body = resp.json()
    if not body.get("ok"):
        raise RuntimeError(f"{method}: {body}")
    return body["result"]


def _secret_ok() -> bool:
    received = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
    return hmac.compare_digest(received.encode(), SECRET.encode())


_WEBAPP_SECRET = hmac.new(b"WebAppData", TOKEN.encode(), hashlib.sha256).digest()


def _init_data_user() -> int | None:
    """The minimal initData check: HMAC over the sorted fields, then the user id."""
    scheme, _, raw = request.headers.get("Authorization", "").partition(" ")
    if scheme != "tma":
        return None
    fields = dict(parse_qsl(raw.strip(), keep_blank_values=True))
    received = fields.pop("hash", "")
    check = "\n".join(f"{k}={v}" for k, v in sorted(fields.items()))
    expected = hmac.new(_WEBAPP_SECRET, check.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, received):
        return None
    return int(json.loads(fields["user"])["id"])


def register_bare(app: Flask) -> None:
    @app.post("/bare/pre_checkout")
    def bare_pre_checkout() -> tuple[Response, int]:
        if not _secret_ok():
            return jsonify({"ok": False}), 403
        q = json.loads(request.get_data())["pre_checkout_query"]
        order_id = q["invoice_payload"].removeprefix("order:")
        row = db.session.execute(
            sa.text("SELECT status, stars FROM bare_orders WHERE id = :id"), {"id": order_id}
        ).first()
        db.session.rollback()
        ok = row is not None and row.status == "pending" and row.stars == q["total_amount"]
        params: dict[str, Any] = {"pre_checkout_query_id": q["id"], "ok": ok}
        if not ok:
            params["error_message"] = "This order cannot be paid."
        _bot_api(app, "answerPreCheckoutQuery", params)
        return jsonify({"ok": True, "detail": "ok" if ok else "refused"}), 200

    @app.post("/bare/payment")
    def bare_payment() -> tuple[Response, int]:
        if not _secret_ok():
            return jsonify({"ok": False}), 403
        raw = request.get_data()
        msg = json.loads(raw)["message"]
        sp = msg["successful_payment"]
        order_id = sp["invoice_payload"].removeprefix("order:")
        session = db.session
        try:
            session.execute(
                sa.text(
                    "INSERT INTO bare_payments (charge_id, order_id, user_id, stars, raw) "
                    "VALUES (:c, :o, :u, :s, :r)"
                ),
                {
                    "c": sp["telegram_payment_charge_id"],
                    "o": order_id,
                    "u": msg["from"]["id"],
                    "s": sp["total_amount"],
                    "r": raw.decode(),
                },
            )
        except IntegrityError:
            session.rollback()
            return jsonify({"ok": True, "detail": "duplicate charge"}), 200
        paid = session.execute(
            sa.text("UPDATE bare_orders SET status = 'paid' WHERE id = :id AND status = 'pending'"),
            {"id": order_id},
        ).rowcount
        if paid:
            session.execute(
                sa.text("UPDATE host_users SET coins = coins + :n WHERE id = :u"),
                {"n": PACK_BY_ID["stars_pack_1"]["credits"], "u": msg["from"]["id"]},
            )
        session.commit()
        return jsonify({"ok": True, "detail": "credited" if paid else "not credited"}), 200

    @app.post("/bare/invoice")
    def bare_invoice() -> tuple[Response, int]:
        user_id = _init_data_user()
        if user_id is None:
            return jsonify({"error": "invalid_init_data"}), 401
        pack = PACK_BY_ID.get(json.loads(request.get_data()).get("pack_id"))
        if pack is None:
            return jsonify({"error": "pack_not_found"}), 404
        session = db.session
        row = session.execute(
            sa.text(
                "SELECT id, invoice_url FROM bare_orders "
                "WHERE user_id = :u AND pack_id = :p AND status = 'pending'"
            ),
            {"u": user_id, "p": pack["id"]},
        ).first()
        if row is not None and row.invoice_url:
            session.rollback()
            return jsonify({"order_id": row.id, "invoice_url": row.invoice_url}), 200
        order_id = row.id if row is not None else os.urandom(16).hex()[:22]
        if row is None:
            session.execute(
                sa.text(
                    "INSERT INTO bare_orders (id, user_id, pack_id, stars, status) "
                    "VALUES (:id, :u, :p, :s, 'pending')"
                ),
                {"id": order_id, "u": user_id, "p": pack["id"], "s": pack["stars"]},
            )
            session.commit()
        url = _bot_api(
            app,
            "createInvoiceLink",
            {
                "title": pack["title"],
                "description": pack["title"],
                "payload": "order:" + order_id,
                "currency": "XTR",
                "prices": json.dumps([{"label": pack["title"], "amount": pack["stars"]}]),
            },
        )
        session.execute(
            sa.text("UPDATE bare_orders SET invoice_url = :url WHERE id = :id"), {"url": url, "id": order_id}
        )
        session.commit()
        return jsonify({"order_id": order_id, "invoice_url": url}), 201


def create_app(database_url: str, api_url: str, **config: Any) -> Flask:
    """The bench host app: flask_stars' blueprint plus the bare endpoints, on one db."""
    app = Flask(__name__)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=database_url,
        STARS_BOT_TOKEN=TOKEN,
        STARS_PACKS=PACKS,
        STARS_API_URL=api_url,
        STARS_API_TIMEOUT=10,
        STARS_INVOICE_RATE_LIMIT=None,
        STARS_CREDIT_CALLBACK="bench.benchapp:credit_coins",
        BARE_TIMEOUT=10,
    )
    app.config.update(config)
    db.init_app(app)
    app.register_blueprint(stars_bp)
    register_bare(app)
    return app


def served() -> Flask:
    """What gunicorn serves (``bench.benchapp:served()``), configured by environment."""
    return create_app(
        os.environ["BENCH_DB_URL"],
        os.environ["BENCH_API_URL"],
        STARS_SPOOL_DIR=os.environ.get("BENCH_SPOOL_DIR"),
        # Answer pre-checkout in the webhook's reply, where flask_stars supports it.
        STARS_ANSWER_IN_RESPONSE=os.environ.get("BENCH_ANSWER_IN_RESPONSE") == "1",
        # Behind PgBouncer in transaction mode: no prepared statements (the production guide's).
        **(
            {"SQLALCHEMY_ENGINE_OPTIONS": {"connect_args": {"prepare_threshold": None}}}
            if os.environ.get("BENCH_PGBOUNCER") == "1"
            else {}
        ),
    )
