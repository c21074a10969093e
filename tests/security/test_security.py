"""Forged, stale and malformed requests: clear JSON errors, nothing stored, nothing credited."""

from __future__ import annotations

import time

import pytest

from flask_stars.initdata import sign_init_data
from flask_stars.sandbox import make_user
from flask_stars.testing import TEST_TOKEN


def _nothing_happened(shop):
    assert shop.updates() == [] and shop.payments() == []
    assert shop.tg.calls_to("answerPreCheckoutQuery") == []


@pytest.mark.parametrize("secret", [None, "", "wrong", "x" * 64])
def test_webhook_without_the_right_secret_is_refused(shop, secret):
    order = shop.invoice(42).json()
    _, update = shop.tg.charge(order["invoice_url"], 42)
    resp = shop.post_webhook(update, secret=secret)
    assert resp.status_code == 403
    assert resp.json()["error"] == "invalid_secret"
    _nothing_happened(shop)
    assert shop.balance(42) == 0


def test_forged_pre_checkout_is_not_answered(shop):
    inv = shop.tg.invoice(shop.invoice(42).json()["invoice_url"])
    update = {
        "update_id": 1,
        "pre_checkout_query": {
            "id": "1",
            "from": make_user(42),
            "currency": "XTR",
            "total_amount": 10,
            "invoice_payload": inv.payload,
        },
    }
    assert shop.post_webhook(update, secret="nope").status_code == 403
    _nothing_happened(shop)


def test_any_of_several_secrets_is_accepted(make_shop):
    shop = make_shop(STARS_WEBHOOK_SECRET=["new-secret", "old-secret"])
    update = {
        "update_id": 5,
        "message": {"message_id": 1, "date": 0, "chat": {"id": 1, "type": "private"}, "text": "hi"},
    }
    assert shop.post_webhook(update, secret="old-secret").status_code == 200
    assert shop.post_webhook(update, secret="new-secret").status_code == 200
    assert shop.post_webhook(update, secret="older-secret").status_code == 403


def test_default_secret_is_derived_from_the_token(shop):
    import hashlib
    import hmac

    expected = hmac.new(TEST_TOKEN.encode(), b"flask_stars webhook", hashlib.sha256).hexdigest()
    assert shop.app.extensions["stars"].settings.webhook_secrets == (expected,)


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ({}, "invalid_init_data"),
        ({"Authorization": "Bearer abc"}, "invalid_init_data"),
        ({"Authorization": "tma "}, "invalid_init_data"),
        ({"Authorization": "tma user=%7B%22id%22%3A42%7D&auth_date=1&hash=00"}, "invalid_init_data"),
        ({"Authorization": "tma " + "a" * 10000}, "invalid_init_data"),
    ],
)
def test_invoice_without_valid_init_data_is_401(shop, headers, error):
    resp = shop.http.post(shop.url("/invoice"), json={"pack_id": "stars_pack_1"}, headers=headers)
    assert resp.status_code == 401
    assert resp.json()["error"] == error and resp.json()["message"]
    assert shop.tg.calls_to("createInvoiceLink") == []


def test_init_data_signed_by_another_bot_is_refused(shop):
    headers = {"Authorization": "tma " + sign_init_data("999:OTHER-bot-token", make_user(42))}
    assert (
        shop.http.post(shop.url("/invoice"), json={"pack_id": "stars_pack_1"}, headers=headers).status_code
        == 401
    )


def test_tampered_user_is_refused(shop):
    raw = sign_init_data(TEST_TOKEN, make_user(42))
    forged = raw.replace("%22id%22%3A42", "%22id%22%3A43")
    assert forged != raw
    resp = shop.http.post(
        shop.url("/invoice"), json={"pack_id": "stars_pack_1"}, headers={"Authorization": "tma " + forged}
    )
    assert resp.status_code == 401


def test_expired_and_future_init_data_is_refused(make_shop):
    shop = make_shop(STARS_INIT_DATA_MAX_AGE=60)
    old = shop.http.post(
        shop.url("/invoice"),
        json={"pack_id": "stars_pack_1"},
        headers=shop.auth(42, auth_date=int(time.time()) - 61),
    )
    assert old.status_code == 401 and old.json()["error"] == "init_data_expired"
    future = shop.http.post(
        shop.url("/invoice"),
        json={"pack_id": "stars_pack_1"},
        headers=shop.auth(42, auth_date=int(time.time()) + 600),
    )
    assert future.status_code == 401
    fresh = shop.http.post(
        shop.url("/invoice"),
        json={"pack_id": "stars_pack_1"},
        headers=shop.auth(42, auth_date=int(time.time()) - 30),
    )
    assert fresh.status_code == 201


def test_another_users_order_is_not_found(shop):
    order_id = shop.invoice(42).json()["order_id"]
    resp = shop.order_status(order_id, 43)
    assert resp.status_code == 404 and resp.json()["error"] == "order_not_found"
    assert shop.order_status("no-such-order", 42).status_code == 404
    assert shop.order_status(order_id, 42).status_code == 200


def test_order_status_needs_init_data(shop):
    order_id = shop.invoice(42).json()["order_id"]
    assert shop.http.get(shop.url(f"/orders/{order_id}")).status_code == 401


def test_user_id_in_the_body_is_ignored(shop):
    resp = shop.http.post(
        shop.url("/invoice"), json={"pack_id": "stars_pack_1", "user_id": 1}, headers=shop.auth(42)
    )
    assert resp.status_code == 201
    assert shop.order(resp.json()["order_id"]).user_id == 42


@pytest.mark.parametrize(
    ("body", "error", "field"),
    [
        (b"{not json", "invalid_json", None),
        (b"[1, 2]", "invalid_json", None),
        (b"", "invalid_json", None),
        (b"{}", "validation_error", "pack_id"),
        (b'{"pack_id": 5}', "validation_error", "pack_id"),
        (b'{"pack_id": "bad id!"}', "validation_error", "pack_id"),
    ],
)
def test_malformed_invoice_body_is_400(shop, body, error, field):
    resp = shop.http.post(
        shop.url("/invoice"), data=body, headers={**shop.auth(42), "Content-Type": "application/json"}
    )
    assert resp.status_code == 400
    assert resp.json()["error"] == error
    if field:
        assert field in resp.json()["fields"]


def test_unknown_pack_is_404(shop):
    resp = shop.http.post(shop.url("/invoice"), json={"pack_id": "stars_pack_9"}, headers=shop.auth(42))
    assert resp.status_code == 404 and resp.json()["error"] == "pack_not_found"


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[]", b'{"no_update_id": 1}', b'{"update_id": "7"}'],
)
def test_malformed_webhook_body_is_400(shop, body):
    resp = shop.post_webhook(body)
    assert resp.status_code == 400 and resp.json()["error"] in ("invalid_json", "invalid_update")


def test_oversize_bodies_are_413(make_shop):
    shop = make_shop(STARS_MAX_BODY=2048)
    big = b'{"pack_id": "' + b"x" * 4096 + b'"}'
    resp = shop.http.post(
        shop.url("/invoice"), data=big, headers={**shop.auth(42), "Content-Type": "application/json"}
    )
    assert resp.status_code == 413 and resp.json()["error"] == "payload_too_large"
    resp = shop.post_webhook(b'{"update_id": 1, "x": "' + b"y" * 4096 + b'"}')
    assert resp.status_code == 413
    assert shop.updates() == []


def test_host_errors_keep_the_hosts_own_rendering(shop):
    resp = shop.http.get(shop.base + "/no-such-host-page")
    assert resp.status_code == 404
    assert "text/html" in resp.headers["Content-Type"]
    assert shop.http.get(shop.base + "/").text == "host home"


def test_invoice_requests_are_rate_limited_per_user(make_shop):
    shop = make_shop(STARS_INVOICE_RATE_LIMIT="3/minute")
    codes = [shop.invoice(42).status_code for _ in range(4)]
    assert codes == [201, 200, 200, 429]
    resp = shop.invoice(42)
    assert resp.status_code == 429 and resp.json()["error"] == "rate_limited"
    assert 1 <= int(resp.headers["Retry-After"]) <= 60
    assert shop.invoice(43).status_code == 201  # another user is not affected
    assert len(shop.tg.calls_to("createInvoiceLink")) == 2


def test_rate_limit_can_live_in_redis(make_shop):
    import uuid

    import redis

    try:
        redis.Redis(host="127.0.0.1", port=6379, socket_timeout=1).ping()
    except redis.RedisError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    user = int(uuid.uuid4().int % 10**9) + 10**9  # a key no earlier run has used
    a = make_shop(STARS_INVOICE_RATE_LIMIT="2/minute", STARS_RATE_LIMIT_STORAGE="redis://127.0.0.1:6379")
    assert [a.invoice(user).status_code for _ in range(2)] == [201, 200]
    # A second app (another worker or host) shares the count through Redis.
    b = make_shop(STARS_INVOICE_RATE_LIMIT="2/minute", STARS_RATE_LIMIT_STORAGE="redis://127.0.0.1:6379")
    assert b.invoice(user).status_code == 429


def test_bad_rate_limit_config_fails_at_start():
    from flask import Flask

    from flask_stars import StarsConfigError, stars_bp
    from flask_stars.testing import TEST_TOKEN
    from tests.support.hostapp import PACKS

    app = Flask(__name__)
    app.config.update(
        STARS_BOT_TOKEN=TEST_TOKEN,
        STARS_PACKS=PACKS,
        STARS_CREDIT_CALLBACK=print,
        STARS_INVOICE_RATE_LIMIT="lots",
    )
    with pytest.raises(StarsConfigError, match="STARS_INVOICE_RATE_LIMIT"):
        app.register_blueprint(stars_bp)


def test_third_party_ed25519_mode_checks_telegrams_signature(make_shop):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    telegram_key = Ed25519PrivateKey.generate()  # stands in for Telegram's key pair
    public_hex = telegram_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
    shop = make_shop(STARS_INIT_DATA_VALIDATION="ed25519", STARS_INIT_DATA_PUBLIC_KEY=public_hex)
    signed = "tma " + sign_init_data("999:NOT-OUR-TOKEN", make_user(42), ed25519_private_key=None)
    # HMAC with some token is meaningless here: only Telegram's Ed25519 signature counts.
    assert (
        shop.http.post(
            shop.url("/invoice"), json={"pack_id": "stars_pack_1"}, headers={"Authorization": signed}
        ).status_code
        == 401
    )
    good = "tma " + sign_init_data(TEST_TOKEN, make_user(42), ed25519_private_key=telegram_key)
    resp = shop.http.post(
        shop.url("/invoice"), json={"pack_id": "stars_pack_1"}, headers={"Authorization": good}
    )
    assert resp.status_code == 201
    forged_key = Ed25519PrivateKey.generate()
    forged = "tma " + sign_init_data(TEST_TOKEN, make_user(43), ed25519_private_key=forged_key)
    assert (
        shop.http.post(
            shop.url("/invoice"), json={"pack_id": "stars_pack_1"}, headers={"Authorization": forged}
        ).status_code
        == 401
    )
