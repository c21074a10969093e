"""Each money rule's two forms agree: the SQL the fast path runs and the Python the slow path
reads give the same answer, over generated orders, requests, settings and clocks, on SQLite
and PostgreSQL (``flask_stars.rules``).

Each example inserts its rows, runs the production statement (the pre-checkout's hold
UPDATE, the ledger's pay UPDATE) or the rule's clause against them, reads the rows back as
the slow path does, asks the Python form, and rolls back. The cases lean towards rows that
pass the rule, so that a row failing one condition alone (the case a drift shows in) is
common. Hypothesis runs derandomized: the same examples in every run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from flask_stars.ledger import _pay_order_statement
from flask_stars.models import Order, OrderStatus, Payment, PaymentStatus, RefundNotice, StarsModel
from flask_stars.packs import Pack
from flask_stars.precheckout import _hold_statement
from flask_stars.rules import hold, payable, refund_due, sold


def examples(n: int) -> settings:
    """``n`` examples, the same ones in every run (derandomized, no example database)."""
    return settings(
        max_examples=n,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )


#: The clock of every example; the rows' times are drawn around it, to the microsecond.
NOW = datetime(2025, 6, 1, 12, 0, 0, 500_000, tzinfo=UTC)
LATER = timedelta(hours=1)
AROUND_NOW = [LATER, -LATER, timedelta(0), timedelta(microseconds=1), timedelta(microseconds=-1)]
ORDER_ID = "o1"
OWNER = 1
LONG_QUERY_ID = "q" * 64 + "-longer"  # longer than a hold records: both forms compare its first 64
T = TypeVar("T")


def often(usual: T, *others: T) -> st.SearchStrategy[T]:
    """``usual`` four times in five, else one of ``others``."""
    return st.sampled_from([usual] * 4 * len(others) + list(others))


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    """The test's database with flask_stars' tables, for all of its examples."""
    engine = sa.create_engine(database_url)
    StarsModel.metadata.create_all(engine)
    yield engine
    engine.dispose()


def run_examples(
    engine: sa.Engine, n: int, cases: st.SearchStrategy[Any], check: Callable[[Session, Any], None]
) -> None:
    """``check`` ``n`` cases, each in a transaction of its own, rolled back after it."""

    @examples(n)
    @given(cases)
    def each(case: Any) -> None:
        with Session(engine) as session:
            try:
                check(session, case)
            finally:
                session.rollback()

    each()


@st.composite
def orders(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Pack]]:
    """An order's columns (pack recorded or not) and a catalogue that may or may not sell it."""
    stars = draw(st.sampled_from([10, 20]))
    pack_id = draw(st.sampled_from(["a", "b"]))
    recorded = draw(st.booleans())
    row: dict[str, Any] = {
        "id": ORDER_ID,
        "user_id": OWNER,
        "pack_id": pack_id,
        "stars": stars,
        "status": draw(
            often(
                OrderStatus.PENDING,
                OrderStatus.EXPIRED,
                OrderStatus.PAID,
                OrderStatus.REFUNDED,
                OrderStatus.FAILED,
            )
        ),
        "created_at": NOW - timedelta(hours=2),
        "expires_at": NOW + draw(st.sampled_from(AROUND_NOW)),
    }
    if recorded:
        row.update(pack_title="Pack", pack_credits={"coins": 5}, pack_subscription=draw(st.booleans()))
    # The catalogue: the order's pack at its price (usually), at another price, or gone.
    packs: dict[str, Pack] = {}
    price = draw(often(stars, 30, None))
    if price is not None:
        packs[pack_id] = Pack(id=pack_id, stars=price, title="Now")
    other = "b" if pack_id == "a" else "a"
    if draw(st.booleans()):
        packs[other] = Pack(id=other, stars=stars, title="Other")
    return row, packs


@st.composite
def hold_cases(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Pack], hold.Ask, bool]:
    """An order (with or without a hold), a pre-checkout query for it, and the gift setting."""
    row, packs = draw(orders())
    query_id = draw(st.sampled_from(["q1", LONG_QUERY_ID]))
    ask = hold.Ask(
        order_id=draw(often(ORDER_ID, "o2", None)),
        currency=draw(often("XTR", "USD", "xtr")),
        amount=draw(often(row["stars"], 30, 1)),
        payer=draw(often(OWNER, 2)),
        query_id=query_id,
        now=NOW,
    )
    holder = draw(st.sampled_from([None, "this query", "another query"]))
    if holder is not None:
        row["held_by"] = draw(st.sampled_from([OWNER, 2]))
        row["hold_query_id"] = ask.held_query_id if holder == "this query" else "q2"
        row["held_until"] = NOW + draw(st.sampled_from(AROUND_NOW))
    elif draw(st.booleans()):
        row["held_until"] = NOW + draw(st.sampled_from(AROUND_NOW))  # a bare end, no query
    return row, packs, ask, draw(st.booleans())


@st.composite
def pay_cases(
    draw: st.DrawFn,
) -> tuple[dict[str, Any], dict[str, Pack], payable.Charge, dict[str, Any] | None]:
    """An order, a successful payment naming it (or not), and maybe a refund that came first."""
    row, packs = draw(orders())
    charge = payable.Charge(
        order_id=draw(often(ORDER_ID, "o2", None)),
        currency=draw(often("XTR", "USD", "xtr")),
        amount=draw(often(row["stars"], 30, 1)),
        charge_id="charge-1",
    )
    notice = draw(
        often(
            None,
            {"telegram_payment_charge_id": "charge-1", "stars": row["stars"], "applied": False},
            {"telegram_payment_charge_id": "charge-1", "stars": row["stars"], "applied": True},
            {"telegram_payment_charge_id": "charge-2", "stars": row["stars"], "applied": False},
        )
    )
    return row, packs, charge, notice


def _counts(seen: Counter[str | None]) -> str:
    return ", ".join(f"{reason or 'yes'} {n}" for reason, n in seen.most_common())


def _load_order(session: Session, order_id: str | None) -> Order | None:
    """The order as the slow path reads it (``orders.load_order``), fresh from the database."""
    session.expunge_all()
    return None if order_id is None else session.get(Order, order_id)


def test_the_hold_update_and_the_refusal_agree(engine: sa.Engine, figure: Callable[[str], None]) -> None:
    """The pre-checkout's UPDATE takes the hold exactly when ``hold.refusal`` finds no reason."""
    dialect = engine.dialect.name
    seen: Counter[str | None] = Counter()

    def check(session: Session, case: tuple[dict[str, Any], dict[str, Pack], hold.Ask, bool]) -> None:
        row, packs, ask, gifts = case
        session.add(Order(**row))
        session.flush()
        reason = hold.refusal(_load_order(session, ask.order_id), ask, packs, gifts)
        params = {**ask.params(), "p_wait_ms": "3000", "p_until": NOW + timedelta(seconds=30)}
        taken = session.execute(_hold_statement(sold.prices(packs), gifts, dialect), params).rowcount  # type: ignore[attr-defined]
        seen[reason] += 1
        assert taken == (1 if reason is None else 0), (
            f"SQL took {taken} hold(s), Python says {reason!r}: {case}"
        )

    run_examples(engine, 1500, hold_cases(), check)
    figure(f"rules: pre-checkout cases by the Python form's answer: {_counts(seen)}")
    assert set(seen) >= {
        None,
        "order_not_found",
        "wrong_currency",
        "wrong_amount",
        "order_replaced",
        "order_expired",
        "order_not_pending",
        "not_owner",
        "pack_unavailable",
        "order_held",
    }, seen


def test_the_pay_update_and_the_slow_path_agree(engine: sa.Engine, figure: Callable[[str], None]) -> None:
    """The ledger's fast UPDATE marks the order paid exactly when the slow path would: no
    ``payable.problem`` and no refund that came first."""
    lock_user = engine.dialect.name == "postgresql"
    seen: Counter[str | None] = Counter()

    def check(
        session: Session, case: tuple[dict[str, Any], dict[str, Pack], payable.Charge, dict[str, Any] | None]
    ) -> None:
        row, packs, charge, notice_row = case
        session.add(Order(**row))
        if notice_row is not None:
            session.add(RefundNotice(**notice_row))
        session.flush()
        order = _load_order(session, charge.order_id)
        notice = session.scalar(
            sa.select(RefundNotice).where(RefundNotice.telegram_payment_charge_id == charge.charge_id)
        )
        problem = payable.problem(order, charge, packs)
        refund_first = payable.refund_came_first(notice)
        python_pays = problem is None and not refund_first
        paid = session.execute(
            _pay_order_statement(sold.prices(packs), lock_user), {**charge.params(), "p_now": NOW}
        ).all()
        seen["refund_came_first" if problem is None and refund_first else problem] += 1
        assert len(paid) == (1 if python_pays else 0), (
            f"SQL paid {len(paid)} order(s), Python: {problem=}, {refund_first=}: {case}"
        )

    run_examples(engine, 800, pay_cases(), check)
    figure(f"rules: payment cases by the Python form's answer: {_counts(seen)}")
    assert set(seen) >= {
        None,
        "unknown_order",
        "amount_mismatch",
        "pack_unavailable",
        "order_already_paid",
        "refund_came_first",
    }, seen


def test_what_an_order_sells_agrees(engine: sa.Engine) -> None:
    """``sold.clause`` selects an order exactly when ``sold.pack_of`` finds its pack."""

    def check(session: Session, case: tuple[dict[str, Any], dict[str, Pack]]) -> None:
        row, packs = case
        session.add(Order(**row))
        session.flush()
        order = _load_order(session, ORDER_ID)
        assert order is not None
        pack = sold.pack_of(order, packs)
        selected = session.scalars(sa.select(Order.id).where(sold.clause(sold.prices(packs)))).all()
        assert selected == ([ORDER_ID] if pack is not None else []), f"Python sells {pack!r}: {case}"
        if pack is not None and row.get("pack_title") is None:
            assert pack == packs[row["pack_id"]]  # an older order sells the catalogue's pack

    run_examples(engine, 300, orders(), check)


payments = st.lists(
    st.fixed_dictionaries(
        {
            "problem": st.sampled_from(
                [None, "order_already_paid", "unknown_order", "amount_mismatch", "refunded_before_paid"]
            ),
            "status": st.sampled_from([PaymentStatus.PAID, PaymentStatus.REFUNDED]),
            "credited": st.booleans(),
        }
    ),
    min_size=1,
    max_size=6,
)


def test_due_refunds_agree(engine: sa.Engine) -> None:
    """``refund_due.clause`` (``ledger.due_refunds``, the overview's count) selects exactly the
    payments ``refund_due.is_due`` (the ledger, right after recording one) finds due."""

    def check(session: Session, case: list[dict[str, Any]]) -> None:
        for n, fields in enumerate(case):
            session.add(
                Payment(
                    telegram_payment_charge_id=f"charge-{n}",
                    user_id=OWNER,
                    payer_id=OWNER,
                    stars=10,
                    currency="XTR",
                    invoice_payload="order:o1",
                    paid_at=NOW,
                    **fields,
                )
            )
        session.flush()
        session.expunge_all()
        rows = session.scalars(sa.select(Payment)).all()
        python_due = sorted(p.telegram_payment_charge_id for p in rows if refund_due.is_due(p))
        sql_due = sorted(
            session.scalars(sa.select(Payment.telegram_payment_charge_id).where(refund_due.clause())).all()
        )
        assert sql_due == python_due, case

    run_examples(engine, 300, payments, check)
