"""Reconcile runs take turns, each recorded in ``stars_reconcile_runs``.

Every run that may change the ledger (not ``dry_run``) is recorded: a row committed when
it starts (under a write lock, after checking that no other run is under way:
``ReconcileBusy`` otherwise), its report committed after each page (the heartbeat) and
when it ends, each in a short transaction of its own, so no transaction is open while
Telegram is asked. A run whose heartbeat is older than ``STALE_AFTER`` is taken as dead
(its process died) and marked failed, so it never blocks the next one for long.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa

from ..db import lock_for_write
from ..errors import ReconcileBusy
from ..models import ReconcileRun, utcnow
from ..transaction import abandon, unit_of_work
from .position import Position, put_position
from .report import ReconcileReport

if TYPE_CHECKING:
    from ..state import StarsState

log = logging.getLogger(__name__)

#: ``lock_for_write``'s key: the check for a run under way and the new run's row take turns.
RUN_LOCK = "flask_stars:reconcile-run"
#: How many runs ``stars_reconcile_runs`` keeps (the newest); see ``record_start``.
KEEP_RUNS = 100
ERROR_CHARS = 2000
#: A running run writes its report (its heartbeat) after each page, and at least this often.
HEARTBEAT_SECONDS = 30.0
#: A run whose heartbeat is older than this is taken as dead (its process died): it is marked
#: failed and no longer blocks the next run. Longer than any one step between heartbeats (a
#: Bot API call, a credit callback); three Bot API timeouts when ``STARS_API_TIMEOUT`` is longer.
STALE_AFTER = timedelta(minutes=5)


def stale_after(state: StarsState) -> timedelta:
    """How long a run may stay silent before it is taken as dead (``STALE_AFTER``, or three
    Bot API timeouts when ``STARS_API_TIMEOUT`` is longer)."""
    timeout = state.settings.api_timeout or 0
    return max(STALE_AFTER, timedelta(seconds=3 * timeout))


def heartbeat_of(run: ReconcileRun) -> datetime:
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
    abandon(state)  # start from a clean transaction of our own
    with unit_of_work(state):
        lock_for_write(session, RUN_LOCK)
        now = utcnow()
        _end_dead_runs(state, now)
        run = ReconcileRun(started_at=now, report={**report.counts(), "heartbeat_at": now.isoformat()})
        session.add(run)
        session.flush()
        run_id = run.id
        cutoff = session.scalar(
            sa.select(ReconcileRun.id).order_by(ReconcileRun.id.desc()).offset(KEEP_RUNS - 1).limit(1)
        )
        if cutoff is not None:
            session.execute(sa.delete(ReconcileRun).where(ReconcileRun.id < cutoff))
    return run_id


def _end_dead_runs(state: StarsState, now: datetime) -> None:
    """``ReconcileBusy`` if a run is under way; mark the silent ones failed (caller's transaction)."""
    stale = stale_after(state)
    under_way = state.session.scalars(
        sa.select(ReconcileRun)
        .where(ReconcileRun.finished_at.is_(None), ReconcileRun.ok.is_(None))
        .order_by(ReconcileRun.id)
        .execution_options(populate_existing=True)
    ).all()
    for other in under_way:
        beat = heartbeat_of(other)
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


def record_end(state: StarsState, run_id: int, report: ReconcileReport, error: str | None = None) -> None:
    """Commit how run ``run_id`` ended: its report, and ``error`` when it failed."""
    with unit_of_work(state):
        state.session.execute(
            sa.update(ReconcileRun)
            .where(ReconcileRun.id == run_id)
            .values(
                finished_at=utcnow(),
                ok=error is None,
                report=report.counts(),
                error=None if error is None else error[:ERROR_CHARS],
            )
        )


class Heartbeat:
    """A running run says it is alive: its report, written to its row (nothing for a dry run)."""

    def __init__(self, state: StarsState, run_id: int | None) -> None:
        self.state = state
        self.run_id = run_id
        self.last = time.monotonic()

    def write(self, report: ReconcileReport, position: Position | None = None) -> None:
        """Commit the report as the heartbeat (and ``position``, when given, in the same commit)."""
        if self.run_id is None:
            return
        with unit_of_work(self.state):
            if position is not None:
                put_position(self.state, position)
            self.state.session.execute(
                sa.update(ReconcileRun)
                .where(ReconcileRun.id == self.run_id)
                .values(report={**report.counts(), "heartbeat_at": utcnow().isoformat()})
            )
        self.last = time.monotonic()

    def maybe(self, report: ReconcileReport) -> None:
        """Write the heartbeat if the last one is ``HEARTBEAT_SECONDS`` old (a long page)."""
        if self.run_id is not None and time.monotonic() - self.last >= HEARTBEAT_SECONDS:
            self.write(report)
