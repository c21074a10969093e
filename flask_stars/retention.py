"""Retention of the raw update log (``stars_updates``): what ``flask stars prune`` deletes.

Only handled rows of kinds that never move money are ever deleted: pre-checkout queries
(every refused one adds a row) and subscription state updates, once they are older than
``STARS_UPDATE_RETENTION_DAYS``. Money updates (``successful_payment``,
``refunded_payment``), any kind not listed here, and every row not processed yet (it may
still be replayed) are kept for good.

Rows are deleted in small batches, each in its own short transaction, so a large backlog
never holds a long lock on the table the webhook writes to.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa

from .models import UpdateKind, UpdateLog, utcnow
from .transaction import end_read, unit_of_work

if TYPE_CHECKING:
    from .state import StarsState

__all__ = ["DEFAULT_BATCH", "PRUNABLE_KINDS", "PruneResult", "prune_updates"]

#: The only kinds of ``stars_updates`` rows a prune may delete (an allow-list: a kind added
#: later is kept until it is listed here).
PRUNABLE_KINDS: tuple[str, ...] = (UpdateKind.PRE_CHECKOUT, UpdateKind.SUBSCRIPTION)
#: Rows deleted per transaction.
DEFAULT_BATCH = 500


@dataclass(frozen=True)
class PruneResult:
    """What a prune did (or, in a dry run, would do)."""

    #: rows deleted, or that a dry run would delete
    count: int
    #: rows older than this were candidates; None when retention is off
    cutoff: datetime | None
    dry_run: bool


def _prunable(cutoff: datetime) -> sa.ColumnElement[bool]:
    return sa.and_(
        UpdateLog.kind.in_(PRUNABLE_KINDS),
        UpdateLog.processed.is_(True),
        UpdateLog.received_at < cutoff,
    )


def prune_updates(
    state: StarsState,
    *,
    days: int | None = None,
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH,
    now: datetime | None = None,
) -> PruneResult:
    """Delete handled non-money rows of ``stars_updates`` older than the retention.

    ``days`` overrides ``STARS_UPDATE_RETENTION_DAYS``; when both are None nothing is
    deleted. ``dry_run`` only counts. Deletes ``batch_size`` rows per transaction.
    """
    if batch_size <= 0:
        raise ValueError("batch_size must be positive")
    days = state.settings.update_retention_days if days is None else days
    if days is None:
        return PruneResult(0, None, dry_run)
    cutoff = (now or utcnow()) - timedelta(days=days)
    session = state.session
    if dry_run:
        count = session.scalar(sa.select(sa.func.count()).select_from(UpdateLog).where(_prunable(cutoff)))
        end_read(state)
        return PruneResult(int(count or 0), cutoff, True)
    deleted = 0
    while True:
        with unit_of_work(state):  # one batch
            ids = session.scalars(
                sa.select(UpdateLog.id).where(_prunable(cutoff)).order_by(UpdateLog.id).limit(batch_size)
            ).all()
            if not ids:
                break
            # The condition again: a row changed since it was read is left alone.
            result = session.execute(
                sa.delete(UpdateLog)
                .where(UpdateLog.id.in_(ids), _prunable(cutoff))
                .execution_options(synchronize_session=False)
            )
        deleted += result.rowcount  # type: ignore[attr-defined]
        if len(ids) < batch_size:
            break
    return PruneResult(deleted, cutoff, False)
