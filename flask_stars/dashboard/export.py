"""The payments CSV: its columns, and cells that keep every id exact and start no formula.

A spreadsheet runs a cell that starts with ``=``, ``+``, ``-`` or ``@`` (tab and carriage
return too) as a formula, so such a cell is written with a leading ``'`` (the usual guard).
Ids are the exception, when they are plain: an id cell made only of ``[A-Za-z0-9_.:-]``
(every order id flask_stars makes, every charge id Telegram sends, every number) is
written exactly as the ledger holds it. Such a cell cannot call a function or open a link
even where a spreadsheet evaluates a leading "-" (it shows ``#NAME?`` at worst), and the
file keeps the exact id for every program that reads it; a guarded id would name no order.
New order ids never start with "-" anyway (``models.new_order_id``). An id cell with any
other character (only a forged one) and every free-text cell get the guard.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from ..models import Payment

#: The CSV header, the column each is read from (``Payment.id`` first: the key of the next
#: chunk), and whether it is an id (written exactly when plain).
FIELDS: tuple[tuple[str, Any, bool], ...] = (
    ("id", Payment.id, True),
    ("charge_id", Payment.telegram_payment_charge_id, True),
    ("user_id", Payment.user_id, True),
    ("payer_id", Payment.payer_id, True),
    ("pack_id", Payment.pack_id, False),
    ("stars", Payment.stars, False),
    ("currency", Payment.currency, False),
    ("status", Payment.status, False),
    ("credited", Payment.credited, False),
    ("problem", Payment.problem, False),
    ("paid_at", Payment.paid_at, False),
    ("refunded_at", Payment.refunded_at, False),
    ("order_id", Payment.order_id, True),
    ("update_id", Payment.update_id, True),
)
HEADER = tuple(name for name, _, _ in FIELDS)
COLUMNS = tuple(column for _, column, _ in FIELDS)
FLUSH = 200  # rows written to the client at a time

_PLAIN_ID = re.compile(r"[A-Za-z0-9_.:-]+")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any, *, is_id: bool = False) -> str:
    """``value`` as a CSV cell: a plain id exactly, anything else guarded if it could start a formula."""
    text = "" if value is None else value.isoformat() if hasattr(value, "isoformat") else str(value)
    if is_id and _PLAIN_ID.fullmatch(text):
        return text
    return "'" + text if text.startswith(_FORMULA_START) else text


def write(chunks: Iterable[Sequence[Sequence[Any]]]) -> Iterator[str]:
    """The CSV text of ``chunks`` of rows (read in ``COLUMNS`` order), ``FLUSH`` rows at a time."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(HEADER)
    exact = [is_id for _, _, is_id in FIELDS]
    for chunk in chunks:
        for n, row in enumerate(chunk, start=1):
            writer.writerow([cell(v, is_id=i) for v, i in zip(row, exact, strict=True)])
            if n % FLUSH == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
    yield buffer.getvalue()
