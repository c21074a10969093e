"""Every refund leaves one audit entry: who, when, the reason typed, the outcome.

From the CLI (the OS user), the dashboard (the host's ``actor=``) and the Python API (its
``actor`` argument); a refund that fails (Telegram refused, the debit callback raised, no
such charge) is recorded as failed. The entries show on the payment's page and on the
Activity page.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from datetime import timedelta

import pytest
import requests
import sqlalchemy as sa

from example_app import create_app
from flask_stars.models import AuditEntry, Payment, utcnow
from flask_stars.sandbox import SANDBOX_TOKEN, Sandbox, attach_sandbox
from flask_stars.state import get_state
from flask_stars.testing import init_data_header, serve
from tests.support import hostapp
from tests.support.admin_app import AdminShop, form_token, served_admin


@pytest.fixture
def admin(database_url: str, sandbox: Sandbox) -> Iterator[AdminShop]:
    with served_admin(database_url, sandbox, actor=lambda: "ops@example.com") as shop:
        yield shop


def _broken_debit(payment: object) -> None:
    raise RuntimeError("the coins table is locked")


def _entries(shop: AdminShop) -> list[AuditEntry]:
    return sorted(shop.rows(AuditEntry), key=lambda e: e.id)


def _page(shop: AdminShop, path: str) -> str:
    response = shop.client().get(path)
    assert response.status_code == 200, response.data[:300]
    return html.unescape(response.get_data(as_text=True))


def _row(page: str, entry: AuditEntry) -> str:
    """The table row of ``entry`` on ``page``."""
    start = page.index(f'<tr id="entry-{entry.id}"')
    return page[start : page.index("</tr>", start)]


def test_a_cli_refund_is_recorded_with_the_os_user_and_shown(
    admin: AdminShop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("flask_stars.audit.getpass.getuser", lambda: "alice")
    _, attempt = admin.buy(601)
    charge = attempt.charge_id
    before = utcnow()
    result = admin.app.test_cli_runner().invoke(
        args=["stars", "refund", charge, "--reason", "asked by the buyer"]
    )
    assert result.exit_code == 0, result.output
    (entry,) = _entries(admin)
    assert (entry.action, entry.target, entry.actor, entry.source) == ("refund", charge, "alice", "cli")
    assert (entry.reason, entry.outcome) == ("asked by the buyer", "ok")
    assert entry.detail == "10 Stars back to user 601"
    assert before - timedelta(seconds=1) <= entry.at <= utcnow()
    assert admin.balance(601) == 0

    pid = admin.payment_id(charge)
    row = _row(_page(admin, f"/admin/payments/{pid}"), entry)
    assert "alice" in row and "flask stars" in row and "asked by the buyer" in row
    assert 'class="ok"' in row and "10 Stars back to user 601" in row
    assert entry.at.strftime("%Y-%m-%d %H:%M:%S") in row
    activity = _row(_page(admin, "/admin/activity"), entry)
    assert f'href="/admin/payments/{pid}"' in activity and charge in activity and "alice" in activity


def test_a_dashboard_refund_is_recorded_with_the_hosts_actor(admin: AdminShop) -> None:
    _, attempt = admin.buy(602)
    charge = attempt.charge_id
    pid = admin.payment_id(charge)
    client = admin.client()
    path = f"/admin/payments/{pid}/refund"
    token = form_token(client, path)
    done = client.post(path, data={"confirm": "yes", "csrf_token": token, "reason": "  double click  "})
    assert done.status_code == 303
    (entry,) = _entries(admin)
    assert (entry.actor, entry.source, entry.action, entry.target) == (
        "ops@example.com",
        "dashboard",
        "refund",
        charge,
    )
    assert (entry.reason, entry.outcome) == ("double click", "ok")
    row = _row(_page(admin, f"/admin/payments/{pid}"), entry)
    assert "ops@example.com" in row and "dashboard" in row and "double click" in row
    # The Russian page says the same in Russian.
    ru = admin.client(**{"Accept-Language": "ru"}).get(f"/admin/payments/{pid}").get_data(as_text=True)
    assert "Действия операторов" in ru and "возврат" in ru and "панель" in ru


def test_a_refund_without_a_reason_is_recorded_without_one(admin: AdminShop) -> None:
    _, attempt = admin.buy(603)
    pid = admin.payment_id(attempt.charge_id)
    client = admin.client()
    path = f"/admin/payments/{pid}/refund"
    token = form_token(client, path)
    assert client.post(path, data={"confirm": "yes", "csrf_token": token, "reason": " "}).status_code == 303
    (entry,) = _entries(admin)
    assert entry.reason is None and entry.outcome == "ok"


def test_a_python_api_refund_is_recorded_with_its_actor_argument(database_url: str, sandbox: Sandbox) -> None:
    with served_admin(database_url, sandbox, mount="extension") as shop:
        stars = shop.app.extensions["test_stars"]
        _, first = shop.buy(604)
        _, second = shop.buy(605)
        with shop.app.app_context():
            stars.refund(first.charge_id, reason="support ticket 12", actor="bob@example.com")
            stars.refund(second.charge_id)
        one, two = _entries(shop)
        assert (one.actor, one.source, one.target, one.reason, one.outcome) == (
            "bob@example.com",
            "python",
            first.charge_id,
            "support ticket 12",
            "ok",
        )
        assert (two.actor, two.source, two.target, two.reason) == ("python", "python", second.charge_id, None)
        activity = _page(shop, "/admin/activity")
        assert "bob@example.com" in _row(activity, one) and "Python API" in _row(activity, one)


def test_a_refund_telegram_refuses_is_recorded_failed(admin: AdminShop) -> None:
    _, attempt = admin.buy(606)
    pid = admin.payment_id(attempt.charge_id)
    client = admin.client()
    path = f"/admin/payments/{pid}/refund"
    token = form_token(client, path)
    admin.tg.fail("refundStarPayment", 400, "Bad Request: CHARGE_NOT_FOUND")
    answer = client.post(path, data={"confirm": "yes", "csrf_token": token, "reason": "fraud"})
    assert answer.status_code == 502
    (entry,) = _entries(admin)
    assert (entry.actor, entry.outcome, entry.reason) == ("ops@example.com", "failed", "fraud")
    assert entry.detail is not None and "Bad Request: CHARGE_NOT_FOUND" in entry.detail
    assert "ledger is unchanged" in entry.detail
    assert [p.status for p in admin.payments()] == ["paid"] and admin.balance(606) == 1_000_000
    row = _row(_page(admin, f"/admin/payments/{pid}"), entry)
    assert 'class="warn"' in row and "CHARGE_NOT_FOUND" in row
    failed_only = _page(admin, "/admin/activity?action=refund")
    assert "CHARGE_NOT_FOUND" in _row(failed_only, entry)


def test_a_refund_whose_debit_callback_raises_is_recorded_failed_then_ok(
    database_url: str, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("flask_stars.audit.getpass.getuser", lambda: "carol")
    with served_admin(database_url, sandbox, STARS_DEBIT_CALLBACK=_broken_debit) as shop:
        shop.tg.deliver_refund_updates = False  # only the command refunds here
        _, attempt = shop.buy(607)
        runner = shop.app.test_cli_runner()
        result = runner.invoke(args=["stars", "refund", attempt.charge_id, "--reason", "chargeback"])
        assert result.exit_code == 1
        (failed,) = _entries(shop)
        assert (failed.actor, failed.outcome, failed.reason) == ("carol", "failed", "chargeback")
        assert failed.detail is not None
        assert "RuntimeError: the coins table is locked" in failed.detail
        assert "Telegram gave the Stars back, but the ledger is unchanged" in failed.detail

        shop.app.config["STARS_DEBIT_CALLBACK"] = hostapp.debit_coins
        again = runner.invoke(args=["stars", "refund", attempt.charge_id, "--reason", "chargeback"])
        assert again.exit_code == 0, again.output
        first, second = _entries(shop)
        assert first.id == failed.id and second.outcome == "ok"
        assert second.detail == "10 Stars back to user 607 (Telegram had already refunded it)"
        assert shop.balance(607) == 0 and shop.credit_log.debits == [attempt.charge_id]


def test_a_refund_of_an_unknown_charge_is_recorded_failed(
    admin: AdminShop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("flask_stars.audit.getpass.getuser", lambda: "dave")
    result = admin.app.test_cli_runner().invoke(args=["stars", "refund", "stxNope"])
    assert result.exit_code == 1
    (entry,) = _entries(admin)
    assert (entry.target, entry.outcome, entry.actor) == ("stxNope", "failed", "dave")
    assert entry.detail == "No payment 'stxNope' in the ledger."
    activity = _row(_page(admin, "/admin/activity"), entry)
    assert "stxNope" in activity and "<a href" not in activity  # no payment to link to


def test_refunding_a_refunded_payment_again_is_recorded_as_nothing_done(admin: AdminShop) -> None:
    _, attempt = admin.buy(608)
    runner = admin.app.test_cli_runner()
    assert runner.invoke(args=["stars", "refund", attempt.charge_id]).exit_code == 0
    assert runner.invoke(args=["stars", "refund", attempt.charge_id]).exit_code == 0
    first, second = _entries(admin)
    assert first.outcome == second.outcome == "ok"
    assert second.detail == "already refunded (10 Stars back to user 608): nothing done"
    assert len(admin.tg.calls_to("refundStarPayment")) == 1 and admin.credit_log.debits == [attempt.charge_id]


def test_the_example_app_names_its_operator_in_the_trail(database_url: str) -> None:
    with Sandbox(token=SANDBOX_TOKEN) as tg:
        app = create_app(
            {
                "SQLALCHEMY_DATABASE_URI": database_url,
                "STARS_BOT_TOKEN": SANDBOX_TOKEN,
                "STARS_API_URL": tg.url,
                "SANDBOX": True,
                "ADMIN_PASSWORD": "open sesame",
            }
        )
        with serve(app) as base:
            attach_sandbox(app, tg, base)
            invoice = requests.post(
                base + "/stars/invoice",
                json={"pack_id": "stars_pack_1"},
                headers=init_data_header(SANDBOX_TOKEN, 609),
                timeout=10,
            )
            assert invoice.status_code in (200, 201), invoice.text
            charge = tg.pay(invoice.json()["invoice_url"], 609).charge_id
            client = app.test_client()
            assert client.post("/login", data={"password": "open sesame"}).status_code == 302
            with app.app_context():
                (pid,) = get_state().session.scalars(sa.select(Payment.id)).all()
            path = f"/admin/payments/{pid}/refund"
            token = form_token(client, path)
            assert client.post(path, data={"confirm": "yes", "csrf_token": token}).status_code == 303
            activity = client.get("/admin/activity").get_data(as_text=True)
            assert charge in activity and "admin" in activity and "dashboard" in activity
            with app.app_context():
                (entry,) = get_state().session.scalars(sa.select(AuditEntry)).all()
                assert (entry.actor, entry.source, entry.target) == ("admin", "dashboard", charge)


def test_the_automatic_refund_of_a_second_payment_is_recorded_as_flask_stars(admin: AdminShop) -> None:
    order = admin.invoice(610).json()
    admin.tg.pay(order["invoice_url"], 610)
    charge2, update2 = admin.tg.charge(order["invoice_url"], 610)
    assert admin.tg.deliver(update2).status == 200
    (entry,) = _entries(admin)
    assert (entry.actor, entry.source, entry.target, entry.outcome) == (
        "flask_stars",
        "system",
        charge2,
        "ok",
    )
    assert entry.reason == "second payment for a paid order"
    row = _row(_page(admin, "/admin/activity"), entry)
    assert "flask_stars" in row and "automatic" in row
