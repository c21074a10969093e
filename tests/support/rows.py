"""Ledger rows written straight into the tables, for pages and reports to read."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask_stars.models import utcnow


def payment_row(charge_id: str, **values: Any) -> dict[str, Any]:
    """A paid, credited 10-Star ``stars_payments`` row of user 901, five minutes old, with
    ``values`` over it (for ``sa.insert(Payment)``)."""
    row: dict[str, Any] = {
        "telegram_payment_charge_id": charge_id,
        "user_id": 901,
        "payer_id": 901,
        "pack_id": "stars_pack_1",
        "stars": 10,
        "currency": "XTR",
        "invoice_payload": "order:x",
        "status": "paid",
        "credited": True,
        "paid_at": utcnow() - timedelta(minutes=5),
    }
    row.update(values)
    return row
