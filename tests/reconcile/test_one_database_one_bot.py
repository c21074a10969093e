"""One database, one bot: the stars_* tables belong to the bot (and environment) that first
used them; another bot's app is refused on them until ``flask stars hand-over --yes``."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from flask import Flask

from flask_stars import StarsConfigError, get_state
from flask_stars.audit import entries
from flask_stars.binding import BINDING_KEY
from flask_stars.errors import OtherBotsTables
from flask_stars.models import Meta, Payment
from flask_stars.sandbox import SANDBOX_TOKEN, TEST_USERS, Sandbox
from flask_stars.testing import TEST_TOKEN, connect
from tests.support import hostapp
from tests.support.servers import free_port, wait_until_serving
from tests.support.shop import Shop, load_update

TEST_SERVER_TOKEN = "222222222:TEST-SERVER-token-of-the-test-bot"
PRODUCTION_TOKEN = "333333333:PRODUCTION-token-of-the-real-bot"
REVOKED_PRODUCTION_TOKEN = "333333333:NEW-token-after-BotFather-revoke"

SANDBOX_BOT = "bot 123456789 (flask_stars' sandbox)"
TEST_SERVER_BOT = "bot 222222222 (Telegram's test server)"
PRODUCTION_BOT = "bot 333333333 (production)"


@pytest.fixture
def make_app(database_url: str, sandbox: Sandbox) -> Iterator[Callable[..., Flask]]:
    """Host apps on the test's database whose Bot API calls go to the sandbox, not connected
    to it (so not a sandbox run): they stand for the test server's and the production bot."""
    apps: list[Flask] = []

    def factory(**config: Any) -> Flask:
        config.setdefault("STARS_API_URL", sandbox.url)
        app = hostapp.create_app(database_url, **config)
        apps.append(app)
        return app

    yield factory
    for app in apps:
        with app.app_context():
            for engine in hostapp.db.engines.values():
                engine.dispose()


def stars(app: Flask, *args: str) -> Any:
    """``flask stars ARGS...`` on ``app``; the click result."""
    return app.test_cli_runner().invoke(args=["stars", *args])


def payment_update(update_id: int, charge_id: str, user_id: int = 77) -> dict[str, Any]:
    update = load_update("successful_payment")
    update["update_id"] = update_id
    msg = update["message"]
    msg["from"]["id"] = msg["chat"]["id"] = user_id
    msg["successful_payment"]["telegram_payment_charge_id"] = charge_id
    return update


def deliver(app: Flask, update: dict[str, Any]) -> Any:
    """The update POSTed to the app's webhook with its own secret."""
    secret = get_state(app).settings.webhook_secrets[0]
    return app.test_client().post(
        "/stars/webhook", json=update, headers={"X-Telegram-Bot-Api-Secret-Token": secret}
    )


def binding_of(database_url: str) -> list[str]:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.select(Meta.value).where(Meta.key == BINDING_KEY)).scalars())
    finally:
        engine.dispose()


def assert_refused(app: Flask, old: str, new: str) -> str:
    """Every entry point of ``app`` is refused, naming both bots: a command exits 1 and the
    webhook answers 500 (Telegram redelivers) without touching the ledger. The message."""
    result = stars(app, "payments")
    assert result.exit_code == 1, result.output
    message = result.output
    assert old in message and new in message, message
    payments = binding_payments(app)
    assert deliver(app, payment_update(9_000_001, "stx-refused-charge")).status_code == 500
    start = load_update("successful_payment")
    start["update_id"] = 9_000_002
    start["message"].pop("successful_payment")
    start["message"]["text"] = "/start"
    assert deliver(app, start).status_code == 500  # not 2xx-and-dropped
    assert binding_payments(app) == payments
    return message


def binding_payments(app: Flask) -> int:
    """How many payments the ledger holds, read past the binding (straight from the engine)."""
    with app.app_context(), get_state(app).database.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(Payment)).scalar_one())


def test_sandbox_then_test_server_then_production_bot_on_one_database(
    shop: Shop, make_app: Callable[..., Flask], database_url: str
) -> None:
    """The tables follow one bot at a time; each move is refused until it is handed over."""
    _, attempt = shop.buy(42)  # the sandbox's bot (TEST_TOKEN, connected) uses them first
    assert attempt.payment.status == 200 and shop.balance(42) == 1_000_000
    assert binding_of(database_url) == ["123456789:sandbox"]

    test_bot = make_app(STARS_BOT_TOKEN=TEST_SERVER_TOKEN, STARS_TEST_ENVIRONMENT=True)
    message = assert_refused(test_bot, SANDBOX_BOT, TEST_SERVER_BOT)
    assert "flask stars hand-over --yes" in message and "database of its own" in message

    # Without --yes: it says what would happen and changes nothing.
    dry = stars(test_bot, "hand-over")
    assert dry.exit_code == 0 and "Nothing changed" in dry.output
    assert SANDBOX_BOT in dry.output and TEST_SERVER_BOT in dry.output
    assert binding_of(database_url) == ["123456789:sandbox"]
    assert stars(test_bot, "payments").exit_code == 1

    moved = stars(test_bot, "hand-over", "--yes")
    assert moved.exit_code == 0, moved.output
    assert f"from {SANDBOX_BOT} to {TEST_SERVER_BOT}" in moved.output
    assert binding_of(database_url) == ["222222222:test"]
    listed = json.loads(stars(test_bot, "payments", "--json").output)
    assert [p["charge_id"] for p in listed] == [attempt.charge_id]  # every row kept
    assert deliver(test_bot, payment_update(1, "stx-test-server-charge")).status_code == 200
    with test_bot.app_context():
        (entry,) = entries(get_state(test_bot), target="222222222:test")
    assert (entry.action, entry.source, entry.outcome) == ("rebind", "cli", "ok")
    assert entry.detail == "from 123456789:sandbox to 222222222:test"

    production = make_app(STARS_BOT_TOKEN=PRODUCTION_TOKEN)
    assert_refused(production, TEST_SERVER_BOT, PRODUCTION_BOT)
    moved = stars(production, "hand-over", "--yes")
    assert moved.exit_code == 0 and f"from {TEST_SERVER_BOT} to {PRODUCTION_BOT}" in moved.output
    assert binding_of(database_url) == ["333333333:production"]
    assert binding_payments(production) == 2
    assert stars(production, "hand-over").output.startswith("The stars_* tables already belong to")

    # BotFather's revoke: a new token of the same bot needs no hand-over.
    revoked = make_app(STARS_BOT_TOKEN=REVOKED_PRODUCTION_TOKEN)
    assert stars(revoked, "payments").exit_code == 0
    assert deliver(revoked, payment_update(2, "stx-after-revoke")).status_code == 200
    assert binding_payments(revoked) == 3

    # And the sandbox's bot is now refused on the production ledger, with no hand-over offered.
    sandboxed = make_app(STARS_BOT_TOKEN=TEST_TOKEN)
    sandboxed.extensions["stars"].sandbox_run = True
    message = assert_refused(sandboxed, PRODUCTION_BOT, SANDBOX_BOT)
    assert "never enter a real bot's ledger" in message and "hand-over" not in message


def test_the_same_bot_id_in_another_environment_is_another_bot(make_app: Callable[..., Flask]) -> None:
    production = make_app(STARS_BOT_TOKEN=PRODUCTION_TOKEN)
    assert stars(production, "payments").exit_code == 0
    test_server = make_app(STARS_BOT_TOKEN=PRODUCTION_TOKEN, STARS_TEST_ENVIRONMENT=True)
    message = assert_refused(test_server, PRODUCTION_BOT, "bot 333333333 (Telegram's test server)")
    assert "Telegram keeps its environments apart" in message


def test_an_identity_change_at_run_time_is_checked_again(make_app: Callable[..., Flask]) -> None:
    """Checked once per identity: a process that becomes a sandbox run checks again."""
    app = make_app(STARS_BOT_TOKEN=TEST_TOKEN)
    state = get_state(app)
    with app.app_context():
        state.session.execute(sa.select(1))  # bound to 123456789 (production)
        state.sandbox_run = True
        with pytest.raises(OtherBotsTables, match=r"bot 123456789 \(production\).*sandbox"):
            state.session  # noqa: B018 (the property is the use)
        state.sandbox_run = False
        state.session.execute(sa.select(1))


def test_flask_stars_sandbox_on_a_production_database_is_refused(
    make_app: Callable[..., Flask], database_url: str
) -> None:
    """`flask stars sandbox` (a real subprocess) stops before it serves anything."""
    production = make_app(STARS_BOT_TOKEN=PRODUCTION_TOKEN)
    assert stars(production, "payments").exit_code == 0  # the production bot's tables now
    app_spec = f"tests.support.hostapp:create_app({database_url!r}, STARS_BOT_TOKEN={PRODUCTION_TOKEN!r})"
    run = subprocess.run(
        [sys.executable, "-m", "flask", "--app", app_spec, "stars", "sandbox", "--port", str(free_port())],
        env={**os.environ, "PYTHONPATH": os.getcwd()},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    assert PRODUCTION_BOT in run.stderr and "bot 100000001 (flask_stars' sandbox)" in run.stderr
    assert "never enter a real bot's ledger" in run.stderr
    assert binding_of(database_url) == ["333333333:production"]
    assert "Bot API sandbox on" not in run.stdout  # it never started


def _start_worker(database_url: str, token: str, barrier: Any, results: Any) -> None:
    app = hostapp.create_app(database_url, STARS_BOT_TOKEN=token)
    barrier.wait(timeout=120)
    try:
        with app.app_context():
            get_state(app).database.ensure_ready()  # the tables' first use: made, then bound
        results.put((token, "ok"))
    except StarsConfigError as exc:
        results.put((token, exc.message))
    except Exception as exc:  # any other failure is reported at once, not as a 180 s wait
        results.put((token, f"{exc.__class__.__name__}: {exc}"))
    finally:
        with app.app_context():
            hostapp.db.engine.dispose()


def start_together(database_url: str, tokens: list[str]) -> dict[str, str]:
    """Each token's app in its own process, all reaching the empty tables at once."""
    with hostapp.create_app(database_url).app_context():  # the host's own tables, made first
        hostapp.db.engine.dispose()
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(len(tokens))
    results = context.Queue()
    workers = [
        context.Process(target=_start_worker, args=(database_url, token, barrier, results))
        for token in tokens
    ]
    for worker in workers:
        worker.start()
    try:
        return dict(results.get(timeout=180) for _ in tokens)
    finally:
        for worker in workers:
            worker.join(timeout=30)


def test_workers_starting_together_on_an_empty_database_record_one_binding(database_url: str) -> None:
    tokens = [PRODUCTION_TOKEN, REVOKED_PRODUCTION_TOKEN, PRODUCTION_TOKEN, REVOKED_PRODUCTION_TOKEN]
    outcomes = start_together(database_url, tokens)
    assert set(outcomes.values()) == {"ok"}
    assert binding_of(database_url) == ["333333333:production"]


def test_bots_starting_together_on_an_empty_database_one_wins(database_url: str) -> None:
    tokens = [f"{n}00000000:token-of-bot-{n}" for n in range(1, 5)]
    outcomes = start_together(database_url, tokens)
    (winner,) = [token for token, outcome in outcomes.items() if outcome == "ok"]
    bot_id = winner.split(":")[0]
    assert binding_of(database_url) == [f"{bot_id}:production"]
    for token, outcome in outcomes.items():
        if token != winner:
            assert f"belong to bot {bot_id} (production)" in outcome
            assert f"bot {token.split(':')[0]} (production)" in outcome


@contextmanager
def example_app(database_url: str) -> Iterator[str]:
    """``python -m example_app`` (the sandbox playing Telegram) on ``database_url``; its URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "example_app", "--port", str(port)],
        env={**os.environ, "PYTHONPATH": os.getcwd(), "DATABASE_URL": database_url},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(proc, base + "/stars/sandbox/", seconds=60, what="the example app")
        yield base
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def test_the_example_app_restarted_on_its_own_database_keeps_working(database_url: str) -> None:
    """Every run's sandbox plays the same bot (SANDBOX_TOKEN), so a restart is the same bot."""
    from example_app.models import Base as ExampleBase
    from tests.support.servers import buy_in_sandbox_run

    user = TEST_USERS[0]
    engine = sa.create_engine(database_url)
    try:
        for pack in ("stars_pack_1", "stars_pack_2"):  # one purchase per run
            with example_app(database_url) as base:
                init = requests.get(base + "/stars/sandbox/init-data", params={"user": user["id"]}, timeout=5)
                buy_in_sandbox_run(base, init.json()["init_data"], user["id"], pack)
        sandbox_id = SANDBOX_TOKEN.split(":")[0]
        assert binding_of(database_url) == [f"{sandbox_id}:sandbox"]
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(Payment)).scalar_one() == 2
    finally:
        with engine.begin() as conn:
            ExampleBase.metadata.drop_all(conn)  # the example's own users table
        engine.dispose()


def test_a_connected_app_is_a_sandbox_run(make_app: Callable[..., Flask], sandbox: Sandbox) -> None:
    app = make_app()
    connect(app, sandbox, "http://127.0.0.1:1")
    assert get_state(app).bot_identity.key == "123456789:sandbox"
