"""Pre-checkout: approve or refuse a buyer's Pay, taking a hold on the order.

The rules (the README's "Pre-checkout rules"): the payload names one of our orders; it is
pending and not expired; currency XTR and the order's amount; the payer is its owner
(unless gifts are on); no other pre-checkout holds it. Nothing here commits or calls
Telegram: ``updates`` owns the transaction and the answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa

from .models import Order, OrderStatus, order_id_from_payload, utcnow
from .orders import load_order, sells_something, sold_pack
from .packs import XTR

if TYPE_CHECKING:
    from .state import StarsState


@dataclass(frozen=True)
class PreCheckout:
    """A ``pre_checkout_query``, reduced to what the decision needs."""

    id: str
    user_id: int
    currency: str
    total_amount: int
    invoice_payload: str
    language_code: str | None = None


@dataclass(frozen=True)
class PreCheckoutDecision:
    """``ok``, or why not (``reason``: a ``messages.MESSAGES`` key) and the order if any."""

    ok: bool
    reason: str | None = None
    order: Order | None = None


def decide(state: StarsState, query: PreCheckout) -> PreCheckoutDecision:
    """Approve or refuse ``query``, taking the hold when approving.

    The approval is one conditional UPDATE that checks every rule and takes the hold at
    once (atomic, so two racing pre-checkouts cannot both win), left for the caller to
    commit. Only when it matches nothing is the order read, to tell the buyer why.
    """
    session = state.session
    order_id = order_id_from_payload(query.invoice_payload)
    if order_id is not None and query.currency == XTR:
        now = utcnow()
        held_by_this_query = sa.and_(Order.hold_query_id == query.id, Order.held_until > now)
        owner = sa.true() if state.settings.allow_gifts else Order.user_id == query.user_id
        taken = session.execute(  # type: ignore[attr-defined]
            sa.update(Order)
            .where(
                Order.id == order_id,
                Order.status == OrderStatus.PENDING,
                Order.stars == query.total_amount,
                owner,
                sells_something(state),
                sa.or_(Order.expires_at > now, held_by_this_query),
                # Free, or held by this same query (Telegram redelivered it).
                sa.or_(Order.held_until.is_(None), Order.held_until <= now, Order.hold_query_id == query.id),
            )
            .values(
                held_by=query.user_id,
                held_until=now + timedelta(seconds=state.settings.pre_checkout_hold),
                hold_query_id=query.id[:64],
            )
            .execution_options(synchronize_session=False)
        ).rowcount
        if taken:
            return PreCheckoutDecision(ok=True)
        session.rollback()
    order = load_order(state, order_id) if order_id else None
    reason = refusal(state, query, order) or "order_held"
    session.rollback()
    return PreCheckoutDecision(ok=False, reason=reason, order=order)


def refusal(state: StarsState, query: PreCheckout, order: Order | None) -> str | None:
    """Why ``query`` cannot pay ``order`` (a message key), or None if no rule forbids it."""
    if order is None:
        return "order_not_found"
    if query.currency != XTR:
        return "wrong_currency"
    if query.total_amount != order.stars:
        return "wrong_amount"
    if order.status != OrderStatus.PENDING:
        return "order_not_pending"
    if query.user_id != order.user_id and not state.settings.allow_gifts:
        return "not_owner"
    if sold_pack(state, order) is None:
        return "pack_unavailable"
    now = utcnow()
    same_query_holds = order.hold_query_id == query.id and order.held_until and order.held_until > now
    if order.expires_at <= now and not same_query_holds:
        return "order_expired"
    return None
