"""Archiving a failed update: an operator's word that it needs no replay.

A payment update whose handling failed stays in ``stars_updates`` unprocessed, counted as
failed (the dashboard's warning, the ``flask_stars_failed_updates`` gauge) and replayed
by ``flask stars replay --failed``, until a replay applies it. Some never can be (a
forged or malformed update, one the operator settled by hand): archiving one keeps the
row as it is, with who archived it, when and why, and it stops counting as failed. It
can still be replayed by its row id (``flask stars replay --row ROW_ID``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa

from . import audit
from .audit import Actor, python_actor
from .errors import InvalidRequest, UpdateNotArchivable, UpdateNotFound
from .models import UpdateKind, UpdateLog, utcnow
from .transaction import unit_of_work

if TYPE_CHECKING:
    from sqlalchemy.engine import CursorResult

    from .state import StarsState

#: The longest reason kept with the row (a longer one is cut).
REASON_CHARS = 1000
_ID_MAX = 2**63 - 1  # the largest id a BIGINT column holds


def archive_update(
    state: StarsState, row_id: int, *, reason: str | None, actor: Actor | str | None = None
) -> UpdateLog:
    """Archive the failed update in row ``row_id`` of ``stars_updates``, committed; the row.

    ``reason`` is required (what was done about it, or why nothing needs doing):
    ``InvalidRequest`` without one. ``UpdateNotFound`` if there is no such row,
    ``UpdateNotArchivable`` if it is not a failed update (processed, archived already, or a
    pre-checkout query). Recorded in the audit trail (``archive``, the row id, the reason)
    as ``actor``: an ``audit.Actor``, or the Python API caller's name (``"python"`` if None);
    a refusal for a row is recorded too, as failed.
    """
    who = actor if isinstance(actor, Actor) else python_actor(actor)
    why = _clean(reason or "")[:REASON_CHARS].strip()
    if not why:
        raise InvalidRequest(
            "archiving an update needs a reason: what was done about it, or why it needs no replay",
            fields={"reason": ["Missing data for required field."]},
        )
    try:
        with unit_of_work(state, keep_loaded=True):
            row = _archive(state, row_id, who, why)
            what = f"{row.kind} update {row.update_id if row.update_id is not None else '(no update_id)'}"
            audit.add(state, who, audit.ARCHIVE, target=row_id, reason=why, detail=f"archived {what}")
    except (UpdateNotFound, UpdateNotArchivable) as exc:
        audit.record(
            state, who, audit.ARCHIVE, target=row_id, reason=why, outcome=audit.FAILED, detail=exc.message
        )
        raise
    state.session.expunge(row)  # still readable after the session moves on
    return row


def _archive(state: StarsState, row_id: int, who: Actor, why: str) -> UpdateLog:
    """Row ``row_id`` marked archived in the caller's unit of work, if it is a failed update."""
    if not 0 < row_id <= _ID_MAX:
        raise UpdateNotFound(f"no row {row_id} in stars_updates")
    session = state.session
    # Only while it is failed, checked in the UPDATE itself: a replay that applies it at the
    # same moment wins, and the archive is refused.
    result = session.execute(
        sa.update(UpdateLog)
        .where(UpdateLog.id == row_id, UpdateLog.failed())
        .values(archived_at=utcnow(), archived_by=_clean(who.name)[:255], archived_reason=why)
        .execution_options(synchronize_session=False)
    )
    archived = cast("CursorResult[Any]", result).rowcount
    row = session.get(UpdateLog, row_id, populate_existing=True)
    if row is None:
        raise UpdateNotFound(f"no row {row_id} in stars_updates")
    if not archived:
        raise UpdateNotArchivable(refusal(row) or f"row {row_id} is not a failed update")
    return row


def refusal(row: UpdateLog) -> str | None:
    """Why ``row`` cannot be archived, in words; None when it can (it is a failed update).

    The Python form of ``UpdateLog.failed()``, which the archive's UPDATE checks itself.
    """
    if row.kind == UpdateKind.PRE_CHECKOUT:
        return f"row {row.id} is a pre-checkout query: only a failed payment update can be archived"
    if row.archived_at is not None:
        when = row.archived_at.isoformat(timespec="seconds")
        return f"row {row.id} is archived already ({when} UTC, by {row.archived_by}: {row.archived_reason})"
    if row.processed:
        return f"row {row.id} is processed: only a failed update can be archived"
    return None


def _clean(text: str) -> str:
    """``text`` as every database can store it: no NUL, no lone surrogate (a CLI argument
    may carry one)."""
    return text.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")
