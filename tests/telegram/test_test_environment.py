"""``STARS_TEST_ENVIRONMENT``: Telegram's test environment, proved against the sandbox.

With the key on, every Bot API call flask_stars makes goes to ``/bot<token>/test/<method>``
(the sandbox answers that path too and records ``Call.test_environment``), also when
``STARS_API_URL`` points elsewhere, and ed25519 initData is checked with Telegram's test
key. Telegram itself is unreachable from CI: only the routing is proved here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from telebot import apihelper

from flask_stars import StarsConfigError, get_state, stars_bp
from flask_stars import config as stars_config
from flask_stars.botapi import configure_transport
from flask_stars.initdata import TELEGRAM_PUBLIC_KEYS, ed25519_public_key_hex, new_ed25519_key
from flask_stars.sandbox import SANDBOX_TOKEN, Sandbox, attach_sandbox, use_sandbox_token
from flask_stars.testing import TEST_TOKEN, init_data_header, serve
from tests.support import hostapp
from tests.support.shop import Shop
from tests.support.subscriptions import MONTHLY

PRODUCTION_KEY = TELEGRAM_PUBLIC_KEYS["production"]
TEST_KEY = TELEGRAM_PUBLIC_KEYS["test"]
OTHER_KEY = ed25519_public_key_hex(new_ed25519_key())


@pytest.fixture(autouse=True)
def restore_telebot_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    """telebot keeps the Bot API URL process-wide: give the next test back what it had."""
    monkeypatch.setattr(apihelper, "API_URL", apihelper.API_URL)
    monkeypatch.setattr(apihelper, "FILE_URL", apihelper.FILE_URL)


# --- configuration ---------------------------------------------------------------------------


def test_off_by_default_with_telegrams_production_key() -> None:
    app = hostapp.bare_app()
    app.register_blueprint(stars_bp)
    settings = get_state(app).settings
    assert app.config["STARS_TEST_ENVIRONMENT"] is False
    assert settings.test_environment is False
    assert settings.init_data_public_key == PRODUCTION_KEY


def test_on_it_checks_initdata_with_telegrams_test_key() -> None:
    app = hostapp.bare_app(STARS_TEST_ENVIRONMENT=True, STARS_INIT_DATA_VALIDATION="ed25519")
    app.register_blueprint(stars_bp)
    settings = get_state(app).settings
    assert settings.test_environment is True
    assert settings.init_data_public_key == TEST_KEY


@pytest.mark.parametrize("key", [TEST_KEY, TEST_KEY.upper(), OTHER_KEY])
def test_an_explicit_key_other_than_the_production_one_is_kept(key: str) -> None:
    app = hostapp.bare_app(STARS_TEST_ENVIRONMENT=True, STARS_INIT_DATA_PUBLIC_KEY=key)
    app.register_blueprint(stars_bp)
    assert get_state(app).settings.init_data_public_key == key.lower()


@pytest.mark.parametrize("key", [PRODUCTION_KEY, PRODUCTION_KEY.upper()])
@pytest.mark.parametrize("mode", ["ed25519", "hmac"])
def test_the_production_key_with_the_test_environment_fails_at_start_up(key: str, mode: str) -> None:
    app = hostapp.bare_app(
        STARS_TEST_ENVIRONMENT=True, STARS_INIT_DATA_PUBLIC_KEY=key, STARS_INIT_DATA_VALIDATION=mode
    )
    with pytest.raises(StarsConfigError, match=r"STARS_TEST_ENVIRONMENT.*production key"):
        app.register_blueprint(stars_bp)


@pytest.mark.parametrize("value", ["true", "false", 1, 0, None, "yes"])
def test_only_true_or_false_is_accepted(value: Any) -> None:
    with pytest.raises(StarsConfigError, match="STARS_TEST_ENVIRONMENT must be True or False"):
        hostapp.bare_app(STARS_TEST_ENVIRONMENT=value).register_blueprint(stars_bp)


def test_the_key_is_documented() -> None:
    default, meaning = stars_config.CONFIG_KEYS["STARS_TEST_ENVIRONMENT"]
    assert default is False and "/test/" in meaning


# --- the transport -----------------------------------------------------------------------------


def test_the_test_path_goes_to_telegram_when_no_api_url_is_set() -> None:
    hostapp.bare_app(STARS_TEST_ENVIRONMENT=True).register_blueprint(stars_bp)
    assert apihelper.API_URL == "https://api.telegram.org/bot{0}/test/{1}"
    assert apihelper.FILE_URL == "https://api.telegram.org/file/bot{0}/test/{1}"


def test_the_test_path_follows_stars_api_url() -> None:
    hostapp.bare_app(STARS_TEST_ENVIRONMENT=True, STARS_API_URL="http://127.0.0.1:8081/").register_blueprint(
        stars_bp
    )
    assert apihelper.API_URL == "http://127.0.0.1:8081/bot{0}/test/{1}"
    configure_transport("http://127.0.0.1:8081", None)
    assert apihelper.API_URL == "http://127.0.0.1:8081/bot{0}/{1}"


def test_off_and_without_api_url_telebots_own_setting_is_left_alone() -> None:
    apihelper.API_URL = "http://my-own-bot-api:8081/bot{0}/{1}"  # type: ignore[assignment]
    hostapp.bare_app().register_blueprint(stars_bp)
    assert apihelper.API_URL == "http://my-own-bot-api:8081/bot{0}/{1}"


# --- every call lands in the test environment --------------------------------------------------

EVERY_METHOD = {
    "createInvoiceLink",
    "answerPreCheckoutQuery",
    "refundStarPayment",
    "sendMessage",
    "sendInvoice",
    "answerCallbackQuery",
    "editUserStarSubscription",
    "getStarTransactions",
    "getMyStarBalance",
    "setWebhook",
    "getWebhookInfo",
    "deleteWebhook",
}


def _use_every_method(shop: Shop) -> None:
    """Everything flask_stars asks Telegram: Mini App, chat, refunds, plans, reconcile, CLI."""
    order = shop.invoice(42).json()  # createInvoiceLink
    first = shop.tg.pay(order["invoice_url"], 42)  # answerPreCheckoutQuery
    assert first.ok and shop.balance(42) == 1_000_000
    charge2, update2 = shop.tg.charge(order["invoice_url"], 42)  # paid twice: refund + message
    assert charge2 and shop.tg.deliver(update2).status == 200
    runner = shop.app.test_cli_runner()
    refunded = runner.invoke(args=["stars", "refund", first.charge_id])  # refundStarPayment
    assert refunded.exit_code == 0, refunded.output
    sub = shop.invoice(43, "monthly").json()
    assert shop.tg.pay(sub["invoice_url"], 43).ok
    (listed,) = shop.http.get(shop.url("/subscriptions"), headers=shop.auth(43)).json()["subscriptions"]
    cancel = shop.http.post(shop.url(f"/subscriptions/{listed['id']}/cancel"), headers=shop.auth(43))
    assert cancel.status_code == 200  # editUserStarSubscription
    assert shop.tg.send_text(44, "/buy_stars").status == 200  # sendMessage with the buttons
    assert shop.tg.press_button(44, "stars:buy:stars_pack_2").status == 200  # sendInvoice
    for args in (
        ["stars", "reconcile"],  # getStarTransactions
        ["stars", "balance"],  # getMyStarBalance
        ["stars", "set-webhook", shop.url("/webhook")],  # setWebhook
        ["stars", "webhook-info"],  # getWebhookInfo
        ["stars", "delete-webhook"],  # deleteWebhook
    ):
        result = runner.invoke(args=args)
        assert result.exit_code == 0, (args, result.output)


def test_every_bot_api_call_goes_to_the_test_environment(make_shop: Callable[..., Shop]) -> None:
    shop = make_shop(STARS_TEST_ENVIRONMENT=True, STARS_PACKS=[*hostapp.PACKS, MONTHLY])
    _use_every_method(shop)
    calls = list(shop.tg.calls)
    assert {c.method for c in calls} >= EVERY_METHOD
    assert [c.method for c in calls if not c.test_environment] == []


def test_off_by_default_every_call_goes_to_the_production_path(make_shop: Callable[..., Shop]) -> None:
    shop = make_shop(STARS_PACKS=[*hostapp.PACKS, MONTHLY])
    _use_every_method(shop)
    calls = list(shop.tg.calls)
    assert {c.method for c in calls} >= EVERY_METHOD
    assert [c.method for c in calls if c.test_environment] == []


# --- a sandbox run keeps the test environment ---------------------------------------------------


@pytest.fixture
def sandbox_run_in_the_test_environment(database_url: str) -> Iterator[tuple[str, Sandbox]]:
    """What ``flask stars sandbox`` does, in this process, for an app in the test environment."""
    app = hostapp.create_app(database_url, STARS_TEST_ENVIRONMENT=True, STARS_INIT_DATA_VALIDATION="ed25519")
    state = get_state(app)
    key = new_ed25519_key()
    use_sandbox_token(app, SANDBOX_TOKEN, init_data_public_key=ed25519_public_key_hex(key))
    with Sandbox(token=SANDBOX_TOKEN) as sandbox:
        state.use_api_url(sandbox.url)
        try:
            with serve(app) as base:
                attach_sandbox(app, sandbox, base, init_data_key=key)
                yield base, sandbox
        finally:
            with app.app_context():
                for engine in hostapp.db.engines.values():
                    engine.dispose()


def test_a_sandbox_run_of_a_test_environment_app_calls_the_test_path(
    sandbox_run_in_the_test_environment: tuple[str, Sandbox],
) -> None:
    base, sandbox = sandbox_run_in_the_test_environment
    assert sandbox.url + "/bot{0}/test/{1}" == apihelper.API_URL
    init = requests.get(base + "/stars/sandbox/init-data", params={"user": 42}, timeout=5).json()
    auth = {"Authorization": "tma " + init["init_data"]}
    order = requests.post(base + "/stars/invoice", json={"pack_id": "stars_pack_1"}, headers=auth, timeout=5)
    assert order.status_code == 201, order.text
    slug = order.json()["invoice_url"].rsplit("$", 1)[1]
    paid = requests.post(base + "/stars/sandbox/pay", json={"slug": slug, "user_id": 42}, timeout=15).json()
    assert paid["ok"] and paid["webhook_status"] == 200
    refund = requests.post(base + "/stars/sandbox/refund", json={"charge_id": paid["charge_id"]}, timeout=15)
    assert refund.json() == {"ok": True, "status": "refunded"}
    calls = list(sandbox.calls)
    assert {"createInvoiceLink", "answerPreCheckoutQuery", "refundStarPayment"} <= {c.method for c in calls}
    assert all(c.test_environment for c in calls)


# --- ed25519 initData in the test environment ---------------------------------------------------


def test_ed25519_mode_in_the_test_environment_trusts_the_test_key_only(
    make_shop: Callable[..., Shop], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Telegram's test key is played by a key pair of ours, so a test user can be signed for."""
    telegram_test = new_ed25519_key()
    telegram_production = new_ed25519_key()
    monkeypatch.setitem(stars_config.TELEGRAM_PUBLIC_KEYS, "test", ed25519_public_key_hex(telegram_test))
    monkeypatch.setitem(
        stars_config.TELEGRAM_PUBLIC_KEYS, "production", ed25519_public_key_hex(telegram_production)
    )
    shop = make_shop(STARS_TEST_ENVIRONMENT=True, STARS_INIT_DATA_VALIDATION="ed25519")

    def invoice(header: dict[str, str]) -> int:
        resp = shop.http.post(shop.url("/invoice"), json={"pack_id": "stars_pack_1"}, headers=header)
        return resp.status_code

    assert invoice(init_data_header(TEST_TOKEN, 42, ed25519_private_key=telegram_test)) == 201
    assert invoice(init_data_header(TEST_TOKEN, 43, ed25519_private_key=telegram_production)) == 401
    assert invoice(init_data_header(TEST_TOKEN, 44)) == 401  # the HMAC hash alone is not enough
    assert [c.test_environment for c in shop.tg.calls] == [True]  # the one invoice link
