"""With no answer from the Bot API, the CLI says "Telegram could not be reached (...)";
"Telegram said: ..." is kept for an error Telegram actually answered with."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from telebot import apihelper

from flask_stars.errors import BotApiError
from flask_stars.models import Payment
from flask_stars.testing import TEST_TOKEN
from tests.support import hostapp

TELEGRAM_CALLS = [
    ["stars", "set-webhook", "https://shop.example/stars/webhook"],
    ["stars", "set-webhook", "https://shop.example/stars/webhook", "--drop-pending"],
    ["stars", "webhook-info"],
    ["stars", "delete-webhook"],
    ["stars", "balance"],
    ["stars", "reconcile"],
]


@pytest.fixture(autouse=True)
def _keep_telebots_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    """telebot keeps the API URL and timeouts process-wide: put them back afterwards."""
    for name in ("API_URL", "FILE_URL", "CONNECT_TIMEOUT", "READ_TIMEOUT"):
        monkeypatch.setattr(apihelper, name, getattr(apihelper, name))


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on: every connection is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that takes connections and never answers: every call times out."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        yield int(server.getsockname()[1])


def _offline_app(database_url: str, port: int, timeout: float = 3) -> Any:
    return hostapp.create_app(
        database_url, STARS_API_URL=f"http://127.0.0.1:{port}", STARS_API_TIMEOUT=timeout
    )


@pytest.mark.parametrize("args", TELEGRAM_CALLS, ids=lambda a: " ".join(a[1:]))
def test_connection_refused_says_telegram_could_not_be_reached(
    database_url: str, closed_port: int, args: list[str]
) -> None:
    result = _offline_app(database_url, closed_port).test_cli_runner().invoke(args=args)
    assert result.exit_code == 1, result.output
    assert f"Telegram could not be reached (127.0.0.1:{closed_port}: Connection refused)" in result.output
    assert "Telegram said" not in result.output
    assert TEST_TOKEN not in result.output and TEST_TOKEN.split(":")[1] not in result.output


def test_a_timeout_says_telegram_could_not_be_reached(database_url: str, silent_port: int) -> None:
    app = _offline_app(database_url, silent_port, timeout=0.5)
    result = app.test_cli_runner().invoke(args=["stars", "webhook-info"])
    assert result.exit_code == 1
    assert f"Telegram could not be reached (127.0.0.1:{silent_port}: timed out)" in result.output


def test_a_server_that_hangs_up_without_an_answer_is_no_answer(database_url: str) -> None:
    """A proxy that closes the connection: reached, but nothing said."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        port = int(server.getsockname()[1])

        def hang_up() -> None:
            for _ in range(3):  # requests may try again on a fresh connection
                with contextlib.suppress(OSError):
                    conn, _ = server.accept()
                    conn.recv(65536)
                    conn.close()

        threading.Thread(target=hang_up, daemon=True).start()
        result = _offline_app(database_url, port).test_cli_runner().invoke(args=["stars", "webhook-info"])
    assert result.exit_code == 1
    assert f"Telegram could not be reached (127.0.0.1:{port}: Remote end closed connection" in result.output


def test_an_answered_error_still_says_what_telegram_said(shop: Any) -> None:
    shop.tg.fail("setWebhook", 400, "Bad Request: bad webhook: HTTPS url must be provided for webhook")
    result = shop.app.test_cli_runner().invoke(
        args=["stars", "set-webhook", "https://x.example/stars/webhook"]
    )
    assert result.exit_code == 1
    assert "Telegram said: Bad Request: bad webhook: HTTPS url must be provided" in result.output
    assert "could not be reached" not in result.output


def test_a_refund_while_telegram_is_unreachable_changes_nothing(shop: Any, closed_port: int) -> None:
    _, attempt = shop.buy(42)
    assert attempt.ok and shop.balance(42) == 1_000_000
    shop.app.extensions["stars"].use_api_url(f"http://127.0.0.1:{closed_port}")  # the network goes
    result = shop.app.test_cli_runner().invoke(
        args=["stars", "refund", attempt.charge_id, "--reason", "test"]
    )
    assert result.exit_code == 1
    assert f"Telegram could not be reached (127.0.0.1:{closed_port}: Connection refused)" in result.output
    (payment,) = shop.rows(Payment)
    assert payment.status == "paid" and shop.balance(42) == 1_000_000


def test_the_error_tells_the_two_kinds_apart() -> None:
    said = BotApiError("setWebhook", "Bad Request: nope", error_code=400)
    unreachable = BotApiError("setWebhook", "127.0.0.1:9: Connection refused", answered=False)
    late = BotApiError("setWebhook", "api.telegram.org: timed out", timeout=True)
    assert (said.answered, unreachable.answered, late.answered) == (True, False, False)
    assert said.summary == "Telegram said: Bad Request: nope"
    assert unreachable.summary == "Telegram could not be reached (127.0.0.1:9: Connection refused)"
    assert late.summary == "Telegram could not be reached (api.telegram.org: timed out)"


def test_the_mini_app_hears_it_too(make_shop: Any, closed_port: int) -> None:
    """POST /stars/invoice with Telegram unreachable: 502, and the message says why."""
    shop = make_shop()
    shop.app.extensions["stars"].use_api_url(f"http://127.0.0.1:{closed_port}")
    resp = shop.invoice(42)
    assert resp.status_code == 502
    assert resp.json() == {"error": "bot_api_error", "message": "Telegram could not be reached; try again."}
