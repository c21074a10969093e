"""Pre-checkout: approve or refuse a buyer's Pay, taking a hold on the order.

The rules (the README's "Pre-checkout rules"): the payload names one of our orders; it is
pending (not replaced by a newer order) and not expired; currency XTR and the order's
amount; the payer is its owner (unless gifts are on); no other pre-checkout holds it.
Nothing here commits or calls Telegram: ``updates`` owns the transaction and the answer.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa

from .db import hold_settings
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
        catalogue = tuple((p.id, p.stars) for p in state.packs.values())
        dialect = session.get_bind(Order).dialect.name
        taken = session.execute(
            _hold_statement(catalogue, state.settings.allow_gifts, dialect),
            {
                "p_wait_ms": str(max(1, int(state.settings.pre_checkout_timeout * 1000))),
                "p_order_id": order_id,
                "p_amount": query.total_amount,
                "p_user_id": query.user_id,
                "p_query_id": query.id[:64],
                "p_now": now,
                "p_until": now + timedelta(seconds=state.settings.pre_checkout_hold),
            },
        ).rowcount  # type: ignore[attr-defined]
        if taken:
            return PreCheckoutDecision(ok=True)
        session.rollback()
    order = load_order(state, order_id) if order_id else None
    reason = refusal(state, query, order) or "order_held"
    session.rollback()
    return PreCheckoutDecision(ok=False, reason=reason, order=order)


@functools.lru_cache(maxsize=32)
def _hold_statement(catalogue: tuple[tuple[str, int], ...], allow_gifts: bool, dialect: str) -> sa.Update:
    """The approval: one conditional UPDATE that checks every rule and takes the hold.

    Built once per catalogue (ids and prices), gift setting and dialect, with the query's
    values as parameters: building it per request cost more Python than its round trip.
    On PostgreSQL it also carries ``hold_settings`` (see there) in the same round trip.
    """
    now = sa.bindparam("p_now", type_=Order.held_until.type)
    query_id = sa.bindparam("p_query_id", type_=Order.hold_query_id.type)
    held_by_this_query = sa.and_(Order.hold_query_id == query_id, Order.held_until > now)
    owner = sa.true() if allow_gifts else Order.user_id == sa.bindparam("p_user_id", type_=Order.user_id.type)
    return (
        sa.update(Order)
        .where(
            hold_settings() if dialect == "postgresql" else sa.true(),
            Order.id == sa.bindparam("p_order_id", type_=Order.id.type),
            Order.status == OrderStatus.PENDING,
            Order.stars == sa.bindparam("p_amount", type_=Order.stars.type),
            owner,
            sells_something(catalogue),
            sa.or_(Order.expires_at > now, held_by_this_query),
            # Free, or held by this same query (Telegram redelivered it).
            sa.or_(Order.held_until.is_(None), Order.held_until <= now, Order.hold_query_id == query_id),
        )
        .values(
            held_by=sa.bindparam("p_user_id", type_=Order.held_by.type),
            held_until=sa.bindparam("p_until", type_=Order.held_until.type),
            hold_query_id=query_id,
        )
        .execution_options(synchronize_session=False)
    )


def refusal(state: StarsState, query: PreCheckout, order: Order | None) -> str | None:
    """Why ``query`` cannot pay ``order`` (a message key), or None if no rule forbids it."""
    if order is None:
        return "order_not_found"
    if query.currency != XTR:
        return "wrong_currency"
    if query.total_amount != order.stars:
        return "wrong_amount"
    if order.status == OrderStatus.EXPIRED:
        # Retired by ``orders.pending_order`` for a newer order (the pack changed, or little
        # of its time was left): its invoice is refused, saying why. Once its own time is
        # up too, it has simply expired.
        return "order_replaced" if order.expires_at > utcnow() else "order_expired"
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
