"""Every ``STARS_*`` config key, its default and what it means: the one list of them.

``init_app`` sets each default with ``app.config.setdefault`` and then reads the values
into a frozen ``Settings``, checking them, so a mistake fails when the app starts and
not when the first customer pays.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import StarsConfigError

MiB = 1024 * 1024

#: key: (default, meaning). ``None`` means "not set".
CONFIG_KEYS: dict[str, tuple[Any, str]] = {
    "STARS_BOT_TOKEN": (None, "bot token (unless a TeleBot is passed as bot=)"),
    "STARS_PACKS": (None, "the catalogue: a list of dicts or Pack objects"),
    "STARS_CREDIT_CALLBACK": (None, 'callable or "module:attr" crediting a paid order'),
    "STARS_DEBIT_CALLBACK": (None, 'callable or "module:attr" run once when a payment is refunded'),
    "STARS_WEBHOOK_SECRET": (
        None,
        "X-Telegram-Bot-Api-Secret-Token value(s); derived from the token when None",
    ),
    "STARS_INIT_DATA_MAX_AGE": (86400, "seconds a Mini App initData stays valid"),
    "STARS_INIT_DATA_VALIDATION": ("hmac", '"hmac" (with the bot token) or "ed25519" (third-party)'),
    "STARS_INIT_DATA_PUBLIC_KEY": (
        None,
        "Ed25519 public key (hex) for ed25519 mode; Telegram's production key (its test key "
        "with STARS_TEST_ENVIRONMENT) when None",
    ),
    "STARS_ORDER_TTL": (3600, "seconds a pending order can still be paid"),
    "STARS_PRE_CHECKOUT_HOLD": (
        120,
        "seconds an approved pre-checkout holds its order against a second payer",
    ),
    "STARS_ALLOW_GIFTS": (False, "may someone other than the order's owner pay it"),
    "STARS_API_URL": (None, "Bot API server base URL (a local server or the sandbox); Telegram's when None"),
    "STARS_TEST_ENVIRONMENT": (
        False,
        "Telegram's test environment: Bot API calls go to /bot<token>/test/<method> (also at "
        "STARS_API_URL; process-wide, as telebot keeps it) and ed25519 initData is checked "
        "with Telegram's test key",
    ),
    "STARS_API_TIMEOUT": (
        None,
        "seconds for Bot API calls (process-wide, as telebot keeps it); telebot's own when None",
    ),
    "STARS_BUY_COMMAND": ("buy_stars", "bot command that offers the packs in the chat; None turns it off"),
    "STARS_DUPLICATE_PAYMENT": ("refund", 'second payment for a paid order: "refund" or "credit"'),
    "STARS_MAX_BODY": (1 * MiB, "largest request body the blueprint accepts (413 above)"),
    "STARS_INVOICE_RATE_LIMIT": (
        "20/minute",
        "invoice requests per user (a `limits` rate); None turns it off",
    ),
    "STARS_SUBSCRIPTION_RATE_LIMIT": (
        "10/minute",
        "subscription cancel/enable requests per user (a `limits` rate, its own count); None turns it off",
    ),
    "STARS_ORDER_WAITS_PER_USER": (
        2,
        "long-polls (GET /orders/<id>?wait=N) one user may hold at once in one process",
    ),
    "STARS_ORDER_WAITS_MAX": (
        2,
        "long-polls one process holds at once (keep it under the worker's threads); 0: never wait",
    ),
    "STARS_RATE_LIMIT_STORAGE": (
        "memory://",
        "where counts live: memory:// (one process) or redis://host:6379",
    ),
    "STARS_SPOOL_DIR": (
        None,
        "folder for money updates the database could not take; instance/stars-spool when None",
    ),
    "STARS_ANSWER_IN_RESPONSE": (
        False,
        "answer pre-checkout in the webhook's reply (no Bot API round trip, no confirmation)",
    ),
    "STARS_PRE_CHECKOUT_TIMEOUT": (
        3,
        "seconds a pre-checkout may wait for a locked order (PostgreSQL) before it is refused",
    ),
    "STARS_UPDATE_RETENTION_DAYS": (
        30,
        "days `flask stars prune` keeps handled non-money rows of stars_updates; None keeps all",
    ),
    "STARS_CREATE_TABLES": (True, "create flask_stars' tables on first use"),
    "STARS_SQLITE_WAL": (True, "switch a file SQLite database to WAL mode on first use"),
    "STARS_METRICS": (
        False,
        "Prometheus metrics (pip install 'flask-stars[metrics]'); the host exposes them "
        "(flask_stars.metrics.render_metrics or make_metrics_app)",
    ),
}

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
    pre_checkout_timeout: float
    answer_in_response: bool
    update_retention_days: int | None
    create_tables: bool
    sqlite_wal: bool
    #: Prometheus metrics on (``flask_stars.metrics``).
    metrics: bool = False


def _positive_int(config: Mapping[str, Any], key: str) -> int:
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise StarsConfigError(f"{key} must be a positive whole number, got {value!r}")
    return value


def _positive_number(config: Mapping[str, Any], key: str) -> float:
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise StarsConfigError(f"{key} must be a positive number of seconds, got {value!r}")
    return float(value)


def _optional_days(config: Mapping[str, Any], key: str) -> int | None:
    value = config[key]
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise StarsConfigError(f"{key} must be a positive whole number of days, or None, got {value!r}")
    return value


def _whole_number(config: Mapping[str, Any], key: str) -> int:
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise StarsConfigError(f"{key} must be a whole number (0 or more), got {value!r}")
    return value


def _rate(config: Mapping[str, Any], key: str) -> str | None:
    """A ``limits`` rate such as ``"10/minute"``, or None (no limit)."""
    from limits import parse

    value = config[key]
    if value is None or value == "":
        return None
    try:
        if not isinstance(value, str):
            raise ValueError(value)
        parse(value)
    except ValueError:
        raise StarsConfigError(f"{key}={value!r} is not a rate such as '10/minute'") from None
    return value


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


def _init_data_public_key(config: Mapping[str, Any], test_environment: bool) -> str:
    """The key ed25519 mode checks with: the configured one, or Telegram's for the environment.

    Telegram signs the test environment's initData with its test key, so its production key
    configured together with ``STARS_TEST_ENVIRONMENT`` could never accept a test user.
    """
    key = check_public_key(config["STARS_INIT_DATA_PUBLIC_KEY"])
    if test_environment and key == TELEGRAM_PUBLIC_KEYS["production"]:
        raise StarsConfigError(
            "STARS_TEST_ENVIRONMENT is on, but STARS_INIT_DATA_PUBLIC_KEY is Telegram's production "
            "key: the test environment's initData is signed with Telegram's test key. Leave "
            "STARS_INIT_DATA_PUBLIC_KEY unset (the test key is then used), or turn "
            "STARS_TEST_ENVIRONMENT off"
        )
    return key or TELEGRAM_PUBLIC_KEYS["test" if test_environment else "production"]


def _flag(config: Mapping[str, Any], key: str) -> bool:
    """A key that must be exactly True or False (a string such as "false" would be true)."""
    value = config[key]
    if not isinstance(value, bool):
        raise StarsConfigError(f"{key} must be True or False, got {value!r}")
    return value


def _secrets(value: Any, token: str) -> tuple[str, ...]:
    if value is None:
        return (default_webhook_secret(token),)
    items = (value,) if isinstance(value, str) else tuple(value)
    if not items or not all(isinstance(s, str) and s for s in items):
        raise StarsConfigError("STARS_WEBHOOK_SECRET must be a non-empty string or list of strings")
    allowed = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
    for secret in items:
        if len(secret) > 256 or not set(secret) <= allowed:
            raise StarsConfigError(
                "STARS_WEBHOOK_SECRET: Telegram accepts 1-256 characters of A-Z a-z 0-9 _ -"
            )
    return items


def read_settings(config: Mapping[str, Any], bot_token: str | None) -> Settings:
    """Check the ``STARS_*`` keys of ``config``; raise ``StarsConfigError`` on a mistake."""
    token = bot_token or config.get("STARS_BOT_TOKEN")
    if not token or not isinstance(token, str):
        raise StarsConfigError(
            "STARS_BOT_TOKEN is not set: give the bot token from @BotFather "
            "(or pass bot=TeleBot(...) to FlaskStars)"
        )
    validation = config["STARS_INIT_DATA_VALIDATION"]
    if validation not in ("hmac", "ed25519"):
        raise StarsConfigError('STARS_INIT_DATA_VALIDATION must be "hmac" or "ed25519"')
    duplicate = config["STARS_DUPLICATE_PAYMENT"]
    if duplicate not in ("refund", "credit"):
        raise StarsConfigError('STARS_DUPLICATE_PAYMENT must be "refund" or "credit"')
    command = config["STARS_BUY_COMMAND"]
    if command is not None and (not isinstance(command, str) or not command.strip("/").isidentifier()):
        raise StarsConfigError("STARS_BUY_COMMAND must be a command name such as 'buy_stars', or None")
    timeout = config["STARS_API_TIMEOUT"]
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0
    ):
        raise StarsConfigError("STARS_API_TIMEOUT must be a positive number of seconds, or None")
    api_url = config["STARS_API_URL"]
    if api_url is not None and not (isinstance(api_url, str) and api_url.startswith(("http://", "https://"))):
        raise StarsConfigError("STARS_API_URL must be an http(s) base URL such as http://127.0.0.1:8081")
    test_environment = _flag(config, "STARS_TEST_ENVIRONMENT")
    return Settings(
        bot_token=token,
        webhook_secrets=_secrets(config["STARS_WEBHOOK_SECRET"], token),
        init_data_max_age=_positive_int(config, "STARS_INIT_DATA_MAX_AGE"),
        init_data_validation=validation,
        init_data_public_key=_init_data_public_key(config, test_environment),
        order_ttl=_positive_int(config, "STARS_ORDER_TTL"),
        pre_checkout_hold=_positive_int(config, "STARS_PRE_CHECKOUT_HOLD"),
        allow_gifts=bool(config["STARS_ALLOW_GIFTS"]),
        api_url=api_url.rstrip("/") if api_url else None,
        test_environment=test_environment,
        api_timeout=timeout,
        buy_command=command.strip("/") if command else None,
        duplicate_payment=duplicate,
        max_body=_positive_int(config, "STARS_MAX_BODY"),
        invoice_rate_limit=config["STARS_INVOICE_RATE_LIMIT"] or None,
        subscription_rate_limit=_rate(config, "STARS_SUBSCRIPTION_RATE_LIMIT"),
        order_waits_per_user=_positive_int(config, "STARS_ORDER_WAITS_PER_USER"),
        order_waits_max=_whole_number(config, "STARS_ORDER_WAITS_MAX"),
        rate_limit_storage=config["STARS_RATE_LIMIT_STORAGE"],
        spool_dir=config["STARS_SPOOL_DIR"],
        pre_checkout_timeout=_positive_number(config, "STARS_PRE_CHECKOUT_TIMEOUT"),
        answer_in_response=bool(config["STARS_ANSWER_IN_RESPONSE"]),
        update_retention_days=_optional_days(config, "STARS_UPDATE_RETENTION_DAYS"),
        create_tables=bool(config["STARS_CREATE_TABLES"]),
        sqlite_wal=bool(config["STARS_SQLITE_WAL"]),
        metrics=_flag(config, "STARS_METRICS"),
    )


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
