"""Set-up: both mount styles, and every config mistake caught when the app starts."""

from __future__ import annotations

import pytest
from flask import Flask
from telebot import apihelper

from flask_stars import FlaskStars, MissingCallbackError, Pack, StarsConfigError, stars_bp
from flask_stars.testing import TEST_TOKEN
from tests.support import hostapp


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ({"STARS_BOT_TOKEN": None}, "STARS_BOT_TOKEN"),
        ({"STARS_PACKS": []}, "STARS_PACKS is empty"),
        ({"STARS_PACKS": None}, "STARS_PACKS is empty"),
        ({"STARS_CREDIT_CALLBACK": None}, "STARS_CREDIT_CALLBACK"),
        ({"STARS_CREDIT_CALLBACK": "tests.support.hostapp:no_such_function"}, "cannot be imported"),
        ({"STARS_CREDIT_CALLBACK": 42}, "callable"),
        ({"STARS_PACKS": [{"id": "p", "stars": 9.5, "title": "T"}]}, "positive whole number"),
        ({"STARS_PACKS": [{"id": "p", "stars": "10", "title": "T"}]}, "positive whole number"),
        ({"STARS_PACKS": [{"id": "p", "stars": 0, "title": "T"}]}, "positive whole number"),
        ({"STARS_PACKS": [{"id": "p", "stars": -5, "title": "T"}]}, "positive whole number"),
        ({"STARS_PACKS": [{"id": "p", "stars": True, "title": "T"}]}, "positive whole number"),
        (
            {"STARS_PACKS": [{"id": "p", "stars": 1, "title": "T"}, {"id": "p", "stars": 2, "title": "U"}]},
            "duplicate pack id",
        ),
        ({"STARS_PACKS": [{"id": "bad id", "stars": 1, "title": "T"}]}, "id must be"),
        ({"STARS_PACKS": [{"id": "p", "stars": 1, "title": "T" * 33}]}, "title"),
        ({"STARS_PACKS": [{"id": "p", "stars": 1}]}, "lacks"),
        ({"STARS_PACKS": [{"id": "p", "stars": 1, "title": "T", "price": 3}]}, "unknown keys"),
        ({"STARS_PACKS": [{"id": "p", "stars": 10_001, "title": "T", "subscription": True}]}, "subscription"),
        ({"STARS_DUPLICATE_PAYMENT": "ignore"}, "STARS_DUPLICATE_PAYMENT"),
        ({"STARS_INIT_DATA_VALIDATION": "none"}, "STARS_INIT_DATA_VALIDATION"),
        ({"STARS_WEBHOOK_SECRET": "has spaces"}, "STARS_WEBHOOK_SECRET"),
        ({"STARS_ORDER_TTL": 0}, "STARS_ORDER_TTL"),
        ({"STARS_API_URL": "127.0.0.1:8081"}, "STARS_API_URL"),
    ],
)
def test_config_mistakes_fail_at_registration(config, words):
    app = hostapp.bare_app(**config)
    with pytest.raises(StarsConfigError, match=words):
        app.register_blueprint(stars_bp)


def test_registering_twice_is_a_clear_error():
    app = hostapp.bare_app()
    app.register_blueprint(stars_bp)
    with pytest.raises(StarsConfigError, match="already registered"):
        app.register_blueprint(stars_bp, name="stars2", url_prefix="/again")


def test_init_app_twice_is_a_clear_error():
    app = hostapp.bare_app()
    FlaskStars(app)
    with pytest.raises(StarsConfigError, match="already initialised"):
        FlaskStars(app)


def test_using_it_uninitialised_says_what_to_do():
    from flask_stars import NotInitialisedError, get_state

    with pytest.raises(NotInitialisedError, match="register_blueprint"):
        get_state(Flask(__name__))


def test_defaults_are_set_with_setdefault_and_kept_when_given():
    app = hostapp.bare_app(STARS_ORDER_TTL=120)
    app.register_blueprint(stars_bp)
    assert app.config["STARS_ORDER_TTL"] == 120
    assert app.config["STARS_INIT_DATA_MAX_AGE"] == 86400
    assert app.config["STARS_DUPLICATE_PAYMENT"] == "refund"
    assert app.config["STARS_MAX_BODY"] == 1024 * 1024
    assert app.extensions["stars"].packs["stars_pack_1"] == Pack(
        id="stars_pack_1", stars=10, title="Starter pack", credits=1_000_000
    )


def test_api_url_points_telebot_at_another_server():
    app = hostapp.bare_app(STARS_API_URL="http://127.0.0.1:8081/")
    app.register_blueprint(stars_bp)
    assert apihelper.API_URL == "http://127.0.0.1:8081/bot{0}/{1}"


def test_pack_objects_and_url_prefix(database_url, sandbox):
    app = hostapp.bare_app(STARS_PACKS=[Pack(id="gold", stars=5, title="Gold")], STARS_API_URL=sandbox.url)
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    app.register_blueprint(stars_bp, url_prefix="/pay")
    client = app.test_client()
    assert client.get("/pay/packs").json["packs"][0]["id"] == "gold"
    assert client.get("/stars/packs").status_code == 404
    spec = client.get("/pay/openapi.json").json
    assert "/pay/invoice" in spec["paths"]


def test_extension_with_decorator_after_init_app(database_url, sandbox, make_shop):
    shop = make_shop(mount="extension")
    assert shop.buy(42)[1].ok
    assert shop.balance(42) == 1_000_000


def test_extension_missing_callback_is_clear_on_first_request_and_payment_waits(database_url, sandbox):
    from flask_stars.testing import connect, serve
    from tests.support.shop import Shop

    app = Flask(__name__)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=database_url,
        STARS_BOT_TOKEN=TEST_TOKEN,
        STARS_PACKS=hostapp.PACKS,
        STARS_API_URL=sandbox.url,
    )
    app.extensions["host_credit_log"] = hostapp.CreditLog()
    hostapp.db.init_app(app)
    with app.app_context():
        hostapp.db.create_all()
    stars = FlaskStars(app, db=hostapp.db)  # no callback yet: allowed, the decorator may come later
    with serve(app) as base:
        connect(app, sandbox, base)
        shop = Shop(app, base, sandbox)
        resp = shop.invoice(42)
        assert resp.status_code == 500 and resp.json()["error"] == "not_configured"
        assert "credit callback" in resp.json()["message"]

        # A payment that arrives without a callback answers 500: Telegram keeps it for later.
        stars.credit(hostapp.credit_coins)
        order = shop.invoice(42).json()
        stars.callbacks.credit = None
        attempt = sandbox.pay(order["invoice_url"], 42)
        assert not attempt.ok  # pre-checkout refuses what it could not credit
        stars.credit(hostapp.credit_coins)
        attempt = sandbox.pay(order["invoice_url"], 42, deliver_payment=False)
        stars.callbacks.credit = None
        assert sandbox.deliver(attempt.payment_update).status == 500
        stars.credit(hostapp.credit_coins)
        assert sandbox.deliver(attempt.payment_update).status == 200
        assert shop.balance(42) == 1_000_000


def test_missing_callback_error_is_named():
    app = hostapp.bare_app()
    stars = FlaskStars(app)
    with app.app_context(), pytest.raises(MissingCallbackError):
        stars.callbacks.credit = None
        app.config["STARS_CREDIT_CALLBACK"] = None
        app.extensions["stars"].credit_callback()


def test_private_engine_when_host_has_no_flask_sqlalchemy(tmp_path, sandbox):
    """Without Flask-SQLAlchemy, flask_stars keeps its own SQLite in the instance folder."""
    credited = []
    app = Flask(__name__, instance_path=str(tmp_path / "instance"))
    app.config.update(
        STARS_BOT_TOKEN=TEST_TOKEN,
        STARS_PACKS=hostapp.PACKS,
        STARS_CREDIT_CALLBACK=lambda p: credited.append((p.user_id, p.pack.credits)),
        STARS_API_URL=sandbox.url,
    )
    app.register_blueprint(stars_bp)
    from flask_stars.testing import connect, serve
    from tests.support.shop import Shop

    with serve(app) as base:
        connect(app, sandbox, base)
        shop = Shop(app, base, sandbox)
        shop.buy(42)
    assert credited == [(42, 1_000_000)]
    assert (tmp_path / "instance" / "stars.db").exists()
    assert "sqlalchemy" not in app.extensions


def test_sqlite_file_database_is_switched_to_wal(shop, database_url):
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite only")
    import sqlalchemy as sa

    shop.invoice(42)
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    engine.dispose()
    # And the app's own connections commit a payment durably (FULL: the WAL is synced at
    # every commit), which the webhook's 2xx promises Telegram.
    with shop.app.app_context():
        app_conn = shop.app.extensions["stars"].session.connection()
        assert app_conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2


def test_register_handlers_outside_an_app_context_says_what_to_do():
    from telebot import TeleBot

    app = hostapp.bare_app()
    stars = FlaskStars(app)
    with pytest.raises(RuntimeError, match="register_handlers"):
        stars.register_handlers(TeleBot(TEST_TOKEN, threaded=False))
