"""Every ``STARS_*`` flag, number and rate is read strictly: "false" is an error, never True."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from flask_stars import StarsConfigError, stars_bp
from flask_stars.config import CONFIG_KEYS, KEYS, Settings, read_settings
from flask_stars.testing import TEST_TOKEN
from tests.support import hostapp

FLAGS = [
    "STARS_ALLOW_GIFTS",
    "STARS_TEST_ENVIRONMENT",
    "STARS_ANSWER_IN_RESPONSE",
    "STARS_CREATE_TABLES",
    "STARS_SQLITE_WAL",
    "STARS_METRICS",
]
#: key -> is None allowed
WHOLE_NUMBERS = {
    "STARS_INIT_DATA_MAX_AGE": False,
    "STARS_ORDER_TTL": False,
    "STARS_PRE_CHECKOUT_HOLD": False,
    "STARS_MAX_BODY": False,
    "STARS_ORDER_WAITS_PER_USER": False,
    "STARS_ORDER_WAITS_MAX": False,
    "STARS_UPDATE_RETENTION_DAYS": True,
}
SECONDS = {"STARS_PRE_CHECKOUT_TIMEOUT": False, "STARS_API_TIMEOUT": True}
RATES = ["STARS_INVOICE_RATE_LIMIT", "STARS_SUBSCRIPTION_RATE_LIMIT"]
#: Read by other parts, each strictly too (tests/setup/test_mounting.py): the catalogue, the callbacks.
READ_ELSEWHERE = {"STARS_PACKS", "STARS_CREDIT_CALLBACK", "STARS_DEBIT_CALLBACK"}


def _start(**config: Any) -> Settings:
    app = hostapp.bare_app(**config)
    app.register_blueprint(stars_bp)
    settings: Settings = app.extensions["stars"].settings
    return settings


@pytest.mark.parametrize("value", ["false", "False", "0", "", "no", 0, 1, None])
@pytest.mark.parametrize("key", FLAGS)
def test_a_flag_that_is_not_true_or_false_fails_at_start_up(key: str, value: Any) -> None:
    with pytest.raises(StarsConfigError, match=f"{key} must be True or False, got {value!r}"):
        _start(**{key: value})


def test_allow_gifts_false_as_a_string_never_allows_gifts() -> None:
    """The reported case: "false" used to be truthy, so gifts were on."""
    with pytest.raises(StarsConfigError, match="STARS_ALLOW_GIFTS"):
        _start(STARS_ALLOW_GIFTS="false")
    assert _start(STARS_ALLOW_GIFTS=False).allow_gifts is False
    assert _start(STARS_ALLOW_GIFTS=True).allow_gifts is True


@pytest.mark.parametrize("key", FLAGS)
def test_a_flag_keeps_true_and_false(key: str) -> None:
    field = key.removeprefix("STARS_").lower()
    # Metrics on needs prometheus_client, which the test environment has.
    for value in (True, False):
        assert getattr(_start(**{key: value}), field) is value


@pytest.mark.parametrize("value", ["10", "0", "false", 0, -1, True, False, 1.5, math.nan, math.inf, [10]])
@pytest.mark.parametrize("key", sorted(WHOLE_NUMBERS))
def test_a_whole_number_that_is_not_one_fails_at_start_up(key: str, value: Any) -> None:
    if key == "STARS_ORDER_WAITS_MAX" and value == 0 and not isinstance(value, bool):
        assert _start(**{key: value}).order_waits_max == 0  # allowed here: never wait
        return
    with pytest.raises(StarsConfigError, match=key):
        _start(**{key: value})


@pytest.mark.parametrize("key", sorted(WHOLE_NUMBERS))
def test_none_is_an_error_where_a_number_is_needed(key: str) -> None:
    field = key.removeprefix("STARS_").lower()
    if WHOLE_NUMBERS[key]:
        assert getattr(_start(**{key: None}), field) is None
    else:
        with pytest.raises(StarsConfigError, match=f"{key} must be .*, got None"):
            _start(**{key: None})


@pytest.mark.parametrize("value", ["3", "false", 0, -1, True, math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("key", sorted(SECONDS))
def test_seconds_must_be_a_positive_finite_number(key: str, value: Any) -> None:
    with pytest.raises(StarsConfigError, match=f"{key} must be a positive number of seconds"):
        _start(**{key: value})


@pytest.mark.parametrize("key", sorted(SECONDS))
def test_seconds_take_ints_and_floats_and_none_only_where_allowed(key: str) -> None:
    field = key.removeprefix("STARS_").lower()
    assert getattr(_start(**{key: 2}), field) == 2.0
    assert getattr(_start(**{key: 0.25}), field) == 0.25
    if SECONDS[key]:
        assert getattr(_start(**{key: None}), field) is None
    else:
        with pytest.raises(StarsConfigError, match=f"{key} must be a positive number of seconds"):
            _start(**{key: None})


@pytest.mark.parametrize("value", ["lots", "false", "0", False, True, 0, 20, ["20/minute"]])
@pytest.mark.parametrize("key", RATES)
def test_a_rate_that_is_not_one_fails_at_start_up(key: str, value: Any) -> None:
    """The invoice limit was taken as it came (``"lots"`` failed later, ``False`` passed)."""
    with pytest.raises(StarsConfigError, match=f"{key}=.* is not a rate such as '10/minute'"):
        _start(**{key: value})


@pytest.mark.parametrize("key", RATES)
def test_a_rate_or_none(key: str) -> None:
    field = key.removeprefix("STARS_").lower()
    assert getattr(_start(**{key: "5/second"}), field) == "5/second"
    assert getattr(_start(**{key: None}), field) is None


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ({"STARS_BOT_TOKEN": 123}, "STARS_BOT_TOKEN is not set"),
        ({"STARS_BOT_TOKEN": ""}, "STARS_BOT_TOKEN is not set"),
        ({"STARS_INIT_DATA_VALIDATION": "HMAC"}, 'STARS_INIT_DATA_VALIDATION must be "hmac" or "ed25519"'),
        ({"STARS_INIT_DATA_VALIDATION": None}, "STARS_INIT_DATA_VALIDATION"),
        ({"STARS_DUPLICATE_PAYMENT": None}, 'STARS_DUPLICATE_PAYMENT must be "refund" or "credit"'),
        ({"STARS_DUPLICATE_PAYMENT": ["refund"]}, "STARS_DUPLICATE_PAYMENT"),
        ({"STARS_INIT_DATA_PUBLIC_KEY": False}, "STARS_INIT_DATA_PUBLIC_KEY"),
        ({"STARS_API_URL": False}, "STARS_API_URL"),
        ({"STARS_API_URL": ""}, "STARS_API_URL"),
        ({"STARS_BUY_COMMAND": False}, "STARS_BUY_COMMAND"),
        ({"STARS_BUY_COMMAND": ""}, "STARS_BUY_COMMAND"),
        ({"STARS_BUY_COMMAND": "купить"}, "STARS_BUY_COMMAND"),  # no client marks it a command
        ({"STARS_BUY_COMMAND": "buy-stars"}, "STARS_BUY_COMMAND"),
        ({"STARS_BUY_COMMAND": "b" * 33}, "STARS_BUY_COMMAND"),
        ({"STARS_WEBHOOK_SECRET": ""}, "STARS_WEBHOOK_SECRET"),
        ({"STARS_WEBHOOK_SECRET": False}, "STARS_WEBHOOK_SECRET"),
        ({"STARS_WEBHOOK_SECRET": ["ok", 5]}, "STARS_WEBHOOK_SECRET"),
        ({"STARS_RATE_LIMIT_STORAGE": None}, "STARS_RATE_LIMIT_STORAGE must be a storage URI"),
        ({"STARS_RATE_LIMIT_STORAGE": "localhost:6379"}, "STARS_RATE_LIMIT_STORAGE must be a storage URI"),
        ({"STARS_RATE_LIMIT_STORAGE": "nosuch://x"}, "STARS_RATE_LIMIT_STORAGE"),
        ({"STARS_SPOOL_DIR": False}, "STARS_SPOOL_DIR must be a folder path"),
        ({"STARS_SPOOL_DIR": ""}, "STARS_SPOOL_DIR must be a folder path"),
    ],
)
def test_every_other_key_is_checked_too(config: dict[str, Any], words: str) -> None:
    with pytest.raises(StarsConfigError, match=words):
        _start(**config)


def test_valid_values_are_kept_as_they_mean(tmp_path: Path) -> None:
    settings = _start(
        STARS_SPOOL_DIR=tmp_path,
        STARS_API_URL="http://127.0.0.1:8081/",
        STARS_BUY_COMMAND="/shop",
        STARS_WEBHOOK_SECRET=["new-secret", "old_secret"],
        STARS_RATE_LIMIT_STORAGE="memory://",
    )
    assert settings.spool_dir == str(tmp_path)
    assert settings.api_url == "http://127.0.0.1:8081"
    assert settings.buy_command == "shop"
    assert settings.webhook_secrets == ("new-secret", "old_secret")


def test_every_key_is_in_the_table_with_a_parser_its_default_passes() -> None:
    """One table: each key once, with the parser ``read_settings`` reads it by."""
    assert set(CONFIG_KEYS) == set(KEYS)
    for name, key in KEYS.items():
        assert CONFIG_KEYS[name] == (key.default, key.meaning)
        assert key.meaning
        if name in READ_ELSEWHERE:
            assert key.parse is None
            continue
        assert key.parse is not None, name
        if name != "STARS_BOT_TOKEN":  # the one key with no default
            key.parse(name, key.default)
    # Every key read here is the typo-free name of a Settings field (two of them are
    # completed by rules between keys: the secrets and the initData key).
    settings = read_settings({name: key.default for name, key in KEYS.items()}, TEST_TOKEN)
    fields = set(vars(settings))
    parsed = {n.removeprefix("STARS_").lower() for n, k in KEYS.items() if k.parse is not None}
    assert parsed - {"webhook_secret"} <= fields
    assert fields - parsed == {"webhook_secrets"}


def test_a_pack_subscription_flag_must_be_true_or_false() -> None:
    """ "false" would have sold a monthly plan: Telegram charges it every 30 days."""
    packs = [{"id": "p", "stars": 10, "title": "T", "subscription": "false"}]
    with pytest.raises(StarsConfigError, match="subscription must be True or False"):
        _start(STARS_PACKS=packs)


def test_environment_strings_work_through_flasks_prefixed_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's way to take flags from the environment: Flask parses them as JSON."""
    monkeypatch.setenv("FLASK_STARS_ALLOW_GIFTS", "false")
    monkeypatch.setenv("FLASK_STARS_ORDER_TTL", "600")
    app = hostapp.bare_app()
    app.config.from_prefixed_env()
    app.register_blueprint(stars_bp)
    settings = app.extensions["stars"].settings
    assert (settings.allow_gifts, settings.order_ttl) == (False, 600)


@pytest.mark.parametrize("uri", ["admin:hunter2@redis.example:6379", "nosuch://admin:hunter2@redis.example"])
def test_a_storage_uri_mistake_never_repeats_its_password(uri: str) -> None:
    with pytest.raises(StarsConfigError, match="STARS_RATE_LIMIT_STORAGE") as caught:
        _start(STARS_RATE_LIMIT_STORAGE=uri)
    assert "hunter2" not in str(caught.value)
