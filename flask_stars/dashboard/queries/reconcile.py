"""The reconcile runs: the list, the saved position, and the overview's health line."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ...models import Meta, ReconcileRun, utcnow
from ...reconcile import Position

RECONCILE_DUE = timedelta(days=1)  # the overview warns when no run succeeded for this long


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
