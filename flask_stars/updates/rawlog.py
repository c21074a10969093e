"""The raw update log, ``stars_updates``: every payment update as it arrived, and what became of it.

A money update's row is written processed in the payment's own transaction
(``claim_update``); any other update's row in a short transaction of its own
(``log_update``); a failed one is kept unprocessed with its error (``keep_failed``), or in
the disk spool when the database is what failed. Two rows are the same update when their
``update_id`` *and* body digest match (``LOG_KEY``); a polling bot's update has no id and is
found by its body.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from .. import metrics
from ..db import insert_unless_exists, lock_and_insert_unless_exists, lock_for_write
from ..models import UpdateKind, UpdateLog, utcnow
from ..schemas import unstorable_text
from ..transaction import abandon, unit_of_work

if TYPE_CHECKING:
    from ..state import StarsState

log = logging.getLogger(__name__)

#: What makes two log rows the same update: its id *and* its body's digest.
LOG_KEY = ("update_id", "digest")

#: The log row a ``replay`` is handling now: a polling bot's update (no ``update_id``) is
#: found by its body, and of several rows with that body this one is taken over.
_replaying_row: ContextVar[int | None] = ContextVar("stars_replaying_row", default=None)


def storable_text(text: str) -> str:
    """``text`` as every database stores it: unchanged, unless it holds a NUL or a lone
    surrogate (``schemas.unstorable_text``), which are written as their JSON escapes
    (``\\u0000``, ``\\udc80``). In an update's JSON text those escapes mean the same, so
    the logged body still parses to the update that arrived."""
    if unstorable_text(text) is None:
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\u0000")


@contextmanager
def taking_over(row_id: int | None) -> Iterator[None]:
    """While a replay handles row ``row_id``: that row is the one its update takes over."""
    token = _replaying_row.set(row_id)
    try:
        yield
    finally:
        _replaying_row.reset(token)


def _log_values(
    update_id: int | None, kind: str, body: str, *, processed: bool, note: str | None
) -> dict[str, Any]:
    now = utcnow()
    return {
        "update_id": update_id,
        "digest": hashlib.sha256(body.encode()).hexdigest(),
        "kind": kind,
        "body": body,
        "attempts": 1,
        "processed": processed,
        "processed_at": now if processed else None,
        "error": note,
        "received_at": now,
        # Every column: PostgreSQL's locked insert (``lock_and_insert_unless_exists``) names them all.
        "archived_at": None,
        "archived_by": None,
        "archived_reason": None,
    }


def _insert_log(state: StarsState, values: dict[str, Any]) -> int | None:
    """Insert a log row unless the same update is logged: its id, or None.

    A row without ``update_id`` is always inserted (``ON CONFLICT`` never matches NULL):
    callers look for its earlier row by body first (``_logged_before``).
    """
    conn = state.session.connection()
    stmt = insert_unless_exists(conn.dialect.name, UpdateLog, LOG_KEY)
    row_id: int | None = conn.execute(stmt, values).scalar()
    return row_id


def _logged_before(state: StarsState, values: dict[str, Any], *, unprocessed: bool = False) -> Any:
    """The log row of the same update, as ``(id, processed)``; None if there is none.

    With an ``update_id``: the row with that id *and* body (the unique key). Without one (a
    polling bot's update): a row with the same body and no id, the row being replayed
    first, then one not processed yet (a failed attempt to take over), then the oldest;
    with ``unprocessed``, only a row not processed yet.
    """
    stmt = sa.select(UpdateLog.id, UpdateLog.processed).where(UpdateLog.digest == values["digest"])
    if values["update_id"] is not None:
        return state.session.execute(stmt.where(UpdateLog.update_id == values["update_id"])).one_or_none()
    stmt = stmt.where(UpdateLog.update_id.is_(None))
    if unprocessed:
        stmt = stmt.where(UpdateLog.processed.is_(False))
    order: list[Any] = [UpdateLog.processed, UpdateLog.id]
    replaying = _replaying_row.get()
    if replaying is not None:
        order.insert(0, sa.case((UpdateLog.id == replaying, 0), else_=1))
    return state.session.execute(stmt.order_by(*order).limit(1)).first()


def logged_row(state: StarsState, update_id: int | None, body: str) -> Any:
    """The log row of update ``update_id`` whose body is ``body`` (as stored: ``storable_text``),
    as ``(id, processed)``; None if there is none. Read in the caller's transaction."""
    return _logged_before(state, _log_values(update_id, "", storable_text(body), processed=False, note=None))


def claim_update(state: StarsState, update_id: int | None, kind: str, body: str, *, lock_key: str) -> bool:
    """In the caller's transaction, take the write lock on ``lock_key`` (the charge) and log a
    money update as processed: False if it already was (one round trip on PostgreSQL).

    An update is the same only if its id *and* its body match: Telegram restarts its ids at
    random after a week of silence, and a reused id must never hide a new payment. A row
    left by an earlier failed attempt is taken over (marked processed, one more attempt).
    A polling bot's update has no id: its row is found by its body, under the charge lock
    (the body holds the charge, so the same body is the same payment), so its replay or
    redelivery takes over the failed row instead of adding one.
    """
    session = state.session
    values = _log_values(update_id, kind, body, processed=True, note=None)
    if update_id is None:
        lock_for_write(session, lock_key)
        earlier = _logged_before(state, values)
        if earlier is None:
            _insert_log(state, values)
            return True
    else:
        if lock_and_insert_unless_exists(session, UpdateLog, LOG_KEY, values, lock_key):
            return True
        earlier = _logged_before(state, values)
    if earlier.processed:
        return False
    session.execute(
        sa.update(UpdateLog)
        .where(UpdateLog.id == earlier.id)
        .values(
            attempts=UpdateLog.attempts + 1, processed=True, processed_at=values["processed_at"], error=None
        )
    )
    return True


def log_update(
    state: StarsState, update_id: int | None, kind: str, body: str, *, processed: bool, note: str | None
) -> None:
    """Write an update to the raw log in a unit of work of its own.

    A redelivery (or replay) of an update whose row is not processed yet adds an attempt
    to that row, with its new note, and marks it processed when it now is. A polling bot's
    update (no ``update_id``) finds that row by its body.
    """
    values = _log_values(update_id, kind, body, processed=processed, note=note)
    with unit_of_work(state):
        if update_id is None:
            earlier = _logged_before(state, values, unprocessed=True)
            if earlier is None:
                _insert_log(state, values)
        else:
            earlier = None if _insert_log(state, values) else _logged_before(state, values)
        if earlier is not None and not earlier.processed:
            change: dict[str, Any] = {"attempts": UpdateLog.attempts + 1, "error": note}
            if processed:
                change.update(processed=True, processed_at=values["processed_at"])
            state.session.execute(sa.update(UpdateLog).where(UpdateLog.id == earlier.id).values(**change))


def keep_failed(state: StarsState, update_id: int | None, kind: str, body: str, error: BaseException) -> None:
    """After a failure: roll back, and keep the update unprocessed with why, to replay it.

    If the database is what failed (down, or locked past the busy timeout), the body goes
    to the disk spool instead, without waiting on the database a second time.
    """
    abandon(state)
    if kind in (UpdateKind.SUCCESSFUL_PAYMENT, UpdateKind.REFUNDED_PAYMENT):
        metrics.payment_outcome(state, "failed")
    # Both stored whatever they hold: the error may quote the value that could not be.
    body = storable_text(body)
    note = storable_text(f"{error.__class__.__name__}: {error}")[:2000]
    if not isinstance(error, OperationalError):
        try:
            log_update(state, update_id, kind, body, processed=False, note=note)
            return
        except SQLAlchemyError:
            log.exception("could not keep failed update %s in the database", update_id)
            abandon(state)
    state.spool.put(update_id, body)
