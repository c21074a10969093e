"""One payment: its order, the raw updates behind it, its audit trail, and the Refund button."""

from __future__ import annotations

import json
from typing import Any

from flask import redirect, request, url_for

from ... import transaction
from ...errors import BotApiError
from ...models import Payment, PaymentStatus
from ...operations.refund import refund as refund_payment
from ..queries.audit import audit_of_payment
from ..queries.payments import updates_of
from ..security import current_actor
from ..texts import text
from .base import (
    dashboard_bp,
    end_read,
    get_or_404,
    language,
    pack_names,
    page,
    shows_failure,
    state,
    unconfirmed,
)


@dashboard_bp.get("/payments/<int:payment_id>")
def payment(payment_id: int) -> tuple[str, int]:
    """One payment: its order, the raw updates behind it, and the Refund button."""
    return _payment_page(payment_id)


def _payment_page(payment_id: int, status: int = 200, error: str | None = None) -> tuple[str, int]:
    stars = state()
    p = get_or_404(Payment, payment_id)
    updates = updates_of(stars.session, p)
    context: dict[str, Any] = {
        "p": p,
        "order": p.order,
        "updates": updates,
        "audit": audit_of_payment(stars.session, p, updates),
        "raw": json.dumps(p.raw, indent=2, ensure_ascii=False) if p.raw else "",
        "pack_names": pack_names(stars, language()),
        "done": request.args.get("done") == "refunded",
        "error": error,
        "refundable": p.status == PaymentStatus.PAID,
    }
    end_read(stars)
    return page("payment.html", status, **context)


def _refund_failed(status: int, why: str, payment_id: int) -> tuple[str, int]:
    """The payment's page, saying why its refund failed (the ledger is unchanged)."""
    return _payment_page(payment_id, status, text("refund_failed", language(), why=why))


@dashboard_bp.route("/payments/<int:payment_id>/refund", methods=["GET", "POST"])
@shows_failure(_refund_failed)
def refund(payment_id: int) -> Any:
    """GET: what a refund will do, and the form to confirm it. POST: refund, as ``flask stars refund``."""
    stars = state()
    p = get_or_404(Payment, payment_id)
    charge_id = p.telegram_payment_charge_id
    if request.method == "GET":
        end_read(stars)
        return page("confirm_refund.html", p=p)
    transaction.end_read(stars)  # the refund reads the payment afresh, under its lock
    refused = unconfirmed()
    if refused is not None:
        return refused
    reason = (request.form.get("reason") or "").strip()[:200] or None  # as typed, for the audit trail
    try:
        refund_payment(stars, charge_id, reason, actor=current_actor())
    except BotApiError as exc:
        return _refund_failed(502, exc.description, payment_id)
    # The debit callback failing is the error edge's (base.shows_failure): this page, 500.
    return redirect(url_for(".payment", payment_id=payment_id, done="refunded"), 303)
