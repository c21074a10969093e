"""``flask stars ...`` against the sandbox."""

from __future__ import annotations

import json

import pytest
import requests

from flask_stars.errors import InvalidInitData
from flask_stars.initdata import validate_init_data
from flask_stars.sandbox import SANDBOX_TOKEN, TEST_USERS
from flask_stars.testing import init_data_header
from tests.support.servers import buy_in_sandbox_run, sandbox_run


def test_set_webhook_sends_secret_and_payment_update_types(shop):
    runner = shop.app.test_cli_runner()
    result = runner.invoke(
        args=["stars", "set-webhook", "https://shop.example/stars/webhook", "--max-connections", "40"]
    )
    assert result.exit_code == 0, result.output
    (call,) = shop.tg.calls_to("setWebhook")
    assert call["url"] == "https://shop.example/stars/webhook"
    assert call["secret_token"] == shop.app.extensions["stars"].settings.webhook_secrets[0]
    assert {"message", "pre_checkout_query"} <= set(json.loads(call["allowed_updates"]))
    assert call["max_connections"] == "40"
    info = runner.invoke(args=["stars", "webhook-info"])
    assert "https://shop.example/stars/webhook" in info.output
    assert runner.invoke(args=["stars", "delete-webhook"]).exit_code == 0
    assert shop.tg.calls_to("deleteWebhook")


def test_set_webhook_reports_telegram_errors(shop):
    shop.tg.fail("setWebhook", 400, "Bad Request: bad webhook: HTTPS url must be provided for webhook")
    result = shop.app.test_cli_runner().invoke(
        args=["stars", "set-webhook", "https://x.example/stars/webhook"]
    )
    assert result.exit_code != 0
    assert "HTTPS url must be provided" in result.output


def test_replay_failed_credits_once(shop):
    shop.credit_log.fail_next = 1
    _, attempt = shop.buy(42)
    assert attempt.payment.status == 500 and shop.balance(42) == 0
    # Telegram gave up (or the app was down): the operator replays from the raw log.
    runner = shop.app.test_cli_runner()
    result = runner.invoke(args=["stars", "replay", "--failed"])
    assert result.exit_code == 0, result.output
    assert "credited" in result.output and "replayed 1 of 1" in result.output
    assert shop.balance(42) == 1_000_000
    again = runner.invoke(args=["stars", "replay", str(attempt.payment_update["update_id"])])
    assert "duplicate" in again.output
    assert shop.balance(42) == 1_000_000
    assert (
        runner.invoke(args=["stars", "replay", "--failed"])
        .output.strip()
        .endswith("replayed 0 of 0 update(s)")
    )


def test_payments_and_orders_listings(shop):
    shop.buy(42)
    runner = shop.app.test_cli_runner()
    table = runner.invoke(args=["stars", "payments"]).output
    assert "charge_id" in table and "stars_pack_1" in table
    rows = json.loads(runner.invoke(args=["stars", "orders", "--json", "--status", "paid"]).output)
    assert len(rows) == 1 and rows[0]["user"] == 42


def test_flask_stars_sandbox_runs_a_host_app_with_telegram_emulated(tmp_path):
    """`flask stars sandbox` as a host app's developer runs it, in a real subprocess."""
    db = tmp_path / "host.db"
    with sandbox_run(f"tests.support.hostapp:create_app('sqlite:///{db}')") as (base, printed):
        user = TEST_USERS[1]
        init = requests.get(base + "/stars/sandbox/init-data", params={"user": user["id"]}, timeout=5).json()
        buy_in_sandbox_run(base, init["init_data"], user["id"], "stars_pack_2")
    assert "Open http://127.0.0.1:" in printed[0] and "/stars/sandbox/" in printed[0]


def _broken_debit(payment: object) -> None:
    raise RuntimeError("the coins table is locked")


def test_refund_whose_debit_callback_fails_exits_with_one_line_and_leaves_the_ledger(make_shop):
    from tests.support import hostapp

    shop = make_shop(STARS_DEBIT_CALLBACK=_broken_debit)
    _, attempt = shop.buy(42)
    assert shop.balance(42) == 1_000_000
    runner = shop.app.test_cli_runner()
    result = runner.invoke(args=["stars", "refund", attempt.charge_id])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    (line,) = result.output.strip().splitlines()
    assert line.startswith(
        f"Error: refund of {attempt.charge_id} failed: RuntimeError: the coins table is locked"
    )
    assert "the ledger is unchanged" in line
    # Rolled back: the payment is still paid and the coins are still there.
    (payment,) = shop.payments()
    assert payment.status == "paid" and payment.refunded_at is None
    assert shop.balance(42) == 1_000_000
    # With the callback fixed, the same command finishes it (Telegram says it is already
    # refunded) and debits once.
    shop.app.config["STARS_DEBIT_CALLBACK"] = hostapp.debit_coins
    again = runner.invoke(args=["stars", "refund", attempt.charge_id])
    assert again.exit_code == 0, again.output
    assert f"{attempt.charge_id}: refunded" in again.output
    assert shop.balance(42) == 0 and shop.credit_log.debits == [attempt.charge_id]


PRODUCTION_TOKEN = "987654321:PRODUCTION-token-of-the-real-bot"


def test_sandbox_run_signs_init_data_with_its_own_token_never_the_production_one(database_url):
    """`flask stars sandbox` on an app whose STARS_BOT_TOKEN is the real bot's."""
    app_spec = f"tests.support.hostapp:create_app({database_url!r}, STARS_BOT_TOKEN={PRODUCTION_TOKEN!r})"
    with sandbox_run(app_spec) as (base, printed):
        user = TEST_USERS[0]
        init = requests.get(base + "/stars/sandbox/init-data", params={"user": user["id"]}, timeout=5).json()
        raw = init["init_data"]
        # Worthless to the real bot: it is signed with the sandbox's own token.
        with pytest.raises(InvalidInitData):
            validate_init_data(raw, PRODUCTION_TOKEN, max_age=86400)
        assert validate_init_data(raw, SANDBOX_TOKEN, max_age=86400).user.id == user["id"]
        # And the run does not take initData signed with the production token either.
        forged = requests.post(
            base + "/stars/invoice",
            json={"pack_id": "stars_pack_1"},
            headers=init_data_header(PRODUCTION_TOKEN, user["id"]),
            timeout=5,
        )
        assert forged.status_code == 401
        # A purchase through the sandbox still works end to end.
        buy_in_sandbox_run(base, raw, user["id"], "stars_pack_1")
    assert PRODUCTION_TOKEN not in printed[0]
