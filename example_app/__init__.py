"""An "existing" Flask app that sells coins for Telegram Stars with flask_stars.

It is what a user copies from: its own Flask-SQLAlchemy ``db`` and ``User`` model, its
own pyTelegramBotAPI bot (``/start`` opens the Mini App), its own Mini App page, and
flask_stars mounted the way the README shows. ``python -m example_app`` runs it with the
sandbox playing Telegram; see ``__main__.py``.
"""

from __future__ import annotations

import functools
import hmac
import os
import secrets
from collections.abc import Callable
from typing import Any

from flask import Flask, jsonify, redirect, render_template, request, session, url_for
from telebot import TeleBot, types

from flask_stars import FlaskStars, StarsConfigError, StarsHTTPError, request_init_data

from .models import User, db

#: The catalogue, in the buyer's language: Telegram's language_code picks the text, else English.
PACKS = [
    {
        "id": "stars_pack_1",
        "stars": 10,
        "title": {"en": "Starter pack", "ru": "Стартовый набор", "de": "Startpaket"},
        "credits": 1_000_000,
        "description": {"en": "1,000,000 coins", "ru": "1 000 000 монет", "de": "1.000.000 Münzen"},
    },
    {
        "id": "stars_pack_2",
        "stars": 40,
        "title": {"en": "Premium pack", "ru": "Премиум-набор", "de": "Premiumpaket"},
        "credits": 5_000_000,
        "description": {"en": "5,000,000 coins", "ru": "5 000 000 монет", "de": "5.000.000 Münzen"},
    },
]


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """The example app. ``config`` overrides the defaults (and the environment)."""
    app = Flask(__name__, instance_relative_config=True)
    os.makedirs(app.instance_path, exist_ok=True)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=os.environ.get(
            "DATABASE_URL", "sqlite:///" + os.path.join(app.instance_path, "example.db")
        ),
        STARS_BOT_TOKEN=os.environ.get("STARS_BOT_TOKEN"),
        STARS_PACKS=PACKS,
        PUBLIC_URL=os.environ.get("PUBLIC_URL", "http://127.0.0.1:5000"),
        SANDBOX=False,
    )
    app.config.update(config or {})
    db.init_app(app)

    if not app.config["STARS_BOT_TOKEN"]:
        raise StarsConfigError(
            "STARS_BOT_TOKEN is not set: run `python -m example_app` to use the sandbox, "
            "or export the token from @BotFather"
        )
    bot = TeleBot(app.config["STARS_BOT_TOKEN"], threaded=False)
    stars = FlaskStars(app, db=db, bot=bot)

    @stars.credit
    def credit_coins(payment: Any) -> None:
        user = db.session.get(User, payment.user_id) or User(id=payment.user_id, coins=0)
        db.session.add(user)
        user.coins += payment.pack.credits  # flask_stars commits, with the payment

    @stars.debit
    def debit_coins(payment: Any) -> None:
        user = db.session.get(User, payment.user_id)
        if user is not None:
            user.coins -= payment.pack.credits

    @bot.message_handler(commands=["start"])
    def start(message: types.Message) -> None:
        russian = (message.from_user.language_code or "").startswith("ru")
        markup = types.InlineKeyboardMarkup()
        markup.add(
            types.InlineKeyboardButton(
                "🪙 Открыть магазин" if russian else "🪙 Open the shop",
                web_app=types.WebAppInfo(app.config["PUBLIC_URL"].rstrip("/") + "/"),
            )
        )
        text = (
            "Монеты за звёзды Telegram. Откройте магазин:"
            if russian
            else "Coins for Telegram Stars. Open the shop:"
        )
        bot.send_message(message.chat.id, text, reply_markup=markup)

    @app.get("/")
    def index() -> str:
        # A sandbox run, `python -m example_app` or `flask stars sandbox` alike: the page may
        # then use the sandbox's stand-in for telegram-web-app.js where telegram.org is out of reach.
        sandbox = app.config["SANDBOX"] or stars.state().sandbox_run
        return render_template("index.html", sandbox=sandbox)

    @app.get("/api/me")
    def me() -> Any:
        try:
            who = request_init_data().user  # who the Mini App says it is, checked
        except StarsHTTPError as exc:
            return jsonify(exc.to_dict()), exc.code
        user = db.session.get(User, who.id)
        if user is None:
            user = User(id=who.id, coins=0)
            db.session.add(user)
        user.first_name = who.first_name
        db.session.commit()
        return jsonify({"id": user.id, "first_name": user.first_name, "coins": user.coins})

    if app.config["SANDBOX"]:
        mount_admin(app)

    with app.app_context():
        db.create_all()
    return app


#: The example's one operator, as the audit trail names them.
OPERATOR = "admin"


def mount_admin(app: Flask) -> None:
    """The operator's dashboard at ``/admin``, behind a login that exists in the sandbox run only.

    The app's "authentication" is one password (``ADMIN_PASSWORD``, made for the run and
    printed in the console) kept as a flag in the signed session: a stand-in for your own
    (Flask-Login's ``login_required`` plugs in the same way, as ``decorator=``).
    """
    from flask_stars.dashboard import dashboard_bp

    if not app.config.get("SECRET_KEY"):  # Flask's default is None
        app.config["SECRET_KEY"] = secrets.token_hex(32)
    if not app.config.get("ADMIN_PASSWORD"):
        app.config["ADMIN_PASSWORD"] = secrets.token_urlsafe(9)

    def admin_required(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if session.get("admin") is not True:
                return redirect(url_for("admin_login", next=request.path))
            return view(*args, **kwargs)

        return wrapped

    @app.route("/login", methods=["GET", "POST"])
    def admin_login() -> Any:
        error = False
        if request.method == "POST":
            given = request.form.get("password", "")
            if hmac.compare_digest(given.encode(), app.config["ADMIN_PASSWORD"].encode()):
                session.clear()
                session["admin"] = True
                target = request.args.get("next", "")
                return redirect(
                    target if target.startswith("/admin") else url_for("stars_dashboard.overview")
                )
            error = True
        return render_template("login.html", error=error), 401 if error else 200

    @app.post("/logout")
    def admin_logout() -> Any:
        session.clear()
        return redirect(url_for("admin_login"))

    # actor= names who did what in the audit trail (the Activity page): this app has one
    # operator login, "admin"; yours would pass lambda: current_user.email.
    app.register_blueprint(
        dashboard_bp,
        url_prefix="/admin",
        decorator=admin_required,
        actor=lambda: OPERATOR,
        sign_out="admin_logout",
    )
