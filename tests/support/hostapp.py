"""An "existing" host app, as a user of flask_stars would have it: its own db, User model and callback."""

from __future__ import annotations

import os
from typing import Any

from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase

from flask_stars import FlaskStars, stars_bp
from flask_stars.testing import TEST_TOKEN


class HostBase(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=HostBase)

PACKS = [
    {"id": "stars_pack_1", "stars": 10, "title": "Starter pack", "credits": 1_000_000},
    {"id": "stars_pack_2", "stars": 40, "title": "Premium pack", "credits": 5_000_000},
]


class User(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "host_users"
    id = db.Column(db.BigInteger, primary_key=True, autoincrement=False)
    coins = db.Column(db.BigInteger, nullable=False, default=0)


class CreditLog:
    """What the credit and debit callbacks saw (per app), so tests can count calls."""

    def __init__(self) -> None:
        self.credits: list[str] = []
        self.debits: list[str] = []
        self.fail_next = 0


def credit_coins(payment: Any) -> None:
    from flask import current_app

    log: CreditLog = current_app.extensions["host_credit_log"]
    _wait_at_gate()
    if log.fail_next:
        log.fail_next -= 1
        raise RuntimeError("the host's credit callback failed")
    user = db.session.get(User, payment.user_id)
    if user is None:
        user = User(id=payment.user_id, coins=0)
        db.session.add(user)
    user.coins += payment.pack.credits
    log.credits.append(payment.telegram_payment_charge_id)


def _wait_at_gate() -> None:
    """Fault tests: while HOST_CREDIT_GATE/block exists, park here (to be killed mid-callback)."""
    import os
    import time

    gate = os.environ.get("HOST_CREDIT_GATE")
    if not gate or not os.path.exists(os.path.join(gate, "block")):
        return
    with open(os.path.join(gate, f"entered-{os.getpid()}"), "w") as fh:
        fh.write("in the credit callback")
    deadline = time.monotonic() + 60
    while os.path.exists(os.path.join(gate, "block")) and time.monotonic() < deadline:
        time.sleep(0.05)


def debit_coins(payment: Any) -> None:
    from flask import current_app

    user = db.session.get(User, payment.user_id)
    user.coins -= payment.pack.credits
    current_app.extensions["host_credit_log"].debits.append(payment.telegram_payment_charge_id)


#: The host's engine options behind PgBouncer in transaction mode (the docs' recipe).
PGBOUNCER_ENGINE_OPTIONS = {"connect_args": {"prepare_threshold": None}, "pool_pre_ping": True}


def create_app(database_url: str, *, mount: str = "blueprint", bot: Any = None, **config: Any) -> Flask:
    """The host app. ``mount="blueprint"``: config + register_blueprint; ``"extension"``: FlaskStars."""
    app = Flask(__name__)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=database_url,
        STARS_BOT_TOKEN=TEST_TOKEN,
        STARS_PACKS=PACKS,
        STARS_API_TIMEOUT=3,
    )
    if os.environ.get("STARS_TEST_PGBOUNCER"):
        # Behind PgBouncer in transaction mode, as the several-hosts guide sets a host's engine.
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = PGBOUNCER_ENGINE_OPTIONS
    if mount == "blueprint":
        app.config["STARS_CREDIT_CALLBACK"] = "tests.support.hostapp:credit_coins"
        app.config["STARS_DEBIT_CALLBACK"] = "tests.support.hostapp:debit_coins"
    app.config.update(config)
    app.extensions["host_credit_log"] = CreditLog()
    db.init_app(app)
    if mount == "blueprint":
        app.register_blueprint(stars_bp)
    else:
        stars = FlaskStars(app, db=db, bot=bot)
        stars.credit(credit_coins)
        stars.debit(debit_coins)
        app.extensions["test_stars"] = stars

    @app.get("/")
    def index() -> str:
        return "host home"

    with app.app_context():
        db.create_all()
    return app


def bare_app(**config: Any) -> Flask:
    """A Flask app holding the least config flask_stars needs (token, packs, credit
    callback) and ``config``, with nothing mounted yet: for start-up checks."""
    app = Flask(__name__)
    app.config.update(
        STARS_BOT_TOKEN=TEST_TOKEN,
        STARS_PACKS=PACKS,
        STARS_CREDIT_CALLBACK="tests.support.hostapp:credit_coins",
    )
    app.config.update(config)
    return app
