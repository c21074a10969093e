"""What one of Telegram's ``StarTransaction`` objects says, read defensively (fields may be missing)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

#: ``kind``'s answers: a user's invoice payment, its refund, anything else.
IN, OUT, OTHER = "in", "out", "other"


def kind(tx: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(``IN`` | ``OUT`` | ``OTHER``, partner): a user's invoice payment, its refund, or else."""
    for direction, key in ((IN, "source"), (OUT, "receiver")):
        partner = tx.get(key)
        if isinstance(partner, dict):
            if (
                partner.get("type") == "user"
                and partner.get("transaction_type", "invoice_payment") == "invoice_payment"
            ):
                return direction, partner
            return OTHER, partner
    return OTHER, {}


def direction(tx: dict[str, Any]) -> str:
    """``in`` (it has a source), ``out`` (a receiver) or ``none``."""
    if isinstance(tx.get("source"), dict):
        return "in"
    return "out" if isinstance(tx.get("receiver"), dict) else "none"


def unix_date(tx: dict[str, Any]) -> int | None:
    """The transaction's ``date`` as Telegram sent it (Unix seconds); None when it is no integer."""
    date = tx.get("date")
    return date if isinstance(date, int) and not isinstance(date, bool) else None


def telegram_date(tx: dict[str, Any]) -> datetime | None:
    """The transaction's ``date`` (Unix seconds, UTC) as an aware datetime; None when unusable."""
    date = unix_date(tx)
    if date is None or date <= 0:
        return None
    try:
        return datetime.fromtimestamp(date, UTC)
    except (OverflowError, OSError, ValueError):
        return None
