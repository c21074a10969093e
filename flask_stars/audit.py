"""The audit trail: who did what to money or to the ledger's records, when, why, and how it ended.

Every refund, replay, archive, reconcile run and hand-over of the tables is recorded in
``stars_audit`` by ``record``, whichever door it came through:

- the dashboard: ``actor`` is the host's ``actor`` callable (``lambda: current_user.email``);
- the CLI: the operating-system user running ``flask stars`` (``cli_actor()``);
- the Python API: the ``actor`` argument (``"python"`` when none is given).

``add`` writes in the caller's unit of work, so an action's entry commits with the change
it records (a refund's with the ledger's refund). ``record`` writes in a short unit of
work of its own, after an action ended without one (a failure, a run): if that row cannot
be written, it is logged and the action's result stands; an action that moved money is
never undone because its record failed.
"""

from __future__ import annotations

import getpass
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypedDict, Unpack

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from .models import AuditEntry, utcnow
from .transaction import abandon, end_read, unit_of_work

if TYPE_CHECKING:
    from .state import StarsState

log = logging.getLogger(__name__)

#: Outcomes an entry can have.
OK = "ok"
FAILED = "failed"
WARNING = "warning"
#: Sources an entry can come from.
CLI = "cli"
DASHBOARD = "dashboard"
PYTHON = "python"
SYSTEM = "system"  # flask_stars itself, with no operator behind it (a second payment given back)
#: The actions recorded (``AuditEntry.action``) and what their target is: a charge id
#: (refund), an update row id (replay, archive), a reconcile run id (reconcile), the new
#: bot's key (rebind).
REFUND = "refund"
REPLAY = "replay"
ARCHIVE = "archive"
RECONCILE = "reconcile"
REBIND = "rebind"
ACTIONS = (REFUND, REPLAY, ARCHIVE, RECONCILE, REBIND)
#: The longest actor, target, reason and detail kept (longer ones are cut).
ACTOR_CHARS = 255
TEXT_CHARS = 4000


@dataclass(frozen=True)
class Actor:
    """Who is acting and through which door (``source``: ``cli``, ``dashboard``, ``python``)."""

    name: str
    source: str = PYTHON


def cli_actor() -> Actor:
    """The operating-system user running the CLI."""
    try:
        name = getpass.getuser()
    except Exception:  # no user name in this environment (a container without one)
        name = "unknown"
    return Actor(name, CLI)


def python_actor(name: str | None) -> Actor:
    """The Python API's ``actor`` argument (``"python"`` when None)."""
    return Actor(name or "python", PYTHON)


#: flask_stars acting on its own: the refund of a second payment for a paid order.
SYSTEM_ACTOR = Actor("flask_stars", SYSTEM)


def _clip(text: str | None, limit: int) -> str | None:
    if text is None:
        return None
    # NUL cannot be stored in PostgreSQL text; a lone surrogate cannot be encoded at all.
    cleaned = text.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")
    return cleaned[:limit]


def add(
    state: StarsState,
    actor: Actor,
    action: str,
    *,
    target: str | int | None = None,
    reason: str | None = None,
    outcome: str = OK,
    detail: str | None = None,
) -> int:
    """Write one audit entry in the caller's transaction (committed with the action it
    records); its id.

    :param state: the extension's state.
    :param actor: who did it.
    :param action: what (``refund``, ``replay``, ``archive``, ``reconcile``...).
    :param target: what it was done to (a charge id, a row id, a run id).
    :param reason: why, as the actor gave it.
    :param outcome: ``ok`` or ``failed``.
    :param detail: what it did or why it failed, in words.
    """
    entry_id = state.session.execute(
        sa.insert(AuditEntry)
        .values(
            at=utcnow(),
            actor=_clip(actor.name, ACTOR_CHARS) or "unknown",
            source=actor.source,
            action=action,
            target=_clip(None if target is None else str(target), ACTOR_CHARS),
            reason=_clip(reason, TEXT_CHARS),
            outcome=outcome,
            detail=_clip(detail, TEXT_CHARS),
        )
        .returning(AuditEntry.id)
    ).scalar()
    assert entry_id is not None
    return int(entry_id)


class EntryFields(TypedDict, total=False):
    """``add``'s keyword arguments, for ``record``."""

    target: str | int | None
    reason: str | None
    outcome: str
    detail: str | None


def record(state: StarsState, actor: Actor, action: str, **fields: Unpack[EntryFields]) -> int | None:
    """Commit one audit entry in a unit of work of its own; its id (None if it could not
    be written: logged, never raised over the action's own outcome).

    Call it once the action has ended, with nothing of the caller's left uncommitted: it
    drops whatever the session holds first. The parameters are ``add``'s.
    """
    abandon(state)
    try:
        with unit_of_work(state):
            return add(state, actor, action, **fields)
    except SQLAlchemyError:
        target = fields.get("target")
        log.exception("could not record %s's %s of %s in the audit trail", actor.name, action, target)
        return None


def entries(
    state: StarsState, *, target: str | None = None, before: int | None = None, limit: int = 50
) -> list[AuditEntry]:
    """The newest entries first (for ``target`` only, when given; older than id ``before``)."""
    stmt = sa.select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if target is not None:
        stmt = stmt.where(AuditEntry.target == target)
    if before is not None:
        stmt = stmt.where(AuditEntry.id < before)
    session = state.session
    rows = list(session.scalars(stmt))
    for row in rows:
        session.expunge(row)  # still readable after the read ends
    end_read(state)
    return rows
