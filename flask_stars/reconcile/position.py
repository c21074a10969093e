"""How far reconcile read one bot's list of Stars transactions, kept per bot and environment.

The position is a ``stars_meta`` row, ``reconcile:<bot_id>:<environment>``: the offset, and
the transaction found at the last position read, so that a run can check the list is still
the one it read before resuming (``Position.names``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from ..models import Meta
from ..transaction import end_read, unit_of_work
from .transactions import direction, unix_date

if TYPE_CHECKING:
    from ..state import StarsState

#: The ``stars_meta`` key of the position of one bot and environment (``BotIdentity.key`` after it).
POSITION_PREFIX = "reconcile:"
#: The one global offset of flask_stars before per-bot positions: no transaction id to check
#: it by, so it is never trusted; a run reads from 0 once instead, and deletes it.
LEGACY_OFFSET_KEY = "reconcile_offset"

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
        return cls(offset, tx_id if isinstance(tx_id, str) else None, direction(tx), unix_date(tx))

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
        """The position as the JSON text its ``stars_meta`` row holds."""
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
        offset, last_id, last_direction = data.get("offset"), data.get("last_id"), data.get("last_direction")
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            raise ValueError("no offset")
        if offset > 0 and not isinstance(last_id, str):
            raise ValueError("no transaction id")
        return cls(
            offset,
            last_id if isinstance(last_id, str) else None,
            last_direction if isinstance(last_direction, str) else None,
            unix_date({"date": data.get("last_date")}),
        )


def position_key(state: StarsState) -> str:
    """The ``stars_meta`` key of the position of the bot and environment ``state`` speaks for."""
    return POSITION_PREFIX + state.bot_identity.key


def saved_texts(state: StarsState, key: str) -> tuple[str | None, str | None]:
    """The text saved under ``key``, and when there is none the legacy global offset's (or
    None); ends its read."""
    session = state.session
    row = session.get(Meta, key, populate_existing=True)
    text = row.value if row is not None else None
    legacy = None
    if text is None:
        old = session.get(Meta, LEGACY_OFFSET_KEY, populate_existing=True)
        legacy = old.value if old is not None else None
    end_read(state)
    return text, legacy


def saved_position(state: StarsState) -> Position | None:
    """The position saved for this bot and environment (None: none, or unreadable); ends its read."""
    session = state.session
    row = session.get(Meta, position_key(state), populate_existing=True)
    text = row.value if row is not None else None
    end_read(state)
    if text is None:
        return None
    try:
        return Position.loads(text)
    except ValueError:
        return None


def save_position(state: StarsState, position: Position | None) -> None:
    """Commit ``position`` as this bot's (None: forget it); the legacy global offset goes too."""
    with unit_of_work(state):
        put_position(state, position)


def put_position(state: StarsState, position: Position | None) -> None:
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
