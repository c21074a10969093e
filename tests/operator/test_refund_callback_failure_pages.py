"""A refund whose debit callback raises, from the dashboard: the payment's page says what the
callback raised (500), the ledger and the host's coins are unchanged, and a refund once the
callback is fixed finishes it and debits once. The dashboard's error edge maps the host's
callback failing (``HostCallbackFailed``) for every action, not each view by itself."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from flask_stars.sandbox import Sandbox
from tests.support import hostapp
from tests.support.admin_app import AdminShop, form_token, served_admin


def _broken_debit(payment: object) -> None:
    raise RuntimeError("the coins table is locked")


@pytest.fixture
def admin(database_url: str, sandbox: Sandbox) -> Iterator[AdminShop]:
    with served_admin(database_url, sandbox, STARS_DEBIT_CALLBACK=_broken_debit) as shop:
        shop.tg.deliver_refund_updates = False  # only the dashboard refunds here
        yield shop


def _refund(admin: AdminShop, payment_id: int) -> tuple[int, str]:
    client = admin.client(**{"Accept-Language": "en"})
    path = f"/admin/payments/{payment_id}/refund"
    answer = client.post(path, data={"confirm": "yes", "csrf_token": form_token(client, path)})
    return answer.status_code, answer.get_data(as_text=True)


def test_a_dashboard_refund_whose_debit_callback_raises_shows_the_payment_page_with_why(
    admin: AdminShop, caplog: pytest.LogCaptureFixture
) -> None:
    _, attempt = admin.buy(651)
    pid = admin.payment_id(attempt.charge_id)
    assert admin.balance(651) == 1_000_000

    with caplog.at_level("ERROR"):
        status, page = _refund(admin, pid)
    assert status == 500
    assert 'id="error"' in page and "The refund failed: RuntimeError: the coins table is locked" in page
    assert attempt.charge_id in page  # the payment's own page, not the bare error page
    assert any(r.exc_info and "the coins table is locked" in str(r.exc_info[1]) for r in caplog.records)
    (payment,) = admin.payments()
    assert payment.status == "paid" and payment.refunded_at is None
    assert admin.balance(651) == 1_000_000 and admin.credit_log.debits == []

    # Fixed: the same button finishes it (Telegram says it is already refunded), debits once.
    admin.app.config["STARS_DEBIT_CALLBACK"] = hostapp.debit_coins
    status, _ = _refund(admin, pid)
    assert status == 303
    (payment,) = admin.payments()
    assert payment.status == "refunded"
    assert admin.balance(651) == 0 and admin.credit_log.debits == [attempt.charge_id]
