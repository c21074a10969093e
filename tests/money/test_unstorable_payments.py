"""A payment update holding what cannot be stored is kept and answered 2xx, never a redelivery loop;
an initData user id beyond 64 bits is a 401."""

from __future__ import annotations

import json

from flask_stars.models import UpdateLog
from tests.support import hostapp
from tests.support.subscriptions import MONTHLY


def test_an_unstorable_expiration_date_is_applied_not_a_redelivery_loop(make_shop):
    shop = make_shop(STARS_PACKS=[*hostapp.PACKS, MONTHLY])
    order = shop.invoice(42, "monthly").json()
    attempt = shop.tg.pay(order["invoice_url"], 42, deliver_payment=False)
    update = json.loads(json.dumps(attempt.payment_update))
    update["message"]["successful_payment"]["subscription_expiration_date"] = 2**62
    resp = shop.post_webhook(update)
    assert resp.status_code == 200 and resp.json()["detail"] == "credited"
    assert shop.balance(42) == 3_000_000


def test_a_currency_too_long_to_store_is_recorded_not_a_redelivery_loop(shop):
    order = shop.invoice(42).json()
    attempt = shop.tg.pay(order["invoice_url"], 42, deliver_payment=False)
    update = json.loads(json.dumps(attempt.payment_update))
    update["message"]["successful_payment"]["currency"] = "XTRXTRXTR"
    resp = shop.post_webhook(update)
    assert resp.status_code == 200 and resp.json()["detail"] == "amount_mismatch"
    assert shop.balance(42) == 0


def test_a_malformed_payment_update_is_kept_and_answered_2xx(shop):
    update = {"update_id": 77, "message": {"from": {"id": 1}, "successful_payment": {"currency": "XTR"}}}
    resp = shop.post_webhook(update)
    assert resp.status_code == 200 and resp.json()["detail"] == "malformed: kept for replay"
    (row,) = shop.rows(UpdateLog)
    assert not row.processed and "malformed" in row.error
    assert shop.payments() == []


def test_an_initdata_user_id_beyond_int64_is_401_not_500(shop):
    resp = shop.invoice(2**64)
    assert resp.status_code == 401 and resp.json()["error"] == "invalid_init_data"
