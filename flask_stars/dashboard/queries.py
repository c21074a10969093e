"""What the dashboard reads: aggregate SQL (GROUP BY day and pack) and keyset pages.

Nothing here loops over ledger rows in Python: totals are summed by the database, lists
are pages of at most ``PAGE_SIZE`` rows taken by id (``WHERE id < :before ORDER BY id DESC``,
the primary key), never by OFFSET, so a page costs the same at row 10 and row 10^6.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..audit import ARCHIVE, REFUND, REPLAY
from ..ledger import due_refund_clause
from ..models import (
    INT64_MAX,
    AuditEntry,
    Meta,
    Order,
    OrderStatus,
    Payment,
    PaymentStatus,
    ReconcileRun,
    Subscription,
    SubscriptionState,
    UpdateKind,
    UpdateLog,
    utcnow,
)
from ..reconcile import Position

PAGE_SIZE = 50
EXPORT_CHUNK = 1000
RENEWAL_WINDOW = timedelta(days=7)
NO_PACK = ""  # the pack key of payments that matched no order
RECONCILE_DUE = timedelta(days=1)  # the overview warns when no run succeeded for this long
INT64_MIN = -INT64_MAX - 1  # with models.INT64_MAX: the ids and user ids a BIGINT column can hold
_INTEGER = re.compile(r"-?[0-9]{1,19}")


def parse_int64(value: str) -> int | None:
    """``value`` as a signed 64-bit integer (ASCII digits, an optional minus), or None.

    ``str.isdigit`` is not enough: it accepts "²", which ``int`` refuses, and any number of
    digits, which the database cannot bind.
    """
    if not _INTEGER.fullmatch(value):
        return None
    number = int(value)
    return number if INT64_MIN <= number <= INT64_MAX else None


def storable_text(value: str) -> bool:
    """Whether ``value`` can be compared with a text column on every database: no NUL (which
    PostgreSQL's text cannot hold, so the driver refuses it) and no lone surrogate (which
    cannot be encoded at all)."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass
class DayPack:
    """One day and pack of the ledger: payments, Stars paid, Stars of them refunded since."""

    day: date
    pack: str
    payments: int
    stars: int
    refunded: int


@dataclass
class Revenue:
    """The ledger per day and pack over ``days`` days (today included), oldest first."""

    days: list[date]
    packs: list[str]
    cells: dict[tuple[date, str], DayPack]

    def cell(self, day: date, pack: str) -> DayPack:
        return self.cells.get((day, pack)) or DayPack(day, pack, 0, 0, 0)

    def day_total(self, day: date) -> DayPack:
        return _summed(day, [self.cell(day, p) for p in self.packs])

    @property
    def total(self) -> DayPack:
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

    Refunds count on the day of the payment they give back, as ``flask stars stats`` does.
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


@dataclass
class Conversion:
    opened: int
    paid: int

    @property
    def rate(self) -> float | None:
        return self.paid / self.opened if self.opened else None


def conversion(session: Session, days: int) -> Conversion:
    """Invoices (orders) opened in the last ``days`` days, and how many of them were paid."""
    since = utcnow() - timedelta(days=days)
    paid = sa.case((Order.status.in_((OrderStatus.PAID, OrderStatus.REFUNDED)), 1), else_=0)
    opened, paid_count = session.execute(
        sa.select(sa.func.count(), sa.func.sum(paid)).where(
            Order.created_at >= since, Order.status != OrderStatus.FAILED
        )
    ).one()
    return Conversion(int(opened or 0), int(paid_count or 0))


@dataclass
class SubscriptionCounts:
    active: int
    renewals_due: int


def subscription_counts(session: Session) -> SubscriptionCounts:
    """Active plans (not expired), and those Telegram renews within ``RENEWAL_WINDOW``."""
    now = utcnow()
    due = sa.case((Subscription.expires_at <= now + RENEWAL_WINDOW, 1), else_=0)
    active, renewals = session.execute(
        sa.select(sa.func.count(), sa.func.sum(due)).where(
            Subscription.state == SubscriptionState.ACTIVE,
            sa.or_(Subscription.expires_at.is_(None), Subscription.expires_at > now),
        )
    ).one()
    return SubscriptionCounts(int(active or 0), int(renewals or 0))


def failed_filter() -> Any:
    """Payment updates kept unprocessed (what ``flask stars replay --failed`` replays).

    ``processed = false`` (not ``IS false``) is the predicate of the partial index
    ``ix_stars_updates_unprocessed``, so the planner uses it instead of scanning the log.
    """
    return UpdateLog.failed()


def archived_filter() -> Any:
    """Updates an operator archived (``flask stars archive``, the dashboard's Archive)."""
    return UpdateLog.archived_at.is_not(None)


def failed_count(session: Session) -> int:
    return int(session.scalar(sa.select(sa.func.count()).select_from(UpdateLog).where(failed_filter())) or 0)


def due_refund_count(session: Session) -> int:
    """Second payments for paid orders still to give back (``ledger.due_refunds``, counted)."""
    count = sa.select(sa.func.count()).select_from(Payment).where(due_refund_clause())
    return int(session.scalar(count) or 0)


def reconcile_offset(session: Session, key: str) -> int | None:
    """How many of one bot's Telegram transactions reconcile has read: the position saved
    under ``key`` (``reconcile.position_key``); None when none is (or it cannot be read)."""
    row = session.get(Meta, key)
    if row is None:
        return None
    try:
        return Position.loads(row.value).offset
    except ValueError:
        return None


def reconcile_runs(session: Session, limit: int = 100) -> list[ReconcileRun]:
    """The newest recorded reconcile runs, newest first (reconcile keeps 100)."""
    return list(session.scalars(sa.select(ReconcileRun).order_by(ReconcileRun.id.desc()).limit(limit)))


@dataclass
class ReconcileHealth:
    """What the overview says about reconcile: its newest run, and its newest good one."""

    last: ReconcileRun | None
    last_ok: ReconcileRun | None
    now: datetime

    @property
    def overdue(self) -> bool:
        """No run finished well within ``RECONCILE_DUE`` (or none ever did)."""
        done = self.last_ok.finished_at if self.last_ok is not None else None
        return done is None or self.now - done > RECONCILE_DUE

    @property
    def last_failed(self) -> bool:
        """The newest run that ended, ended with an error."""
        return self.last is not None and self.last.ok is False

    @property
    def last_warning(self) -> bool:
        """The newest run that ended finished with a warning (its saved position did not hold)."""
        return self.last is not None and self.last.ok is True and bool(run_warning(self.last))


def run_warning(run: ReconcileRun) -> str | None:
    """The warning a run's report carries (``ReconcileReport.warning``), if any."""
    report = run.report if isinstance(run.report, dict) else {}
    warning = report.get("warning")
    return warning if isinstance(warning, str) and warning else None


def reconcile_health(session: Session) -> ReconcileHealth:
    """The newest run and the newest successful one (two lookups by primary key order)."""
    newest = sa.select(ReconcileRun).order_by(ReconcileRun.id.desc()).limit(1)
    last = session.scalar(newest.where(ReconcileRun.finished_at.is_not(None)))
    last_ok = last
    if last is None or not last.ok:
        last_ok = session.scalar(newest.where(ReconcileRun.ok.is_(True)))
    return ReconcileHealth(last=last, last_ok=last_ok, now=utcnow())


# --- payments --------------------------------------------------------------------------------


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


@dataclass
class Page:
    """A keyset page: rows newest first, and the ids to ask for the next pages by."""

    rows: list[Any]
    newer: int | None  # ask ``after=newer`` for the page above, if there is one
    older: int | None  # ask ``before=older`` for the page below, if there is one


def keyset_page(
    session: Session,
    model: Any,
    where: list[Any],
    *,
    before: int | None = None,
    after: int | None = None,
    size: int = PAGE_SIZE,
) -> Page:
    """``size`` rows of ``model`` by id, newest first: below ``before``, or just above ``after``.

    One more row than shown is read to know whether a further page exists; no OFFSET.
    """
    key = model.id
    stmt = sa.select(model).where(*where)
    if after is not None:
        rows = list(session.scalars(stmt.where(key > after).order_by(key.asc()).limit(size + 1)))
        more_above = len(rows) > size
        rows = rows[:size][::-1]
        newer = rows[0].id if rows and more_above else None
        older = rows[-1].id if rows else None
        return Page(rows, newer, older)
    if before is not None:
        stmt = stmt.where(key < before)
    rows = list(session.scalars(stmt.order_by(key.desc()).limit(size + 1)))
    more_below = len(rows) > size
    rows = rows[:size]
    newer = rows[0].id if rows and before is not None else None
    older = rows[-1].id if rows and more_below else None
    return Page(rows, newer, older)


def payment_rows(
    session: Session, where: list[Any], columns: Sequence[Any], size: int = EXPORT_CHUNK
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
            chunk = list(session.execute(stmt).all())
        finally:
            session.rollback()
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


# --- the audit trail -----------------------------------------------------------------------


def audit_of_payment(session: Session, payment: Payment, updates: Sequence[UpdateLog]) -> list[AuditEntry]:
    """What operators did to ``payment`` (its refunds, failed ones too) and to the update rows
    behind it (replays, archives), newest first: one SELECT by the target index."""
    about = [sa.and_(AuditEntry.action == REFUND, AuditEntry.target == payment.telegram_payment_charge_id)]
    rows = [str(u.id) for u in updates]
    if rows:
        about.append(sa.and_(AuditEntry.action.in_((REPLAY, ARCHIVE)), AuditEntry.target.in_(rows)))
    stmt = sa.select(AuditEntry).where(sa.or_(*about)).order_by(AuditEntry.id.desc()).limit(PAGE_SIZE)
    return list(session.scalars(stmt))


@dataclass
class Activity:
    """A keyset page of the audit trail, and the payments its refunds name (charge id -> id)."""

    page: Page
    payment_ids: dict[str, int]


def activity(
    session: Session, action: str | None, *, before: int | None = None, after: int | None = None
) -> Activity:
    """Audit entries newest first (of one ``action`` when given), a keyset page at a time,
    and the payment id of each refund's charge (one more SELECT, by the unique charge id)."""
    where = [AuditEntry.action == action] if action else []
    page = keyset_page(session, AuditEntry, where, before=before, after=after)
    charges = {e.target for e in page.rows if e.action == REFUND and e.target}
    payment_ids: dict[str, int] = {}
    if charges:
        found = session.execute(
            sa.select(Payment.telegram_payment_charge_id, Payment.id).where(
                Payment.telegram_payment_charge_id.in_(charges)
            )
        )
        payment_ids = {charge: payment_id for charge, payment_id in found}
    return Activity(page, payment_ids)


def audit_of_update(session: Session, row: UpdateLog) -> list[AuditEntry]:
    """Replays and archives of the logged update ``row``, newest first."""
    stmt = (
        sa.select(AuditEntry)
        .where(AuditEntry.action.in_((REPLAY, ARCHIVE)), AuditEntry.target == str(row.id))
        .order_by(AuditEntry.id.desc())
        .limit(PAGE_SIZE)
    )
    return list(session.scalars(stmt))


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
