"""initData validation by Telegram's rules (HMAC and the third-party Ed25519 signature)."""

from __future__ import annotations

import time
from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from telebot.util import validate_web_app_data

from flask_stars.errors import InvalidInitData
from flask_stars.initdata import sign_init_data, validate_init_data

TOKEN = "123456:ABC-test-token"
USER = {"id": 42, "first_name": "Ann", "username": "ann", "language_code": "ru"}


def test_signed_init_data_is_valid_and_gives_the_user():
    raw = sign_init_data(TOKEN, USER)
    assert validate_web_app_data(TOKEN, raw)  # telebot agrees it is Telegram-shaped
    data = validate_init_data(raw, TOKEN, max_age=60)
    assert data.user.id == 42 and data.user.language_code == "ru" and data.user.username == "ann"


def test_plus_sign_and_unicode_survive_encoding():
    user = {"id": 7, "first_name": "Ана+Bob & co", "last_name": "Ünï"}
    raw = sign_init_data(TOKEN, user)
    assert "%2B" in raw and "+" not in raw
    assert validate_init_data(raw, TOKEN, max_age=60).user.first_name == "Ана+Bob & co"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda raw: raw.replace("auth_date=", "auth_date=1"),
        lambda raw: raw + "&extra=1",
        lambda raw: raw + "&hash=" + "0" * 64,  # duplicated key
        lambda raw: raw.rsplit("hash=", 1)[0] + "hash=" + "0" * 63,  # wrong length
        lambda raw: raw.rsplit("hash=", 1)[0].rstrip("&"),  # no hash
        lambda raw: raw.replace("%22id%22%3A42", "%22id%22%3A43"),
        lambda raw: "%%%",
        lambda raw: "",
    ],
)
def test_tampering_is_refused(mutate):
    raw = sign_init_data(TOKEN, USER)
    with pytest.raises(InvalidInitData):
        validate_init_data(mutate(raw), TOKEN, max_age=3600)


def test_another_bots_token_is_refused():
    with pytest.raises(InvalidInitData, match="not signed for this bot"):
        validate_init_data(sign_init_data("999:OTHER", USER), TOKEN, max_age=60)


def test_freshness_both_ways():
    now = time.time()
    with pytest.raises(InvalidInitData, match="expired"):
        validate_init_data(sign_init_data(TOKEN, USER, auth_date=int(now) - 100), TOKEN, max_age=99, now=now)
    validate_init_data(sign_init_data(TOKEN, USER, auth_date=int(now) - 98), TOKEN, max_age=99, now=now)
    with pytest.raises(InvalidInitData, match="future"):
        validate_init_data(sign_init_data(TOKEN, USER, auth_date=int(now) + 120), TOKEN, max_age=99, now=now)
    validate_init_data(sign_init_data(TOKEN, USER, auth_date=int(now) + 30), TOKEN, max_age=99, now=now)


@pytest.mark.parametrize("user", ['{"id": "42"}', '{"id": -1}', "[1]", "not json", '{"name": "x"}'])
def test_bad_user_field_is_refused(user):
    import hashlib
    import hmac

    fields = {"auth_date": str(int(time.time())), "user": user}
    secret = hmac.new(b"WebAppData", TOKEN.encode(), hashlib.sha256).digest()
    check = "\n".join(f"{k}={v}" for k, v in sorted(fields.items()))
    fields["hash"] = hmac.new(secret, check.encode(), hashlib.sha256).hexdigest()
    raw = "&".join(f"{k}={quote(v, safe='')}" for k, v in fields.items())
    with pytest.raises(InvalidInitData, match="user"):
        validate_init_data(raw, TOKEN, max_age=60)


def test_ed25519_third_party_signature():
    key = Ed25519PrivateKey.generate()
    public_hex = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
    raw = sign_init_data(TOKEN, USER, ed25519_private_key=key)
    assert "signature=" in raw
    # The HMAC covers the signature field too, as in Telegram's own initData.
    assert validate_init_data(raw, TOKEN, max_age=60).user.id == 42
    data = validate_init_data(raw, TOKEN, max_age=60, mode="ed25519", public_key=public_hex)
    assert data.user.id == 42
    other = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
    with pytest.raises(InvalidInitData):
        validate_init_data(raw, TOKEN, max_age=60, mode="ed25519", public_key=other)
    with pytest.raises(InvalidInitData):  # signed for another bot id
        validate_init_data(raw, "999:OTHER", max_age=60, mode="ed25519", public_key=public_hex)
