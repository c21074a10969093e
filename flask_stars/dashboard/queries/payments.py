"""The payments pages: the filters, the CSV's chunks, and what one payment or update links to."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ...models import Payment, UpdateKind, UpdateLog
from ...state import StarsState
from ...transaction import end_read
from .paging import parse_int64, storable_text

EXPORT_CHUNK = 1000


@dataclass
class PaymentFilter:
    """The payments page's filters; ``errors`` names the ones given but not valid."""

    user: int | None = None
    pack: str | None = None
    status: str | None = None  # paid | refunded | problem
    date_from: date | None = None
    date_to: date | None = None
    charge: str | None = None
    errors: list[str] = field(default_factory=list)

    STATUSES = ("paid", "refunded", "problem")

    @classmethod
    def parse(cls, args: Any) -> PaymentFilter:
        """Read the filters from a query string (invalid values are left out and named in ``errors``)."""
        f = cls()
        user = (args.get("user") or "").strip()
        if user:
            f.user = parse_int64(user)
            if f.user is None:
                f.errors.append("user")
        pack = (args.get("pack") or "").strip()
        f.pack = pack[:64] or None
        if f.pack is not None and not storable_text(f.pack):
            f.pack = None
            f.errors.append("pack")
        status = (args.get("status") or "").strip()
        if status:
            if status in cls.STATUSES:
                f.status = status
            else:
                f.errors.append("status")
        for name in ("date_from", "date_to"):
            value = (args.get(name) or "").strip()
            if value:
                try:
                    day = date.fromisoformat(value)
                except ValueError:
                    f.errors.append(name)
                    continue
                if name == "date_to" and day == date.max:  # the day after it has no date
                    f.errors.append(name)
                    continue
                setattr(f, name, day)
        f.charge = (args.get("charge") or "").strip()[:255] or None
        if f.charge is not None and not storable_text(f.charge):
            f.charge = None
            f.errors.append("charge")
        return f

    def query_args(self) -> dict[str, str]:
        """The filters as query-string arguments (for links to other pages and the CSV)."""
        out = {
            "user": "" if self.user is None else str(self.user),
            "pack": self.pack or "",
            "status": self.status or "",
            "date_from": self.date_from.isoformat() if self.date_from else "",
            "date_to": self.date_to.isoformat() if self.date_to else "",
            "charge": self.charge or "",
        }
        return {k: v for k, v in out.items() if v}

    def where(self) -> list[Any]:
        """The filters as WHERE clauses on ``Payment``."""
        clauses: list[Any] = []
        if self.charge:
            clauses.append(Payment.telegram_payment_charge_id == self.charge)
        if self.user is not None:
            clauses.append(Payment.user_id == self.user)
        if self.pack:
            clauses.append(Payment.pack_id == self.pack)
        if self.status == "problem":
            clauses.append(Payment.problem.is_not(None))
        elif self.status:
            clauses.append(Payment.status == self.status)
        if self.date_from:
            clauses.append(Payment.paid_at >= datetime.combine(self.date_from, time.min, tzinfo=UTC))
        if self.date_to:
            end = datetime.combine(self.date_to + timedelta(days=1), time.min, tzinfo=UTC)
            clauses.append(Payment.paid_at < end)
        return clauses


def payment_rows(
    state: StarsState, where: list[Any], columns: Sequence[Any], size: int = EXPORT_CHUNK
) -> Iterator[list[sa.Row[Any]]]:
    """Every payment matching ``where``, newest first, as chunks of ``size`` rows of ``columns``.

    ``columns`` must start with ``Payment.id`` (the key of the next chunk). Each chunk is one
    SELECT of plain column values (no ORM objects, so nothing to reload), keyset by id, and
    its transaction is ended before the chunk is handed out: an export of any size holds one
    chunk in memory and no transaction open while the client reads.
    """
    before: int | None = None
    while True:
        stmt = sa.select(*columns).where(*where).order_by(Payment.id.desc()).limit(size)
        if before is not None:
            stmt = stmt.where(Payment.id < before)
        try:
            chunk = list(state.session.execute(stmt).all())
        finally:
            end_read(state)
        if chunk:
            yield chunk
        if len(chunk) < size:
            return
        before = chunk[-1][0]


def updates_of(session: Session, payment: Payment) -> list[UpdateLog]:
    """The raw update rows behind ``payment``: those with its ``update_id``.

    Uses the ``(update_id, digest)`` unique index; a payment found by reconcile has none.
    """
    if payment.update_id is None:
        return []
    return list(
        session.scalars(
            sa.select(UpdateLog).where(UpdateLog.update_id == payment.update_id).order_by(UpdateLog.id)
        )
    )


def payment_of_update(session: Session, row: UpdateLog) -> Payment | None:
    """The payment the update ``row`` paid or refunded, if the ledger has it: found by the
    charge id in its body (the unique index), not by ``update_id`` (no index there)."""
    if row.kind not in (UpdateKind.SUCCESSFUL_PAYMENT, UpdateKind.REFUNDED_PAYMENT):
        return None
    try:
        message = json.loads(row.body).get("message") or {}
        charge = (message.get(row.kind) or {}).get("telegram_payment_charge_id")
    except (ValueError, AttributeError):  # a malformed update, kept as it came
        return None
    if not isinstance(charge, str) or not charge or not storable_text(charge):
        return None
    return session.scalar(sa.select(Payment).where(Payment.telegram_payment_charge_id == charge))
