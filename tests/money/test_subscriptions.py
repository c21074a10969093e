"""Monthly plans: first payment and each renewal credit once; cancel and re-enable; state updates."""

from __future__ import annotations

import json

import pytest

from flask_stars.models import Subscription
from tests.support.subscriptions import MONTHLY, subscribe


@pytest.fixture
def sub_shop(make_shop):
    from tests.support.hostapp import PACKS

    return make_shop(STARS_PACKS=[*PACKS, MONTHLY])


def test_first_payment_and_renewals_credit_once_each(sub_shop):
    order, first = subscribe(sub_shop)
    (sub,) = sub_shop.rows(Subscription)
    assert (sub.user_id, sub.pack_id, sub.state, sub.payments, sub.charge_id) == (
        42,
        "monthly",
        "active",
        1,
        first.charge_id,
    )
    first_expiry = sub.expires_at

    renewal_charge, renewal = sub_shop.tg.renew(first.charge_id)
    assert renewal["message"]["successful_payment"]["is_recurring"] is True
    sub_shop.tg.deliver(renewal)  # and Telegram redelivers it
    assert sub_shop.balance(42) == 6_000_000
    (sub,) = sub_shop.rows(Subscription)
    assert sub.payments == 2 and sub.last_charge_id == renewal_charge
    assert (sub.expires_at - first_expiry).days == 30
    assert sub_shop.tg.calls_to("refundStarPayment") == []  # a renewal is not a "paid twice"
    assert sub_shop.order(order["order_id"]).status == "paid"


def test_mini_app_lists_cancels_and_re_enables_its_own_subscription(sub_shop):
    subscribe(sub_shop)
    listed = sub_shop.http.get(sub_shop.url("/subscriptions"), headers=sub_shop.auth(42)).json()[
        "subscriptions"
    ]
    assert len(listed) == 1 and listed[0]["state"] == "active" and listed[0]["active"] is True
    sub_id = listed[0]["id"]
    assert (
        sub_shop.http.get(sub_shop.url("/subscriptions"), headers=sub_shop.auth(43)).json()["subscriptions"]
        == []
    )
    # Another user cannot touch it.
    assert (
        sub_shop.http.post(
            sub_shop.url(f"/subscriptions/{sub_id}/cancel"), headers=sub_shop.auth(43)
        ).status_code
        == 404
    )

    resp = sub_shop.http.post(sub_shop.url(f"/subscriptions/{sub_id}/cancel"), headers=sub_shop.auth(42))
    assert resp.status_code == 200 and resp.json()["state"] == "canceled"
    assert resp.json()["active"] is True and resp.json()["can_enable"] is True  # paid up until expiry
    (call,) = sub_shop.tg.calls_to("editUserStarSubscription")
    assert call["is_canceled"] == "True" and call["user_id"] == "42"
    with pytest.raises(ValueError):
        sub_shop.tg.renew(sub_shop.rows(Subscription)[0].charge_id)  # Telegram will not renew it now

    resp = sub_shop.http.post(sub_shop.url(f"/subscriptions/{sub_id}/enable"), headers=sub_shop.auth(42))
    assert resp.status_code == 200 and resp.json()["state"] == "active"


def test_subscription_updates_from_telegram_change_the_state(sub_shop):
    order, first = subscribe(sub_shop)
    payload = f"order:{order['order_id']}"
    assert sub_shop.tg.subscription_update(42, payload, "canceled").body["detail"] == "canceled"
    (sub,) = sub_shop.rows(Subscription)
    assert sub.state == "canceled" and not sub.canceled_by_bot
    # The user cancelled it in Telegram: the bot cannot renew it for them.
    resp = sub_shop.http.post(sub_shop.url(f"/subscriptions/{sub.id}/enable"), headers=sub_shop.auth(42))
    assert resp.status_code == 409
    sub_shop.tg.subscription_update(42, payload, "active")
    assert sub_shop.rows(Subscription)[0].state == "active"
    sub_shop.tg.subscription_update(42, payload, "failed")
    assert sub_shop.rows(Subscription)[0].state == "failed"
    # A later successful renewal makes it active again.
    sub_shop.tg.renew(first.charge_id)
    assert sub_shop.rows(Subscription)[0].state == "active"
    assert sub_shop.balance(42) == 6_000_000
    # An update about a subscription we do not know is answered 200 and ignored.
    assert (
        sub_shop.tg.subscription_update(42, "sub:other", "canceled").body["detail"] == "unknown subscription"
    )


def test_refunding_a_renewal_debits_it_and_keeps_the_order_paid(sub_shop):
    order, first = subscribe(sub_shop)
    renewal_charge, _ = sub_shop.tg.renew(first.charge_id)
    runner = sub_shop.app.test_cli_runner()
    assert runner.invoke(args=["stars", "refund", renewal_charge]).exit_code == 0
    assert sub_shop.balance(42) == 3_000_000
    assert sub_shop.order(order["order_id"]).status == "paid"


def test_subscription_cli(sub_shop):
    subscribe(sub_shop)
    runner = sub_shop.app.test_cli_runner()
    rows = json.loads(runner.invoke(args=["stars", "subscriptions", "--json"]).output)
    assert rows[0]["state"] == "active" and rows[0]["pack"] == "monthly"
    out = runner.invoke(args=["stars", "subscription", "cancel", str(rows[0]["id"])]).output
    assert "canceled" in out
    out = runner.invoke(args=["stars", "subscription", "enable", str(rows[0]["id"])]).output
    assert "active" in out


def test_chat_command_sends_a_link_for_a_subscription_pack(sub_shop):
    sub_shop.tg.send_text(9, "/buy_stars monthly")
    assert sub_shop.tg.calls_to("sendInvoice") == []  # sendInvoice cannot sell subscriptions
    msg = sub_shop.tg.calls_to("sendMessage")[-1]
    url = json.loads(msg["reply_markup"])["inline_keyboard"][0][0]["url"]
    assert url.startswith("https://t.me/$")
