"""Keyset pages (by id, newest first, no OFFSET) and the ids and texts a query may compare."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ...models import INT64_MAX

PAGE_SIZE = 50
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
