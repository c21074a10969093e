"""Reads the operator's tools share: ``flask stars`` and the dashboard ask them here.

Totals are summed by the database (one GROUP BY day and pack), never again in Python, so
``flask stars stats`` and the dashboard's overview give the same figures from the same
query. Nothing here writes, commits or knows of HTTP or click.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .models import Payment, PaymentStatus, UpdateLog, utcnow

NO_PACK = ""  # the pack key of payments that matched no order


@dataclass
class DayPack:
    """One day and pack of the ledger: payments, Stars paid, Stars of them refunded since."""

    day: date
    pack: str
    payments: int
    stars: int
    refunded: int

    @property
    def net(self) -> int:
        """Stars paid less Stars refunded."""
        return self.stars - self.refunded


@dataclass
class Revenue:
    """The ledger per day and pack over ``days`` days (today included), oldest first."""

    days: list[date]
    packs: list[str]
    cells: dict[tuple[date, str], DayPack]

    def cell(self, day: date, pack: str) -> DayPack:
        """The figures of ``day`` and ``pack`` (zeros when it had no payment)."""
        return self.cells.get((day, pack)) or DayPack(day, pack, 0, 0, 0)

    def day_total(self, day: date) -> DayPack:
        """Every pack of ``day`` added up."""
        return _summed(day, [self.cell(day, p) for p in self.packs])

    @property
    def total(self) -> DayPack:
        """Every day and pack added up."""
        return _summed(self.days[0], list(self.cells.values()))


def _summed(day: date, parts: list[DayPack]) -> DayPack:
    """``parts`` added up, under ``day`` and no pack."""
    return DayPack(
        day,
        "",
        sum(p.payments for p in parts),
        sum(p.stars for p in parts),
        sum(p.refunded for p in parts),
    )


def _day_expr(session: Session) -> Any:
    """The UTC day of ``paid_at`` (stored as naive UTC on both databases)."""
    if session.get_bind(Payment).dialect.name == "postgresql":
        return sa.cast(Payment.paid_at, sa.Date)
    return sa.func.substr(Payment.paid_at, 1, 10)


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def revenue(session: Session, days: int, today: date | None = None) -> Revenue:
    """Stars per day and pack, one GROUP BY over the payments of the last ``days`` days.

    The window is whole UTC days: today and the ``days - 1`` before it. Refunds count on
    the day of the payment they give back.
    """
    today = today or utcnow().date()
    first = today - timedelta(days=days - 1)
    since = datetime.combine(first, time.min, tzinfo=UTC)
    day = _day_expr(session).label("day")
    refunded = sa.case((Payment.status == PaymentStatus.REFUNDED, Payment.stars), else_=0)
    rows = session.execute(
        sa.select(
            day,
            sa.func.coalesce(Payment.pack_id, NO_PACK),
            sa.func.count(),
            sa.func.sum(Payment.stars),
            sa.func.sum(refunded),
        )
        .where(Payment.paid_at >= since)
        # By the column, not by its COALESCE: PostgreSQL takes the two COALESCEs (each with
        # its own bind parameter) for different expressions and refuses the query.
        .group_by(day, Payment.pack_id)
    ).all()
    cells: dict[tuple[date, str], DayPack] = {}
    for d, pack, n, s, r in rows:
        key = (_as_date(d), pack)
        cell = cells.setdefault(key, DayPack(key[0], pack, 0, 0, 0))
        cell.payments += int(n)
        cell.stars += int(s or 0)
        cell.refunded += int(r or 0)
    return Revenue(
        days=[first + timedelta(days=i) for i in range(days)],
        packs=sorted({pack for _, pack in cells}, key=lambda p: (p == NO_PACK, p)),
        cells=cells,
    )


def failed_updates() -> sa.ColumnElement[bool]:
    """The ``stars_updates`` rows still failed: not processed, not archived (what ``flask
    stars replay --failed`` replays, ``flask stars updates`` and the dashboard list), by
    ``UpdateLog.failed()``, which the partial index ``ix_stars_updates_unprocessed`` serves."""
    return UpdateLog.failed()


def archived_updates() -> sa.ColumnElement[bool]:
    """The ``stars_updates`` rows an operator archived (``flask stars archive``, the
    dashboard's Archive)."""
    return UpdateLog.archived_at.is_not(None)
