"""A payment or refund reconcile found says so on the payment's page: its date is then
Telegram's, and when reconcile found it is shown beside it."""

from __future__ import annotations

import html
from datetime import timedelta

import sqlalchemy as sa

from flask_stars.models import Payment, utcnow
from flask_stars.sandbox import Sandbox
from flask_stars.state import get_state
from tests.support.admin_app import served_admin


def test_found_by_reconcile_is_shown_beside_telegrams_dates(database_url: str, sandbox: Sandbox) -> None:
    with served_admin(database_url, sandbox) as shop:
        _, attempt = shop.buy(951)
        _, other = shop.buy(952)
        paid = utcnow() - timedelta(days=3)
        found = utcnow().replace(microsecond=0)
        with shop.app.app_context():
            session = get_state().session
            session.execute(
                sa.update(Payment)
                .where(Payment.telegram_payment_charge_id == attempt.charge_id)
                .values(
                    paid_at=paid,
                    found_at=found,
                    status="refunded",
                    refunded_at=paid + timedelta(hours=1),
                    refund_found_at=found,
                )
            )
            session.commit()
        page = html.unescape(
            shop.client().get(f"/admin/payments/{shop.payment_id(attempt.charge_id)}").get_data(as_text=True)
        )
        stamp = found.strftime("%Y-%m-%d %H:%M:%S")  # every page writes a time the same way
        assert paid.strftime("%Y-%m-%d %H:%M:%S") in page
        assert f"Telegram's date: found by reconcile at {stamp}" in page
        assert f"Telegram's date: the refund was found by reconcile at {stamp}" in page
        ru = shop.client(**{"Accept-Language": "ru"}).get(
            f"/admin/payments/{shop.payment_id(attempt.charge_id)}"
        )
        assert "найден сверкой" in ru.get_data(as_text=True)
        assert found.strftime("%d.%m.%Y %H:%M:%S") in ru.get_data(as_text=True)  # and the Russian way
        # A payment whose webhook came says nothing of the kind.
        plain = (
            shop.client().get(f"/admin/payments/{shop.payment_id(other.charge_id)}").get_data(as_text=True)
        )
        assert 'id="found"' not in plain and 'id="refund-found"' not in plain
