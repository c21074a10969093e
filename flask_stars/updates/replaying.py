"""Replay: handle logged payment updates again, and tell what truly became of each.

``flask stars replay``, the dashboard's Replay and ``FlaskStars.replay`` all come here.
Each update goes through the intake again (``handle_update``) and takes over its own row
of ``stars_updates``; the row, read afterwards, says whether it is applied now.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from .. import audit
from ..audit import Actor, python_actor
from ..models import INT64_MAX, UpdateKind, UpdateLog
from ..transaction import abandon, end_read
from .intake import Outcome, handle_update
from .parse import storable_update_id
from .rawlog import logged_row, taking_over

if TYPE_CHECKING:
    from ..state import StarsState

log = logging.getLogger(__name__)

_PRE_CHECKOUT_NOT_REPLAYED = "a pre-checkout query is not replayed (Telegram wanted its answer within 10 s)"


@dataclass(frozen=True)
class Replayed:
    """What a replay did with one update.

    ``ok`` is False when the update is still not applied afterwards: its handling raised,
    it was kept unprocessed again, or it could not be replayed at all. ``detail`` says
    what happened (``credited``, ``duplicate update``) or why it failed (with the error
    kept on its row). ``row_id`` is its ``stars_updates`` row, when it has one.
    """

    label: str
    row_id: int | None
    ok: bool
    detail: str
    outcome: Outcome | None = None
    error: Exception | None = None


def replay(
    state: StarsState,
    update_ids: Iterable[int] = (),
    *,
    rows: Iterable[int] = (),
    failed: bool = False,
    actor: Actor | str | None = None,
) -> Iterator[Replayed]:
    """Handle logged payment updates again, yielding a ``Replayed`` per update.

    With ``failed``: first the spooled bodies the database could not take (each file is
    removed once the database holds it), then every failed update (``UpdateLog.failed()``:
    not processed, not archived). ``update_ids`` names rows by Telegram's update id,
    ``rows`` by their own id (a polling bot's update has no update id); an archived
    update is replayed when named so. A name that matches no row, or a pre-checkout
    query (too late to answer), is reported as failed.

    Each update takes over its own row (a polling bot's too), never adds one; exactly-once
    holds (a charge already done is skipped). Each replayed update is recorded in the
    audit trail (``replay``, its row id, ok or failed) as ``actor``: an ``audit.Actor``
    (the CLI's, the dashboard's), or the Python API caller's name (``"python"`` if None).
    """
    who = actor if isinstance(actor, Actor) else python_actor(actor)
    handled: set[int] = set()  # rows a spooled body just went to: not handled twice in one run
    if failed:
        yield from _replay_spool(state, who, handled)
    update_ids, rows = tuple(update_ids), tuple(rows)
    found = _rows_to_replay(state, update_ids, rows, failed)
    yield from _not_found(update_ids, rows, found)
    for row_id, update_id, kind, body in found:
        if row_id in handled:
            continue
        label = f"row {row_id}" + (f" (update {update_id})" if update_id is not None else "")
        if kind == UpdateKind.PRE_CHECKOUT:
            yield Replayed(label, row_id, False, _PRE_CHECKOUT_NOT_REPLAYED)
            continue
        result = _replay_body(state, label, row_id, body)
        _audit(state, who, result, row_id)
        yield result


def _replay_spool(state: StarsState, who: Actor, handled: set[int]) -> Iterator[Replayed]:
    """The spooled bodies, oldest first; each row one went to is added to ``handled``."""
    for path in state.spool.pending():
        try:
            body = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            continue  # another replay took it (exactly-once holds in the ledger either way)
        result = _replay_body(state, f"spooled {path.name}", None, body)
        if result.error is None:
            path.unlink(missing_ok=True)  # the database holds it now: applied, or kept as failed
        if result.row_id is not None:
            handled.add(result.row_id)
        _audit(state, who, result, result.row_id if result.row_id is not None else f"spool:{path.name}")
        yield result


def _rows_to_replay(
    state: StarsState, update_ids: tuple[int, ...], rows: tuple[int, ...], failed: bool
) -> list[Any]:
    """``(id, update_id, kind, body)`` of the rows asked for, oldest first (read, then ended)."""
    chosen: list[Any] = []
    if failed:
        chosen.append(UpdateLog.failed())
    if rows:
        chosen.append(UpdateLog.id.in_([r for r in rows if abs(r) <= INT64_MAX]))
    if update_ids:
        chosen.append(UpdateLog.update_id.in_([u for u in update_ids if abs(u) <= INT64_MAX]))
    if not chosen:
        return []
    session = state.session
    stmt = sa.select(UpdateLog.id, UpdateLog.update_id, UpdateLog.kind, UpdateLog.body)
    found = list(session.execute(stmt.where(sa.or_(*chosen)).order_by(UpdateLog.id)).all())
    end_read(state)
    return found


def _not_found(update_ids: tuple[int, ...], rows: tuple[int, ...], found: list[Any]) -> Iterator[Replayed]:
    row_ids, logged = {r.id for r in found}, {r.update_id for r in found}
    for row_id in dict.fromkeys(rows):
        if row_id not in row_ids:
            yield Replayed(f"row {row_id}", None, False, "no such row in stars_updates")
    for update_id in dict.fromkeys(update_ids):
        if update_id not in logged:
            yield Replayed(f"update {update_id}", None, False, "no such update in stars_updates")


def _replay_body(state: StarsState, label: str, row_id: int | None, body: str) -> Replayed:
    """Handle ``body`` again (taking over row ``row_id``), then read whether its row is processed."""
    update: Any = None
    with taking_over(row_id):
        try:
            update = json.loads(body)
            outcome = handle_update(state, update, body)
        except Exception as exc:
            abandon(state)
            if row_id is None:  # a spooled body: the row it was kept in, if the database took it
                kept = _row_after(state, None, update, body)
                row_id = kept.id if kept is not None else None
            return Replayed(label, row_id, False, f"{exc.__class__.__name__}: {exc}", error=exc)
    # The truth is the row's: processed, or kept with an error (whatever the outcome said).
    row = _row_after(state, row_id, update, body)
    if row is not None:
        row_id = row.id
    if outcome.kept or (row is not None and not row.processed):
        detail = f"{outcome.detail}: {row.error}" if row is not None and row.error else outcome.detail
        return Replayed(label, row_id, False, detail or "not processed", outcome=outcome)
    return Replayed(label, row_id, True, outcome.detail, outcome=outcome)


def _row_after(state: StarsState, row_id: int | None, update: Any, body: str) -> Any:
    """``(id, processed, error)`` of the log row a replay handled: row ``row_id``, or for a
    spooled body the row of that update (None when it has none, or the read failed)."""
    columns = sa.select(UpdateLog.id, UpdateLog.processed, UpdateLog.error)
    try:
        if row_id is not None:
            return state.session.execute(columns.where(UpdateLog.id == row_id)).one_or_none()
        raw_id = update.get("update_id") if isinstance(update, dict) else None
        earlier = logged_row(state, storable_update_id(raw_id), body)
        if earlier is None:
            return None
        return state.session.execute(columns.where(UpdateLog.id == earlier.id)).one_or_none()
    except SQLAlchemyError:
        log.exception("could not read whether replayed update %s is processed", row_id)
        return None
    finally:
        abandon(state)


def _audit(state: StarsState, actor: Actor, result: Replayed, target: int | str) -> None:
    audit.record(
        state,
        actor,
        audit.REPLAY,
        target=target,
        outcome=audit.OK if result.ok else audit.FAILED,
        detail=result.detail,
    )
