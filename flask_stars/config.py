"""Every ``STARS_*`` config key, its default, its parser and what it means: the one table
of them (``KEYS``).

``init_app`` sets each default with ``app.config.setdefault`` and then reads the values
into a frozen ``Settings``, each through its key's parser, so a mistake fails when the
app starts and not when the first customer pays. Nothing is read by truthiness: a flag
is True or False, a number is a number, and "false" is an error that names its key.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import StarsConfigError

MiB = 1024 * 1024

#: Reads one key: ``parse(key, value)`` checks the configured value and returns what
#: ``Settings`` keeps, or raises ``StarsConfigError`` naming the key.
Parser = Callable[[str, Any], Any]


@dataclass(frozen=True)
class ConfigKey:
    """One ``STARS_*`` key: its default, how it is read, and what it means.

    ``parse`` is None for the keys another part reads (the catalogue in ``packs``, the
    callbacks with ``resolve_callable``); every other value goes through its parser, so
    nothing is read by truthiness ("false" is not True).
    """

    default: Any
    parse: Parser | None
    meaning: str


# --- parsers: each checks one key's value (what a value means with others: read_settings) ---


def _flag(key: str, value: Any) -> bool:
    """A key that must be exactly True or False (a string such as "false" would be true)."""
    if not isinstance(value, bool):
        raise StarsConfigError(f"{key} must be True or False, got {value!r}")
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def _positive_int(key: str, value: Any) -> int:
    if not _is_int(value) or value <= 0:
        raise StarsConfigError(f"{key} must be a positive whole number, got {value!r}")
    return int(value)


def _whole_number(key: str, value: Any) -> int:
    if not _is_int(value) or value < 0:
        raise StarsConfigError(f"{key} must be a whole number (0 or more), got {value!r}")
    return int(value)


def _positive_seconds(key: str, value: Any) -> float:
    if not _is_number(value) or value <= 0:
        raise StarsConfigError(f"{key} must be a positive number of seconds, got {value!r}")
    return float(value)


def _optional_seconds(key: str, value: Any) -> float | None:
    if value is None:
        return None
    if not _is_number(value) or value <= 0:
        raise StarsConfigError(f"{key} must be a positive number of seconds, or None, got {value!r}")
    return float(value)


def _optional_days(key: str, value: Any) -> int | None:
    if value is None:
        return None
    if not _is_int(value) or value <= 0:
        raise StarsConfigError(f"{key} must be a positive whole number of days, or None, got {value!r}")
    return int(value)


def _rate(key: str, value: Any) -> str | None:
    """A ``limits`` rate such as ``"10/minute"``, or None (no limit)."""
    from limits import parse

    if value is None or value == "":
        return None
    try:
        if not isinstance(value, str):
            raise ValueError(value)
        parse(value)
    except ValueError:
        raise StarsConfigError(f"{key}={value!r} is not a rate such as '10/minute'") from None
    return value


def _one_of(*choices: str) -> Parser:
    def parse(key: str, value: Any) -> str:
        if not isinstance(value, str) or value not in choices:
            raise StarsConfigError(f"{key} must be " + " or ".join(f'"{c}"' for c in choices))
        return value

    return parse


def _token(key: str, value: Any) -> str:
    if not value or not isinstance(value, str):
        raise StarsConfigError(
            f"{key} is not set: give the bot token from @BotFather (or pass bot=TeleBot(...) to FlaskStars)"
        )
    return value


def _secrets(key: str, value: Any) -> tuple[str, ...] | None:
    """The webhook secrets, or None: derived from the token (``read_settings``)."""
    if value is None:
        return None
    items = (value,) if isinstance(value, str) else tuple(value) if isinstance(value, (list, tuple)) else ()
    if not items or not all(isinstance(s, str) and s for s in items):
        raise StarsConfigError(f"{key} must be a non-empty string or list of strings")
    allowed = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
    for secret in items:
        if len(secret) > 256 or not set(secret) <= allowed:
            raise StarsConfigError(f"{key}: Telegram accepts 1-256 characters of A-Z a-z 0-9 _ -")
    return items


def _public_key(key: str, value: Any) -> str | None:
    return check_public_key(value)


def _api_url(key: str, value: Any) -> str | None:
    if value is None:
        return None
    if not (isinstance(value, str) and value.startswith(("http://", "https://"))):
        raise StarsConfigError(f"{key} must be an http(s) base URL such as http://127.0.0.1:8081")
    return value.rstrip("/")


def _command(key: str, value: Any) -> str | None:
    """A bot command: what Telegram's clients mark as one (1-32 of A-Z a-z 0-9 _), or None."""
    if value is None:
        return None
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_]{1,32}", value.strip("/")):
        raise StarsConfigError(f"{key} must be a command name such as 'buy_stars', or None")
    return value.strip("/")


def _storage_uri(key: str, value: Any) -> str:
    if not isinstance(value, str) or "://" not in value:
        # The value is not repeated: it may hold a password.
        raise StarsConfigError(f"{key} must be a storage URI such as 'memory://' or 'redis://host:6379'")
    return value


def _folder(key: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
        raise StarsConfigError(f"{key} must be a folder path, or None, got {value!r}")
    return str(os.fspath(value))


#: Every ``STARS_*`` key, once: ``ConfigKey(default, parser, meaning)``. ``None`` as a
#: default means "not set". ``init_app`` sets the defaults and ``read_settings`` walks
#: this table; the docs' configuration reference is generated from it.
KEYS: dict[str, ConfigKey] = {
    "STARS_BOT_TOKEN": ConfigKey(None, _token, "bot token (unless a TeleBot is passed as bot=)"),
    "STARS_PACKS": ConfigKey(
        None,
        None,
        "the catalogue: a list of dicts or Pack objects; a title or description may be given "
        "per language ({'en': ..., 'ru': ...}), read in the buyer's Telegram language",
    ),
    "STARS_CREDIT_CALLBACK": ConfigKey(None, None, 'callable or "module:attr" crediting a paid order'),
    "STARS_DEBIT_CALLBACK": ConfigKey(
        None, None, 'callable or "module:attr" run once when a payment is refunded'
    ),
    "STARS_WEBHOOK_SECRET": ConfigKey(
        None,
        _secrets,
        "X-Telegram-Bot-Api-Secret-Token value(s); derived from the token when None",
    ),
    "STARS_INIT_DATA_MAX_AGE": ConfigKey(86400, _positive_int, "seconds a Mini App initData stays valid"),
    "STARS_INIT_DATA_VALIDATION": ConfigKey(
        "hmac", _one_of("hmac", "ed25519"), '"hmac" (with the bot token) or "ed25519" (third-party)'
    ),
    "STARS_INIT_DATA_PUBLIC_KEY": ConfigKey(
        None,
        _public_key,
        "Ed25519 public key (hex) for ed25519 mode; Telegram's production key (its test key "
        "with STARS_TEST_ENVIRONMENT) when None",
    ),
    "STARS_ORDER_TTL": ConfigKey(3600, _positive_int, "seconds a pending order can still be paid"),
    "STARS_PRE_CHECKOUT_HOLD": ConfigKey(
        120,
        _positive_int,
        "seconds an approved pre-checkout holds its order against a second payer",
    ),
    "STARS_ALLOW_GIFTS": ConfigKey(False, _flag, "may someone other than the order's owner pay it"),
    "STARS_API_URL": ConfigKey(
        None, _api_url, "Bot API server base URL (a local server or the sandbox); Telegram's when None"
    ),
    "STARS_TEST_ENVIRONMENT": ConfigKey(
        False,
        _flag,
        "Telegram's test environment: Bot API calls go to /bot<token>/test/<method> (also at "
        "STARS_API_URL; process-wide, as telebot keeps it) and ed25519 initData is checked "
        "with Telegram's test key",
    ),
    "STARS_API_TIMEOUT": ConfigKey(
        None,
        _optional_seconds,
        "seconds for Bot API calls (process-wide, as telebot keeps it); telebot's own when None",
    ),
    "STARS_BUY_COMMAND": ConfigKey(
        "buy_stars", _command, "bot command that offers the packs in the chat; None turns it off"
    ),
    "STARS_DUPLICATE_PAYMENT": ConfigKey(
        "refund", _one_of("refund", "credit"), 'second payment for a paid order: "refund" or "credit"'
    ),
    "STARS_MAX_BODY": ConfigKey(
        1 * MiB, _positive_int, "largest request body the blueprint accepts (413 above)"
    ),
    "STARS_INVOICE_RATE_LIMIT": ConfigKey(
        "20/minute",
        _rate,
        "invoice requests per user (a `limits` rate); None turns it off",
    ),
    "STARS_SUBSCRIPTION_RATE_LIMIT": ConfigKey(
        "10/minute",
        _rate,
        "subscription cancel/enable requests per user (a `limits` rate, its own count); None turns it off",
    ),
    "STARS_ORDER_WAITS_PER_USER": ConfigKey(
        2,
        _positive_int,
        "long-polls (GET /orders/<id>?wait=N) one user may hold at once in one process",
    ),
    "STARS_ORDER_WAITS_MAX": ConfigKey(
        2,
        _whole_number,
        "long-polls one process holds at once (keep it under the worker's threads); 0: never wait",
    ),
    "STARS_RATE_LIMIT_STORAGE": ConfigKey(
        "memory://",
        _storage_uri,
        "where counts live: memory:// (one process) or redis://host:6379; unreachable: 503",
    ),
    "STARS_SPOOL_DIR": ConfigKey(
        None,
        _folder,
        "folder for money updates the database could not take; instance/stars-spool when None",
    ),
    "STARS_TRANSLATIONS_DIR": ConfigKey(
        None,
        _folder,
        "your own catalogues of the buyer's texts (<lang>/LC_MESSAGES/flask_stars.mo), read first",
    ),
    "STARS_ANSWER_IN_RESPONSE": ConfigKey(
        False,
        _flag,
        "answer pre-checkout in the webhook's reply (no Bot API round trip, no confirmation)",
    ),
    "STARS_PRE_CHECKOUT_TIMEOUT": ConfigKey(
        3,
        _positive_seconds,
        "seconds a pre-checkout may wait for a locked order (PostgreSQL) before it is refused",
    ),
    "STARS_UPDATE_RETENTION_DAYS": ConfigKey(
        30,
        _optional_days,
        "days `flask stars prune` keeps handled non-money rows of stars_updates; None keeps all",
    ),
    "STARS_CREATE_TABLES": ConfigKey(True, _flag, "create flask_stars' tables on first use"),
    "STARS_SQLITE_WAL": ConfigKey(True, _flag, "switch a file SQLite database to WAL mode on first use"),
    "STARS_METRICS": ConfigKey(
        False,
        _flag,
        "Prometheus metrics (pip install 'flask-stars[metrics]'); the host exposes them "
        "(flask_stars.metrics.render_metrics or make_metrics_app)",
    ),
}

#: key: (default, meaning), the same table without its parsers.
CONFIG_KEYS: dict[str, tuple[Any, str]] = {name: (key.default, key.meaning) for name, key in KEYS.items()}

DEFAULT_API_URL = "https://api.telegram.org"
#: Telegram's Ed25519 public keys for third-party initData validation (hex), one per
#: environment (core.telegram.org/bots/webapps, "Validating data for Third-Party Use").
TELEGRAM_PUBLIC_KEYS = {
    "production": "e7bf03a2fa4602af4580703d88dda5bb59f32ed8b02a56c187fe7d34caed242d",
    "test": "40055058a4ee38156a06562e52eece92a771bcd8346a8c4615cb7376eddf72ec",
}
WEBHOOK_SECRET_MESSAGE = b"flask_stars webhook"


def default_webhook_secret(bot_token: str) -> str:
    """The webhook secret every worker derives from the token, with no set-up."""
    return hmac.new(bot_token.encode(), WEBHOOK_SECRET_MESSAGE, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Settings:
    """The checked ``STARS_*`` values of one app."""

    bot_token: str
    webhook_secrets: tuple[str, ...]
    init_data_max_age: int
    init_data_validation: str
    #: The Ed25519 key ed25519 mode checks ``signature`` with (hex): the configured one, or
    #: Telegram's for the environment (``test_environment``), or a sandbox run's own.
    init_data_public_key: str
    order_ttl: int
    pre_checkout_hold: int
    allow_gifts: bool
    api_url: str | None
    #: Telegram's test environment: every Bot API call goes to ``/bot<token>/test/<method>``.
    test_environment: bool
    api_timeout: float | None
    buy_command: str | None
    duplicate_payment: str
    max_body: int
    invoice_rate_limit: str | None
    subscription_rate_limit: str | None
    order_waits_per_user: int
    order_waits_max: int
    rate_limit_storage: str
    spool_dir: str | None
    translations_dir: str | None
    pre_checkout_timeout: float
    answer_in_response: bool
    update_retention_days: int | None
    create_tables: bool
    sqlite_wal: bool
    #: Prometheus metrics on (``flask_stars.metrics``).
    metrics: bool = False


def check_public_key(value: Any) -> str | None:
    """``STARS_INIT_DATA_PUBLIC_KEY``: None, or an Ed25519 public key as 64 hex characters.

    Returns the key in lower case; raises ``StarsConfigError`` for anything else.
    """
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if value is None:
        return None
    message = (
        "STARS_INIT_DATA_PUBLIC_KEY must be an Ed25519 public key as 64 hex characters "
        f"(such as Telegram's), got {value!r}"
    )
    if not isinstance(value, str) or len(value) != 64:
        raise StarsConfigError(message)
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(value))
    except ValueError:
        raise StarsConfigError(message) from None
    return value.lower()


def _init_data_public_key(key: str | None, test_environment: bool) -> str:
    """The key ed25519 mode checks with: the configured one, or Telegram's for the environment.

    Telegram signs the test environment's initData with its test key, so its production key
    configured together with ``STARS_TEST_ENVIRONMENT`` could never accept a test user.
    """
    if test_environment and key == TELEGRAM_PUBLIC_KEYS["production"]:
        raise StarsConfigError(
            "STARS_TEST_ENVIRONMENT is on, but STARS_INIT_DATA_PUBLIC_KEY is Telegram's production "
            "key: the test environment's initData is signed with Telegram's test key. Leave "
            "STARS_INIT_DATA_PUBLIC_KEY unset (the test key is then used), or turn "
            "STARS_TEST_ENVIRONMENT off"
        )
    return key or TELEGRAM_PUBLIC_KEYS["test" if test_environment else "production"]


def _field(key: str) -> str:
    """The ``Settings`` field of a key: ``STARS_ORDER_TTL`` -> ``order_ttl``."""
    return key.removeprefix("STARS_").lower()


def read_settings(config: Mapping[str, Any], bot_token: str | None) -> Settings:
    """Check the ``STARS_*`` keys of ``config``; raise ``StarsConfigError`` on a mistake.

    Each key is read by its parser in ``KEYS`` (in the table's order, so the token is
    checked first); then the rules between keys: the webhook secret and the initData key
    have defaults that depend on the token and on the environment.
    """
    if bot_token:
        config = {**config, "STARS_BOT_TOKEN": bot_token}  # bot=TeleBot(...) wins over the config
    values: dict[str, Any] = {}
    for name, key in KEYS.items():
        if key.parse is not None:
            values[_field(name)] = key.parse(name, config.get(name, key.default))
    token: str = values["bot_token"]
    values["webhook_secrets"] = values.pop("webhook_secret") or (default_webhook_secret(token),)
    values["init_data_public_key"] = _init_data_public_key(
        values["init_data_public_key"], values["test_environment"]
    )
    return Settings(**values)


def resolve_callable(value: Any, key: str) -> Callable[..., Any] | None:
    """A callable from config: the callable itself or a ``"module:attr"`` string."""
    if value is None:
        return None
    if callable(value):
        return value  # type: ignore[no-any-return]
    if not isinstance(value, str) or ":" not in value:
        raise StarsConfigError(f'{key} must be a callable or a "module:attr" string, got {value!r}')
    from importlib import import_module

    module_name, _, attr = value.partition(":")
    try:
        target: Any = import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise StarsConfigError(f"{key}={value!r} cannot be imported: {exc}") from exc
    if not callable(target):
        raise StarsConfigError(f"{key}={value!r} is not callable")
    return target  # type: ignore[no-any-return]
