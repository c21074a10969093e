"""Reconciliation: read the bot's Stars transactions from Telegram and mend the ledger.

``getStarTransactions`` lists every transaction, oldest first, ``limit`` at a time. An
incoming ``invoice_payment`` whose charge id is not in the ledger is a payment whose
webhook never arrived: if its payload names one of our orders it is recorded and credited
through ``ledger.record_payment``, the webhook's own path, so exactly-once still holds,
dated when Telegram charged it (``paid_at``; ``found_at`` says when reconcile found it).
An outgoing one is a refund: if the ledger still shows the payment as paid, the refund is
applied (debit callback once), dated the same way. Anything else that cannot be matched
is reported, never "fixed". Pages are handled one at a time, so memory stays flat.

**The position.** How far a run read is kept per bot and environment (``stars_meta`` row
``reconcile:<bot_id>:<environment>``): the offset, and the transaction found at the last
position read. Telegram's list belongs to one bot in one environment: another bot on the
same tables, the test server's bot after the production one, or a sandbox that started
afresh lists other transactions, and an offset alone would skip the new list's first ones
for good. So before resuming at offset N, a run asks for the page that starts at N - 1
(one call) and checks that its first transaction is the one saved; if it is not, or the
list is shorter than that, the run reads from 0 and its report says so with a warning
(a run with a warning never reports a plain "ok"). A ``full`` run reads from 0 anyway and
checks the saved transaction as it passes it. Re-reading is harmless: what the ledger
holds is skipped.

**Runs take turns.** Every run that may change the ledger (not ``dry_run``) is recorded in
``stars_reconcile_runs``: a row committed when it starts (under a write lock, after
checking that no other run is under way: ``ReconcileBusy`` otherwise), its report
committed after each page (the heartbeat) and when it ends, each in a short transaction
of its own, so no transaction is open while Telegram is asked. A run whose heartbeat is
older than ``STALE_AFTER`` is taken as dead (its process died) and marked failed, so it
never blocks the next one for long. Each run ends with an entry in the audit trail.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa

from . import audit
from .db import lock_for_write
from .errors import ReconcileBusy
from .ledger import (
    ChargeReport,
    announce_payment,
    announce_refund,
    apply_refund,
    due_refunds,
    record_payment,
    refund,
)
from .models import Meta, Order, Payment, PaymentStatus, ReconcileRun, order_id_from_payload, utcnow
from .packs import XTR

if TYPE_CHECKING:
    from .state import StarsState

log = logging.getLogger(__name__)
#: The ``stars_meta`` key of the position of one bot and environment (``BotIdentity.key`` after it).
POSITION_PREFIX = "reconcile:"
#: The one global offset of flask_stars before per-bot positions: no transaction id to check
#: it by, so it is never trusted; a run reads from 0 once instead, and deletes it.
LEGACY_OFFSET_KEY = "reconcile_offset"
#: ``lock_for_write``'s key: the check for a run under way and the new run's row take turns.
RUN_LOCK = "flask_stars:reconcile-run"
PAGE_SIZE = 100  # Telegram's maximum
MAX_EXAMPLES = 50
#: How many runs ``stars_reconcile_runs`` keeps (the newest); see ``record_start``.
KEEP_RUNS = 100
ERROR_CHARS = 2000
#: A running run writes its report (its heartbeat) after each page, and at least this often.
HEARTBEAT_SECONDS = 30.0
#: A run whose heartbeat is older than this is taken as dead (its process died): it is marked
#: failed and no longer blocks the next run. Longer than any one step between heartbeats (a
#: Bot API call, a credit callback); three Bot API timeouts when ``STARS_API_TIMEOUT`` is longer.
STALE_AFTER = timedelta(minutes=5)

#: Why a saved position was not used (``ReconcileReport.position_problem``).
MOVED = "moved"  # Telegram lists another transaction at the saved position
PAST_END = "past_end"  # Telegram lists fewer transactions than the saved position
UNREADABLE = "unreadable"  # the saved row cannot be read
LEGACY = "legacy"  # only the old global offset was saved: it cannot be checked


@dataclass(frozen=True)
class Position:
    """How far reconcile read one bot's list: ``offset`` transactions, the last one being
    ``last_id`` (with its direction, ``in``/``out``/``none``, and its ``date``): a refund has
    its payment's id, so the id alone does not name a transaction."""

    offset: int
    last_id: str | None = None
    last_direction: str | None = None
    last_date: int | None = None

    @classmethod
    def after(cls, offset: int, tx: dict[str, Any]) -> Position:
        """The position after reading ``offset`` transactions, ``tx`` the last of them."""
        tx_id = tx.get("id")
        date = tx.get("date")
        return cls(
            offset,
            tx_id if isinstance(tx_id, str) else None,
            _direction(tx),
            date if isinstance(date, int) and not isinstance(date, bool) else None,
        )

    def names(self, tx: dict[str, Any] | None) -> bool:
        """Whether ``tx`` (what Telegram lists at ``offset - 1`` now) is the transaction saved."""
        if tx is None or self.last_id is None:
            return False
        here = Position.after(self.offset, tx)
        return (here.last_id, here.last_direction, here.last_date) == (
            self.last_id,
            self.last_direction,
            self.last_date,
        )

    def dumps(self) -> str:
        return json.dumps(
            {
                "offset": self.offset,
                "last_id": self.last_id,
                "last_direction": self.last_direction,
                "last_date": self.last_date,
            }
        )

    @classmethod
    def loads(cls, text: str) -> Position:
        """The saved position; ``ValueError`` when ``text`` is not one."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        offset, last_id, direction, date = (
            data.get("offset"),
            data.get("last_id"),
            data.get("last_direction"),
            data.get("last_date"),
        )
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            raise ValueError("no offset")
        if offset > 0 and not isinstance(last_id, str):
            raise ValueError("no transaction id")
        return cls(
            offset,
            last_id if isinstance(last_id, str) else None,
            direction if isinstance(direction, str) else None,
            date if isinstance(date, int) and not isinstance(date, bool) else None,
        )


@dataclass
class ReconcileReport:
    """What a run found and did (or, with ``dry_run``, would do)."""

    dry_run: bool = False
    full: bool = False
    #: The run's row in ``stars_reconcile_runs`` (None for a dry run).
    run_id: int | None = None
    #: Who started it: ``"name (source)"`` of its ``audit.Actor``.
    actor: str | None = None
    #: The ``stars_meta`` key of the position this run read from and saved.
    position_key: str | None = None
    #: The position found saved when the run started (None: none was).
    saved_offset: int | None = None
    #: Why the saved position was not used (``MOVED``, ``PAST_END``, ``UNREADABLE``, ``LEGACY``).
    position_problem: str | None = None
    start_offset: int = 0
    end_offset: int = 0
    read: int = 0
    already_recorded: int = 0
    credited: int = 0
    recorded_not_credited: int = 0
    refunds_applied: int = 0
    refunds_noted: int = 0
    due_refunds_finished: int = 0
    unmatched: int = 0
    other: int = 0
    #: Something the operator must know (the saved position did not match): the run's
    #: outcome is then ``warning``, never a plain "ok".
    warning: str | None = None
    #: Something the operator may like to know ("no new transactions since position N").
    note: str | None = None
    examples: list[dict[str, Any]] = field(default_factory=list)

    def counts(self) -> dict[str, Any]:
        """The report as plain data (the counts, the offsets and the unmatched examples)."""
        return asdict(self)

    @property
    def outcome(self) -> str:
        """``audit.WARNING`` when the run has a warning, else ``audit.OK``."""
        return audit.WARNING if self.warning else audit.OK

    def rows(self) -> list[tuple[str, int]]:
        would = "would be " if self.dry_run else ""
        return [
            ("transactions read", self.read),
            ("already in the ledger", self.already_recorded),
            (f"missed payments {would}credited", self.credited),
            (f"missed payments {would}recorded, not credited", self.recorded_not_credited),
            (f"missed refunds {would}applied", self.refunds_applied),
            (f"refunds of unseen payments {would}kept for them", self.refunds_noted),
            (f"due refunds of second payments {would}finished", self.due_refunds_finished),
            ("unmatched (reported, not changed)", self.unmatched),
            ("other transactions (not payments)", self.other),
        ]

    def summary(self) -> str:
        """The run in one line: what it read, what it changed, and its warning or note."""
        if self.read:
            line = f"read {self.read} transaction(s), positions {self.start_offset} to {self.end_offset}"
        else:
            line = f"read no transaction (position {self.end_offset})"
        changed = [
            f"{count} {label}"
            for label, count in self.rows()[1:]
            if count and not label.startswith(("already", "other"))
        ]
        line += ": " + (", ".join(changed) if changed else "nothing to mend")
        for extra in (self.warning, self.note):
            if extra:
                line += f". {extra}"
        return line

    def _example(self, tx: dict[str, Any], why: str) -> None:
        self.unmatched += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(
                {"id": tx.get("id"), "amount": tx.get("amount"), "date": tx.get("date"), "why": why}
            )

    def _position_problem(self, problem: str, saved: int | None) -> None:
        """Say why the saved position was not used (a warning, unless it is the legacy offset)."""
        self.position_problem = problem
        if problem == LEGACY:
            self.note = (
                f"The position saved by an earlier flask_stars ({saved} transactions, no transaction "
                "id to check it by) was not used: every transaction was read from the start once"
            )
            return
        why = {
            MOVED: f"Telegram no longer lists the transaction saved at position {saved}",
            PAST_END: f"the saved position {saved} is past the end of Telegram's list",
            UNREADABLE: "the saved position could not be read",
        }[problem]
        self.warning = (
            f"{why} (another bot or environment on these tables, or a sandbox that started afresh): "
            "every transaction was read again from the start (position 0)"
        )


def _kind(tx: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """("in" | "out" | "other", partner): a user's invoice payment, its refund, or else."""
    for direction, key in (("in", "source"), ("out", "receiver")):
        partner = tx.get(key)
        if isinstance(partner, dict):
            if (
                partner.get("type") == "user"
                and partner.get("transaction_type", "invoice_payment") == "invoice_payment"
            ):
                return direction, partner
            return "other", partner
    return "other", {}


def _direction(tx: dict[str, Any]) -> str:
    """``in`` (it has a source), ``out`` (a receiver) or ``none``."""
    if isinstance(tx.get("source"), dict):
        return "in"
    return "out" if isinstance(tx.get("receiver"), dict) else "none"


def _telegram_date(tx: dict[str, Any]) -> datetime | None:
    """The transaction's ``date`` (Unix seconds, UTC) as an aware datetime; None when unusable."""
    date = tx.get("date")
    if not isinstance(date, int) or isinstance(date, bool) or date <= 0:
        return None
    try:
        return datetime.fromtimestamp(date, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def position_key(state: StarsState) -> str:
    """The ``stars_meta`` key of the position of the bot and environment ``state`` speaks for."""
    return POSITION_PREFIX + state.bot_identity.key


def saved_position(state: StarsState) -> Position | None:
    """The position saved for this bot and environment (None: none, or unreadable); ends its read."""
    session = state.session
    row = session.get(Meta, position_key(state), populate_existing=True)
    text = row.value if row is not None else None
    session.rollback()
    if text is None:
        return None
    try:
        return Position.loads(text)
    except ValueError:
        return None


def save_position(state: StarsState, position: Position | None) -> None:
    """Commit ``position`` as this bot's (None: forget it); the legacy global offset goes too."""
    session = state.session
    try:
        _put_position(state, position)
        session.commit()
    except Exception:
        session.rollback()
        raise


def _put_position(state: StarsState, position: Position | None) -> None:
    """``save_position``'s writes, in the caller's transaction."""
    session = state.session
    key = position_key(state)
    session.execute(sa.delete(Meta).where(Meta.key == LEGACY_OFFSET_KEY))
    row = session.get(Meta, key, populate_existing=True)
    if position is None:
        if row is not None:
            session.delete(row)
    elif row is None:
        session.add(Meta(key=key, value=position.dumps()))
    else:
        row.value = position.dumps()


def reconcile(
    state: StarsState,
    *,
    dry_run: bool = False,
    full: bool = False,
    on_page: Callable[[ReconcileReport], None] | None = None,
    page_size: int = PAGE_SIZE,
    actor: audit.Actor | None = None,
) -> ReconcileReport:
    """Page through getStarTransactions from the saved position, checked (``full``: from 0).

    The run is recorded in ``stars_reconcile_runs`` (``record_start``, a heartbeat after
    each page, ``record_end``), a failed one with its error before the error is raised
    again, and in the audit trail (action ``reconcile``, the run's id, by ``actor``, the
    Python API's when None; outcome ``ok``, ``warning`` or ``failed``). ``ReconcileBusy``
    when another run is under way. A ``dry_run`` changes nothing, so it writes no record
    either (nor would it tell that the ledger was mended); it does not take turns.
    ``flask stars reconcile``, ``FlaskStars.reconcile`` and the dashboard's Run now all
    come here.
    """
    who = actor or audit.python_actor(None)
    report = ReconcileReport(dry_run=dry_run, full=full, actor=f"{who.name} ({who.source})")
    report.position_key = position_key(state)
    if dry_run:
        _run(
            state, report, who, full=full, on_page=on_page, page_size=page_size, beat=_Heartbeat(state, None)
        )
        return report
    run_id = record_start(state, report)
    report.run_id = run_id
    beat = _Heartbeat(state, run_id)
    try:
        _run(state, report, who, full=full, on_page=on_page, page_size=page_size, beat=beat)
    except BaseException as exc:
        state.session.rollback()
        error = f"{exc.__class__.__name__}: {exc}"
        try:
            record_end(state, run_id, report, error=error)
        except Exception:  # the database is gone too: the row stays unfinished until it is stale
            state.session.rollback()
            log.exception("could not record the failure of reconcile run %s", run_id)
        audit.record(
            state,
            who,
            "reconcile",
            target=run_id,
            outcome=audit.FAILED,
            detail=f"{error}; {report.summary()}",
        )
        raise
    record_end(state, run_id, report)
    if report.warning:
        log.warning("reconcile run %s: %s", run_id, report.warning)
    audit.record(state, who, "reconcile", target=run_id, outcome=report.outcome, detail=report.summary())
    return report


def stale_after(state: StarsState) -> timedelta:
    """How long a run may stay silent before it is taken as dead (``STALE_AFTER``, or three
    Bot API timeouts when ``STARS_API_TIMEOUT`` is longer)."""
    timeout = state.settings.api_timeout or 0
    return max(STALE_AFTER, timedelta(seconds=3 * timeout))


def _heartbeat_of(run: ReconcileRun) -> datetime:
    """When run ``run`` last said it was alive (its report's ``heartbeat_at``, else its start)."""
    beat = (run.report or {}).get("heartbeat_at") if isinstance(run.report, dict) else None
    if isinstance(beat, str):
        try:
            parsed = datetime.fromisoformat(beat)
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            return parsed
    return run.started_at


def record_start(state: StarsState, report: ReconcileReport) -> int:
    """Commit a row for a run starting now, and drop all but the newest ``KEEP_RUNS``; its id.

    Runs take turns: under a write lock (``lock_for_write``: a PostgreSQL advisory lock,
    SQLite's ``BEGIN IMMEDIATE``), a run still under way (its heartbeat newer than
    ``stale_after``) refuses this one with ``ReconcileBusy``; a silent one is marked failed
    ("did not finish") first. Then the new row is inserted in the same transaction, so
    two runs starting at once never both start.

    The rows are an operator's log of when reconcile ran and what it found: the ledger
    itself holds every change a run made, so old rows carry nothing the money needs.
    A hundred is over three months of daily runs (four days of hourly ones), all shown on
    one dashboard page, and the table never grows past it.
    """
    session = state.session
    session.rollback()  # start from a clean transaction of our own
    try:
        lock_for_write(session, RUN_LOCK)
        now = utcnow()
        stale = stale_after(state)
        under_way = session.scalars(
            sa.select(ReconcileRun)
            .where(ReconcileRun.finished_at.is_(None), ReconcileRun.ok.is_(None))
            .order_by(ReconcileRun.id)
            .execution_options(populate_existing=True)
        ).all()
        for other in under_way:
            beat = _heartbeat_of(other)
            if now - beat <= stale:
                who = (other.report or {}).get("actor") if isinstance(other.report, dict) else None
                raise ReconcileBusy(
                    f"A reconcile run is under way: run {other.id}, started "
                    f"{other.started_at:%Y-%m-%d %H:%M:%S} UTC by {who or 'someone unknown'}; "
                    "try again when it has finished",
                    run_id=other.id,
                    started_at=other.started_at,
                    started_by=who,
                )
            other.finished_at = beat
            other.ok = False
            other.error = (
                f"did not finish: no sign of life since {beat:%Y-%m-%d %H:%M:%S} UTC (its process "
                "died, or lost the database); a later run reads what it missed"
            )
            log.warning("reconcile run %s is taken as dead: %s", other.id, other.error)
        run = ReconcileRun(started_at=now, report={**report.counts(), "heartbeat_at": now.isoformat()})
        session.add(run)
        session.flush()
        run_id = run.id
        cutoff = session.scalar(
            sa.select(ReconcileRun.id).order_by(ReconcileRun.id.desc()).offset(KEEP_RUNS - 1).limit(1)
        )
        if cutoff is not None:
            session.execute(sa.delete(ReconcileRun).where(ReconcileRun.id < cutoff))
        session.commit()
    except Exception:
        session.rollback()
        raise
    return run_id


def record_end(state: StarsState, run_id: int, report: ReconcileReport, error: str | None = None) -> None:
    """Commit how run ``run_id`` ended: its report, and ``error`` when it failed."""
    session = state.session
    try:
        session.execute(
            sa.update(ReconcileRun)
            .where(ReconcileRun.id == run_id)
            .values(
                finished_at=utcnow(),
                ok=error is None,
                report=report.counts(),
                error=None if error is None else error[:ERROR_CHARS],
            )
        )
        session.commit()
    except Exception:
        session.rollback()
        raise


class _Heartbeat:
    """A running run says it is alive: its report, written to its row (nothing for a dry run)."""

    def __init__(self, state: StarsState, run_id: int | None) -> None:
        self.state = state
        self.run_id = run_id
        self.last = time.monotonic()

    def write(self, report: ReconcileReport, position: Position | None = None) -> None:
        """Commit the report as the heartbeat (and ``position``, when given, in the same commit)."""
        if self.run_id is None:
            return
        session = self.state.session
        try:
            if position is not None:
                _put_position(self.state, position)
            session.execute(
                sa.update(ReconcileRun)
                .where(ReconcileRun.id == self.run_id)
                .values(report={**report.counts(), "heartbeat_at": utcnow().isoformat()})
            )
            session.commit()
        except Exception:
            session.rollback()
            raise
        self.last = time.monotonic()

    def maybe(self, report: ReconcileReport) -> None:
        """Write the heartbeat if the last one is ``HEARTBEAT_SECONDS`` old (a long page)."""
        if self.run_id is not None and time.monotonic() - self.last >= HEARTBEAT_SECONDS:
            self.write(report)


def _start(state: StarsState, report: ReconcileReport, full: bool) -> tuple[Position | None, int]:
    """Where to start reading: the position to check (None: nothing to check) and the offset
    of the first page, after reading what was saved (and ending that read)."""
    session = state.session
    row = session.get(Meta, report.position_key, populate_existing=True)
    text = row.value if row is not None else None
    legacy = None
    if text is None:
        old = session.get(Meta, LEGACY_OFFSET_KEY, populate_existing=True)
        legacy = old.value if old is not None else None
    session.rollback()
    if text is None:
        if legacy is not None and legacy.strip() not in ("", "0"):
            report._position_problem(LEGACY, int(legacy) if legacy.strip().isdigit() else None)
        return None, 0
    try:
        saved = Position.loads(text)
    except ValueError:
        report._position_problem(UNREADABLE, None)
        return None, 0
    report.saved_offset = saved.offset
    if saved.offset == 0:
        return None, 0
    return saved, 0 if full else saved.offset - 1


def _run(
    state: StarsState,
    report: ReconcileReport,
    actor: audit.Actor,
    *,
    full: bool,
    on_page: Callable[[ReconcileReport], None] | None,
    page_size: int,
    beat: _Heartbeat,
) -> None:
    """The run itself, filling ``report`` as it goes (so a failed run's report says how far it got)."""
    dry_run = report.dry_run
    check, offset = _start(state, report, full)
    resuming = check is not None and not full
    report.start_offset = report.end_offset = offset + (1 if resuming else 0)
    while True:
        page = state.gateway.star_transactions(offset, page_size)
        new = page
        if check is not None and offset <= check.offset - 1 < offset + len(page):
            matched = check.names(page[check.offset - 1 - offset])
            if not matched:
                report._position_problem(MOVED, check.offset)
            elif resuming:
                new = page[1:]  # the saved transaction itself: read last time
            check = None
        elif check is not None and resuming:
            # Nothing at the saved position: the list is shorter than it was.
            report._position_problem(PAST_END, check.offset)
            check = None
        if resuming and report.position_problem is not None:
            # The saved position does not hold: read Telegram's list from its start.
            resuming = False
            offset = report.start_offset = report.end_offset = 0
            continue
        resuming = False
        # Applied in Telegram's order, each seeing what the ones before it wrote: a refund
        # listed after its payment on the same page finds the payment just recorded.
        known = _ledger_statuses(state, new)
        for tx in new:
            _one(state, tx, known, report, dry_run)
            beat.maybe(report)
        offset += len(page)
        report.read += len(new)
        report.end_offset = offset
        if not dry_run and page:
            beat.write(report, Position.after(offset, page[-1]))
        if on_page is not None:
            on_page(report)
        if len(page) < page_size:
            break
    if check is not None:  # a full run that never reached the saved position
        report._position_problem(PAST_END, check.offset)
    if not dry_run and report.end_offset == 0 and (report.saved_offset or report.position_problem):
        save_position(state, None)  # nothing listed now: the saved position (or the legacy one) goes
    if report.read == 0 and not report.warning:
        report.note = report.note or (
            f"no new transactions since position {report.end_offset}"
            if report.end_offset
            else "Telegram lists no transactions for this bot yet"
        )
    if dry_run:
        report.due_refunds_finished = len(due_refunds(state))
    else:
        for charge_id in due_refunds(state):
            refund(
                state,
                charge_id,
                reason="a second payment for a paid order, finished by reconcile",
                actor=actor,
            )
            report.due_refunds_finished += 1
            beat.write(report)


def _ledger_statuses(state: StarsState, page: list[dict[str, Any]]) -> dict[str, str]:
    """The ledger status of every charge on the page, in one query."""
    ids = [tx["id"] for tx in page if isinstance(tx.get("id"), str)]
    if not ids:
        return {}
    rows = state.session.execute(
        sa.select(Payment.telegram_payment_charge_id, Payment.status).where(
            Payment.telegram_payment_charge_id.in_(ids)
        )
    ).all()
    state.session.rollback()
    return {charge_id: status for charge_id, status in rows}


def _one(
    state: StarsState, tx: dict[str, Any], known: dict[str, str], report: ReconcileReport, dry_run: bool
) -> None:
    """One transaction; ``known`` maps charge ids to ledger statuses and is kept current."""
    direction, partner = _kind(tx)
    charge_id = tx.get("id")
    if direction == "other" or not isinstance(charge_id, str) or not charge_id:
        report.other += 1
        return
    status = known.get(charge_id)
    session = state.session
    if direction == "out":
        if status == PaymentStatus.REFUNDED:
            report.already_recorded += 1
            return
        if status is None:
            # A refund of a payment whose webhook never came: kept, as the webhook path
            # keeps it, and applied when the payment is recorded (nothing is credited then).
            report.refunds_noted += 1
        else:
            report.refunds_applied += 1
        known[charge_id] = PaymentStatus.REFUNDED
        if not dry_run:
            refunded_at = _telegram_date(tx)
            _commit(
                state,
                lambda: apply_refund(
                    state, charge_id, int(tx.get("amount") or 0), refunded_at=refunded_at, found_at=utcnow()
                ),
            )
        return
    if status is not None:
        report.already_recorded += 1
        return
    payload = partner.get("invoice_payload") or ""
    user = partner.get("user") or {}
    order_id = order_id_from_payload(payload)
    order = session.get(Order, order_id) if order_id else None
    session.rollback()
    if order is None or not isinstance(user.get("id"), int):
        report._example(tx, "an incoming payment whose payload names none of our orders")
        return
    known[charge_id] = PaymentStatus.PAID
    if dry_run:
        report.credited += 1
        return
    charge = ChargeReport(
        telegram_payment_charge_id=charge_id,
        currency=XTR,
        total_amount=int(tx.get("amount") or 0),
        invoice_payload=payload,
        user_id=user["id"],
        language_code=user.get("language_code"),
        is_recurring=bool(partner.get("subscription_period")),
        raw={"star_transaction": tx},
        paid_at=_telegram_date(tx),  # when Telegram charged it, not when reconcile ran
        found_at=utcnow(),
    )
    # The full path (fast=False): it looks the charge up first, so a charge the webhook
    # recorded in the meantime is found, never met as a failed INSERT mid-run.
    result = _commit(state, lambda: record_payment(state, charge, fast=False))
    announce_payment(state, result)
    if result.duplicate_delivery:
        report.already_recorded += 1  # the webhook got there in the meantime
    elif result.credited:
        report.credited += 1
        log.warning("reconcile credited %s, whose webhook never arrived", charge_id)
    else:
        report.recorded_not_credited += 1


T = TypeVar("T")


def _commit(state: StarsState, change: Callable[[], T]) -> T:
    """Run one ledger change in its own transaction and commit it (roll back on error)."""
    try:
        result = change()
        state.session.commit()
    except Exception:
        state.session.rollback()
        raise
    if isinstance(result, Payment):
        announce_refund(state, result, "found by reconcile")
    return result
