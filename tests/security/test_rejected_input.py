"""Input that used to make a 500 is refused with a 4xx, or at start-up.

- JSON nested deeper than the parser goes is ``400 invalid_json``, not a RecursionError.
- A ``STARS_INIT_DATA_PUBLIC_KEY`` that is not an Ed25519 key fails when the app starts,
  not on every initData afterwards; so do bad ``STARS_ORDER_WAITS_*`` and
  ``STARS_SUBSCRIPTION_RATE_LIMIT`` values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from flask_stars import StarsConfigError, stars_bp
from flask_stars.initdata import TELEGRAM_PUBLIC_KEYS
from flask_stars.testing import TEST_TOKEN, init_data_header
from tests.support import hostapp
from tests.support.shop import Shop

DEEP = b"[" * 100_000 + b"]" * 100_000


def test_deeply_nested_json_is_invalid_json_not_a_500(shop: Shop) -> None:
    json_headers = {"Content-Type": "application/json"}
    resp = shop.http.post(shop.url("/invoice"), data=DEEP, headers={**json_headers, **shop.auth(42)})
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_json"
    # Without initData it is refused before the body is read at all.
    resp = shop.http.post(shop.url("/invoice"), data=DEEP, headers=json_headers)
    assert resp.status_code == 401 and resp.json()["error"] == "invalid_init_data"

    resp = shop.post_webhook(DEEP)
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_json"
    # A deep value inside an otherwise valid update: parsed or refused, never a 500.
    for depth in (500, 900, 990, 5000):
        nested = b'{"update_id": 7, "message": {"text": ' + b"[" * depth + b"]" * depth + b"}}"
        resp = shop.post_webhook(nested)
        assert resp.status_code < 500, (depth, resp.text)
    assert shop.payments() == []


@pytest.mark.parametrize(
    "key",
    [
        "not-hex",
        "",
        "e7bf03a2fa4602af4580703d88dda5bb59f32ed8b02a56c187fe7d34caed242",  # 63 characters
        "e7bf03a2fa4602af4580703d88dda5bb59f32ed8b02a56c187fe7d34caed242d00",  # 66
        "zz" * 32,
        b"\x01" * 32,
        42,
    ],
)
@pytest.mark.parametrize("mode", ["ed25519", "hmac"])
def test_a_bad_init_data_public_key_fails_at_start_up(key: Any, mode: str) -> None:
    app = hostapp.bare_app(STARS_INIT_DATA_VALIDATION=mode, STARS_INIT_DATA_PUBLIC_KEY=key)
    with pytest.raises(StarsConfigError, match="STARS_INIT_DATA_PUBLIC_KEY"):
        app.register_blueprint(stars_bp)


def test_a_good_init_data_public_key_is_used(make_shop: Callable[..., Shop]) -> None:
    private = Ed25519PrivateKey.generate()
    public_hex = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
    for key in (TELEGRAM_PUBLIC_KEYS["test"], TELEGRAM_PUBLIC_KEYS["production"].upper()):
        hostapp.bare_app(
            STARS_INIT_DATA_VALIDATION="ed25519", STARS_INIT_DATA_PUBLIC_KEY=key
        ).register_blueprint(stars_bp)

    shop = make_shop(STARS_INIT_DATA_VALIDATION="ed25519", STARS_INIT_DATA_PUBLIC_KEY=public_hex)
    signed = init_data_header(TEST_TOKEN, 42, ed25519_private_key=private)
    assert (
        shop.http.post(shop.url("/invoice"), json={"pack_id": "stars_pack_1"}, headers=signed).status_code
        == 201
    )
    forged = init_data_header(TEST_TOKEN, 42, ed25519_private_key=Ed25519PrivateKey.generate())
    resp = shop.http.post(shop.url("/invoice"), json={"pack_id": "stars_pack_1"}, headers=forged)
    assert resp.status_code == 401


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ({"STARS_ORDER_WAITS_PER_USER": 0}, "STARS_ORDER_WAITS_PER_USER"),
        ({"STARS_ORDER_WAITS_PER_USER": "2"}, "STARS_ORDER_WAITS_PER_USER"),
        ({"STARS_ORDER_WAITS_MAX": -1}, "STARS_ORDER_WAITS_MAX"),
        ({"STARS_ORDER_WAITS_MAX": 2.5}, "STARS_ORDER_WAITS_MAX"),
        ({"STARS_ORDER_WAITS_MAX": True}, "STARS_ORDER_WAITS_MAX"),
        ({"STARS_SUBSCRIPTION_RATE_LIMIT": "often"}, "STARS_SUBSCRIPTION_RATE_LIMIT"),
        ({"STARS_SUBSCRIPTION_RATE_LIMIT": 10}, "STARS_SUBSCRIPTION_RATE_LIMIT"),
    ],
)
def test_bad_availability_limits_fail_at_start_up(config: dict[str, Any], words: str) -> None:
    with pytest.raises(StarsConfigError, match=words):
        hostapp.bare_app(**config).register_blueprint(stars_bp)
