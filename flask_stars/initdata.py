"""Telegram Mini App ``initData``: checking it (HMAC and Ed25519) and, for tests, signing it.

The rules are Telegram's (core.telegram.org/bots/webapps, "Validating data received via
the Mini App"):

* HMAC: ``secret = HMAC_SHA256(key="WebAppData", msg=bot_token)``; the data-check-string
  is every received field but ``hash`` (``signature`` included), sorted, as
  ``key=value`` lines; ``hash`` is the hex HMAC of it under ``secret``.
* Ed25519 (third-party validation, Bot API 8.0): ``signature`` is the unpadded
  base64url Ed25519 signature of ``"<bot_id>:WebAppData\\n"`` + every field but
  ``hash`` and ``signature``, sorted, as ``key=value`` lines.

Unlike ``telebot.util.validate_web_app_data`` this compares in constant time, rejects
duplicated keys and checks ``auth_date`` both ways.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlencode

from .config import TELEGRAM_PUBLIC_KEYS
from .errors import InvalidInitData

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = [
    "TELEGRAM_PUBLIC_KEYS",
    "InitData",
    "WebAppUser",
    "bot_id_from_token",
    "ed25519_public_key_hex",
    "new_ed25519_key",
    "parse_fields",
    "sign_init_data",
    "validate_init_data",
]

MAX_INIT_DATA_LENGTH = 8192  # real initData is well under 2 KiB
FUTURE_SKEW = 60  # seconds an auth_date may be ahead of our clock


@dataclass(frozen=True)
class WebAppUser:
    """The user a valid initData speaks for. ``id`` is the only identity flask_stars uses."""

    id: int
    first_name: str = ""
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class InitData:
    """A checked initData: its user, ``auth_date`` and every field as received."""

    user: WebAppUser
    auth_date: int
    fields: dict[str, str]


def _data_check_string(fields: Mapping[str, str], exclude: tuple[str, ...]) -> str:
    return "\n".join(f"{k}={v}" for k, v in sorted(fields.items()) if k not in exclude)


def _hmac_hash(bot_token: str, fields: Mapping[str, str]) -> str:
    secret = hmac.new(b"WebAppData", bot_token.encode(), hashlib.sha256).digest()
    return hmac.new(secret, _data_check_string(fields, ("hash",)).encode(), hashlib.sha256).hexdigest()


def _ed25519_message(bot_id: int, fields: Mapping[str, str]) -> bytes:
    body = _data_check_string(fields, ("hash", "signature"))
    return f"{bot_id}:WebAppData\n{body}".encode()


def bot_id_from_token(bot_token: str) -> int:
    """The numeric bot id: the part of the token before the colon."""
    head = bot_token.split(":", 1)[0]
    if not head.isdigit():
        raise ValueError("a bot token starts with the numeric bot id and a colon")
    return int(head)


def parse_fields(raw: str) -> dict[str, str]:
    """Split an initData query string into fields; duplicated keys are refused."""
    if not raw or len(raw) > MAX_INIT_DATA_LENGTH:
        raise InvalidInitData("initData is empty or too long.")
    try:
        pairs = parse_qsl(raw, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise InvalidInitData("initData is not a query string.") from None
    fields: dict[str, str] = {}
    for key, value in pairs:
        if key in fields:
            raise InvalidInitData(f"initData repeats the field {key!r}.")
        fields[key] = value
    return fields


def validate_init_data(
    raw: str,
    bot_token: str,
    *,
    max_age: int,
    mode: str = "hmac",
    public_key: str | bytes | None = None,
    now: float | None = None,
) -> InitData:
    """Check a Mini App's initData and return who it speaks for.

    Raises ``InvalidInitData`` (HTTP 401) when it is malformed, not signed for this bot,
    older than ``max_age`` seconds or more than a minute in the future.
    ``mode="ed25519"`` checks Telegram's third-party ``signature`` against
    ``public_key`` (Telegram's production key when None; ``TELEGRAM_PUBLIC_KEYS["test"]``
    for its test environment) instead of the HMAC ``hash``.
    """
    fields = parse_fields(raw)
    if mode == "hmac":
        received = fields.get("hash", "")
        if len(received) != 64:
            raise InvalidInitData("initData has no valid hash.")
        expected = _hmac_hash(bot_token, fields)
        if not hmac.compare_digest(expected, received.lower()):
            raise InvalidInitData("initData is not signed for this bot.")
    elif mode == "ed25519":
        _check_ed25519(fields, bot_token, public_key)
    else:
        raise ValueError(f"unknown initData validation mode {mode!r}")

    try:
        auth_date = int(fields["auth_date"])
    except (KeyError, ValueError):
        raise InvalidInitData("initData has no auth_date.") from None
    current = time.time() if now is None else now
    if auth_date > current + FUTURE_SKEW:
        raise InvalidInitData("initData is dated in the future.")
    if current - auth_date > max_age:
        raise InvalidInitData("initData has expired; reopen the Mini App.", error="init_data_expired")
    return InitData(user=_parse_user(fields.get("user")), auth_date=auth_date, fields=fields)


def _check_ed25519(fields: Mapping[str, str], bot_token: str, public_key: str | bytes | None) -> None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    signature = fields.get("signature", "")
    try:
        sig = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    except (ValueError, TypeError):
        raise InvalidInitData("initData has a malformed signature.") from None
    if len(sig) != 64:
        raise InvalidInitData("initData has no valid signature.")
    key = public_key if public_key is not None else TELEGRAM_PUBLIC_KEYS["production"]
    key_bytes = bytes.fromhex(key) if isinstance(key, str) else key
    try:
        Ed25519PublicKey.from_public_bytes(key_bytes).verify(
            sig, _ed25519_message(bot_id_from_token(bot_token), fields)
        )
    except InvalidSignature:
        raise InvalidInitData("initData is not signed by Telegram for this bot.") from None


def _parse_user(raw_user: str | None) -> WebAppUser:
    if not raw_user:
        raise InvalidInitData("initData carries no user.")
    try:
        data = json.loads(raw_user)
    except (ValueError, RecursionError):
        raise InvalidInitData("initData's user is not JSON.") from None
    if not isinstance(data, dict):
        raise InvalidInitData("initData's user is not an object.")
    user_id = data.get("id")
    # Telegram's ids fit a signed 64-bit integer; a larger one cannot be stored anywhere.
    if isinstance(user_id, bool) or not isinstance(user_id, int) or not 0 < user_id < 2**63:
        raise InvalidInitData("initData's user has no valid id.")

    def text(key: str) -> str | None:
        value = data.get(key)
        return value if isinstance(value, str) else None

    return WebAppUser(
        id=user_id,
        first_name=text("first_name") or "",
        last_name=text("last_name"),
        username=text("username"),
        language_code=text("language_code"),
        raw=data,
    )


def new_ed25519_key() -> Ed25519PrivateKey:
    """A fresh Ed25519 key pair that plays Telegram's for third-party initData (tests, the sandbox).

    Give its public half (``ed25519_public_key_hex``) as ``STARS_INIT_DATA_PUBLIC_KEY`` and
    the key itself to ``sign_init_data(..., ed25519_private_key=key)``.
    """
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.generate()


def ed25519_public_key_hex(private_key: Ed25519PrivateKey) -> str:
    """The public half of ``private_key`` as 64 hex characters, as ``STARS_INIT_DATA_PUBLIC_KEY`` takes it."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def sign_init_data(
    bot_token: str,
    user: Mapping[str, Any],
    *,
    auth_date: int | None = None,
    extra: Mapping[str, str] | None = None,
    ed25519_private_key: Ed25519PrivateKey | None = None,
) -> str:
    """Build initData for ``user`` the way Telegram does (for tests and the sandbox).

    With ``ed25519_private_key`` (a ``cryptography`` Ed25519 private key, standing in for
    Telegram's) it also adds the third-party ``signature`` (Bot API 8.0: over
    ``"<bot_id>:WebAppData\\n"`` and the sorted fields but ``hash`` and ``signature``),
    which the HMAC ``hash`` then covers, as in Telegram's own initData.
    Values are percent-encoded once, ``+`` as ``%2B``.
    """
    fields: dict[str, str] = {
        "auth_date": str(int(time.time()) if auth_date is None else auth_date),
        "query_id": "AAF" + hashlib.sha256(json.dumps(dict(user)).encode()).hexdigest()[:20],
        "user": json.dumps(dict(user), separators=(",", ":"), ensure_ascii=False),
    }
    fields.update(extra or {})
    if ed25519_private_key is not None:
        sig = ed25519_private_key.sign(_ed25519_message(bot_id_from_token(bot_token), fields))
        fields["signature"] = base64.urlsafe_b64encode(sig).decode().rstrip("=")
    fields["hash"] = _hmac_hash(bot_token, fields)
    return urlencode(fields, quote_via=quote)
