"""A refunded subscription payment: the plan ends, unless an older renewal was refunded."""

from __future__ import annotations

from flask_stars.models import Subscription, utcnow
from tests.support import hostapp
from tests.support.subscriptions import MONTHLY, subscribe


def test_a_refunded_subscription_is_no_longer_active(make_shop):
    shop = make_shop(STARS_PACKS=[*hostapp.PACKS, MONTHLY])
    _order, first = subscribe(shop)
    subs = shop.http.get(shop.url("/subscriptions"), headers=shop.auth(42)).json()["subscriptions"]
    assert subs[0]["active"] is True
    assert shop.app.test_cli_runner().invoke(args=["stars", "refund", first.charge_id]).exit_code == 0
    subs = shop.http.get(shop.url("/subscriptions"), headers=shop.auth(42)).json()["subscriptions"]
    assert subs[0]["active"] is False


def test_refunding_an_older_renewal_keeps_the_current_period(make_shop):
    shop = make_shop(STARS_PACKS=[*hostapp.PACKS, MONTHLY])
    _order, first = subscribe(shop)
    shop.tg.renew(first.charge_id)
    assert shop.app.test_cli_runner().invoke(args=["stars", "refund", first.charge_id]).exit_code == 0
    (sub,) = shop.rows(Subscription)
    assert sub.expires_at > utcnow()  # the renewal paid for the current month
