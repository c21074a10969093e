"""initData validation by Telegram's rules (HMAC and the third-party Ed25519 signature)."""

from __future__ import annotations

import time
from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from telebot.util import validate_web_app_data

from flask_stars.errors import InvalidInitData
from flask_stars.initdata import TELEGRAM_PUBLIC_KEYS, sign_init_data, validate_init_data

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


# --- the third-party signature the sandbox makes (Bot API 8.0), and ed25519 mode through it ------


def test_the_signature_is_telegrams_third_party_scheme():
    """Rebuilt here from Telegram's description, not from initdata's own helper."""
    import base64
    from urllib.parse import parse_qsl

    from flask_stars.initdata import ed25519_public_key_hex, new_ed25519_key

    key = new_ed25519_key()
    raw = sign_init_data(TOKEN, USER, ed25519_private_key=key, extra={"chat_type": "sender"})
    fields = dict(parse_qsl(raw, strict_parsing=True))
    signature = fields["signature"]
    assert "=" not in signature and len(signature) == 86  # unpadded base64url of 64 bytes
    check = "\n".join(f"{k}={v}" for k, v in sorted(fields.items()) if k not in ("hash", "signature"))
    key.public_key().verify(
        base64.urlsafe_b64decode(signature + "=="), f"123456:WebAppData\n{check}".encode()
    )
    public_hex = ed25519_public_key_hex(key)
    assert len(public_hex) == 64 and bytes.fromhex(public_hex) == key.public_key().public_bytes_raw()
    # Third-party validation needs no hash: only the signature and the bot id count.
    without_hash = raw.rsplit("&hash=", 1)[0]
    assert validate_init_data(without_hash, TOKEN, max_age=60, mode="ed25519", public_key=public_hex)
    with pytest.raises(InvalidInitData, match="no valid hash"):
        validate_init_data(without_hash, TOKEN, max_age=60)


@pytest.mark.parametrize(
    "forge",
    [
        "another_key",  # a well-formed signature by someone else's key
        "no_signature",
        "bad_base64",
        "short",
        "changed_user",  # the user swapped after signing (hash recomputed: HMAC alone is fooled)
    ],
)
def test_a_forged_signature_is_refused_in_ed25519_mode(forge):
    from urllib.parse import parse_qsl, quote, urlencode

    from flask_stars.initdata import _hmac_hash, ed25519_public_key_hex, new_ed25519_key

    key = new_ed25519_key()
    public_hex = ed25519_public_key_hex(key)
    fields = dict(parse_qsl(sign_init_data(TOKEN, USER, ed25519_private_key=key), strict_parsing=True))
    if forge == "another_key":
        other = dict(parse_qsl(sign_init_data(TOKEN, USER, ed25519_private_key=new_ed25519_key())))
        fields["signature"] = other["signature"]
    elif forge == "no_signature":
        del fields["signature"]
    elif forge == "bad_base64":
        fields["signature"] = "!" * 86
    elif forge == "short":
        fields["signature"] = fields["signature"][:43]
    else:
        fields["user"] = fields["user"].replace('"id":42', '"id":43')
    del fields["hash"]
    fields["hash"] = _hmac_hash(TOKEN, fields)  # whoever holds the token could forge the hash
    raw = urlencode(fields, quote_via=quote)
    with pytest.raises(InvalidInitData):
        validate_init_data(raw, TOKEN, max_age=60, mode="ed25519", public_key=public_hex)
    with pytest.raises(InvalidInitData):  # and Telegram's test key is not the sandbox's
        validate_init_data(raw, TOKEN, max_age=60, mode="ed25519", public_key=TELEGRAM_PUBLIC_KEYS["test"])


def _buy_on_the_sandbox_page(http, base, init_data, user_id, pack_id="stars_pack_1"):
    """Invoice with the page's initData, Pay on the page, and the server says paid."""
    auth = {"Authorization": "tma " + init_data}
    order = http.post(base + "/stars/invoice", json={"pack_id": pack_id}, headers=auth, timeout=5)
    assert order.status_code == 201, order.text
    slug = order.json()["invoice_url"].rsplit("$", 1)[1]
    paid = http.post(base + "/stars/sandbox/pay", json={"slug": slug, "user_id": user_id}, timeout=15).json()
    assert paid["ok"] and paid["webhook_status"] == 200
    status = http.get(base + f"/stars/orders/{order.json()['order_id']}", headers=auth, timeout=5).json()
    assert status["status"] == "paid"


def test_a_host_app_in_ed25519_mode_buys_with_the_sandbox_pages_init_data(make_shop, sandbox):
    from flask_stars.initdata import ed25519_public_key_hex, new_ed25519_key
    from flask_stars.sandbox import attach_sandbox
    from flask_stars.testing import TEST_TOKEN, init_data_header

    key = new_ed25519_key()
    public_hex = ed25519_public_key_hex(key)
    shop = make_shop(STARS_INIT_DATA_VALIDATION="ed25519", STARS_INIT_DATA_PUBLIC_KEY=public_hex)
    attach_sandbox(shop.app, sandbox, shop.base, init_data_key=key)
    init = shop.http.get(shop.url("/sandbox/init-data"), params={"user": 42}).json()
    assert init["public_key"] == public_hex and "signature=" in init["init_data"]
    _buy_on_the_sandbox_page(shop.http, shop.base, init["init_data"], 42)
    assert shop.balance(42) == 1_000_000

    def invoice(header):
        return shop.http.post(shop.url("/invoice"), json={"pack_id": "stars_pack_2"}, headers=header)

    # Signed by another key (the HMAC hash with the right token is there too): refused.
    forged = invoice(init_data_header(TEST_TOKEN, 42, ed25519_private_key=new_ed25519_key()))
    assert forged.status_code == 401 and forged.json()["error"] == "invalid_init_data"
    # The page's initData with its signature swapped for another key's: refused.
    other = sign_init_data(TEST_TOKEN, {"id": 42}, ed25519_private_key=new_ed25519_key())
    swapped = init["init_data"].split("&signature=")[0] + "&signature=" + other.split("signature=")[1]
    assert invoice({"Authorization": "tma " + swapped}).status_code == 401
    assert shop.balance(42) == 1_000_000


def test_attaching_a_sandbox_made_for_another_bot_fails(make_shop):
    """The page signs initData with the app's token: a sandbox for any token (or another
    bot's) must not sign for a token that may be a real bot's."""
    from flask_stars.sandbox import Sandbox, attach_sandbox

    with Sandbox() as any_bot, Sandbox(token="42:another-bot") as other_bot:
        for sandbox in (any_bot, other_bot):
            shop = make_shop(STARS_API_URL=sandbox.url)
            with pytest.raises(RuntimeError, match="own bot"):
                attach_sandbox(shop.app, sandbox, shop.base)


def test_attaching_the_sandbox_to_an_ed25519_app_that_trusts_another_key_fails(make_shop, sandbox):
    from flask_stars.initdata import ed25519_public_key_hex, new_ed25519_key
    from flask_stars.sandbox import attach_sandbox

    shop = make_shop(STARS_INIT_DATA_VALIDATION="ed25519")  # Telegram's key: the sandbox cannot sign
    with pytest.raises(RuntimeError, match="ed25519"):
        attach_sandbox(shop.app, sandbox, shop.base)
    key = new_ed25519_key()
    trusting = make_shop(
        STARS_INIT_DATA_VALIDATION="ed25519", STARS_INIT_DATA_PUBLIC_KEY=ed25519_public_key_hex(key)
    )
    with pytest.raises(RuntimeError, match="ed25519"):
        attach_sandbox(trusting.app, sandbox, trusting.base, init_data_key=new_ed25519_key())
    attach_sandbox(trusting.app, sandbox, trusting.base, init_data_key=key)


def test_flask_stars_sandbox_runs_an_ed25519_app_with_a_key_of_its_own(database_url):
    """`flask stars sandbox` on an app in ed25519 mode (Telegram's key by default), in a subprocess."""
    import requests

    from flask_stars.initdata import new_ed25519_key
    from flask_stars.sandbox import SANDBOX_TOKEN, TEST_USERS
    from flask_stars.testing import init_data_header
    from tests.support.servers import sandbox_run

    app_spec = f"tests.support.hostapp:create_app({database_url!r}, STARS_INIT_DATA_VALIDATION='ed25519')"
    with sandbox_run(app_spec) as (base, _printed):
        http = requests.Session()
        user = TEST_USERS[0]
        init = http.get(base + "/stars/sandbox/init-data", params={"user": user["id"]}, timeout=5).json()
        raw, public_hex = init["init_data"], init["public_key"]
        assert public_hex not in TELEGRAM_PUBLIC_KEYS.values()
        validate_init_data(raw, SANDBOX_TOKEN, max_age=60, mode="ed25519", public_key=public_hex)
        with pytest.raises(InvalidInitData):  # worthless where Telegram's key is trusted
            validate_init_data(raw, SANDBOX_TOKEN, max_age=60, mode="ed25519")
        _buy_on_the_sandbox_page(http, base, raw, user["id"])
        # The run is in ed25519 mode: the HMAC hash with the sandbox's token is not enough,
        # and a signature by any other key is refused.
        for header in (
            init_data_header(SANDBOX_TOKEN, user["id"]),
            init_data_header(SANDBOX_TOKEN, user["id"], ed25519_private_key=new_ed25519_key()),
        ):
            resp = http.post(
                base + "/stars/invoice", json={"pack_id": "stars_pack_2"}, headers=header, timeout=5
            )
            assert resp.status_code == 401, resp.text
