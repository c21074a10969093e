"""Pre-checkout: approve or refuse a buyer's Pay, taking a hold on the order.

The rules are ``rules.hold`` (the docs' guarantees), in SQL for the approval
and in Python for the refusal's reason. Nothing here commits or calls Telegram: ``updates``
owns the transaction and the answer.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa

from .db import hold_settings
from .models import Order, order_id_from_payload, utcnow
from .orders import load_order
from .rules import hold, sold
from .transaction import end_read

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
    now = utcnow()
    ask = hold.Ask(
        order_id=order_id_from_payload(query.invoice_payload),
        currency=query.currency,
        amount=query.total_amount,
        payer=query.user_id,
        query_id=query.id,
        now=now,
    )
    if ask.order_id is not None:
        dialect = session.get_bind(Order).dialect.name
        taken = session.execute(
            _hold_statement(sold.prices(state.packs), state.settings.allow_gifts, dialect),
            {
                **ask.params(),
                "p_wait_ms": str(max(1, int(state.settings.pre_checkout_timeout * 1000))),
                "p_until": now + timedelta(seconds=state.settings.pre_checkout_hold),
            },
        ).rowcount  # type: ignore[attr-defined]
        if taken:
            return PreCheckoutDecision(ok=True)
        # Nothing was held: end the UPDATE's transaction (and its SET LOCAL timeouts)
        # before the order is read to say why.
        end_read(state)
    order = load_order(state, ask.order_id) if ask.order_id else None
    # None: the order changed between the UPDATE and this read (another query's hold).
    reason = hold.refusal(order, ask, state.packs, state.settings.allow_gifts) or "order_held"
    end_read(state)
    return PreCheckoutDecision(ok=False, reason=reason, order=order)


@functools.lru_cache(maxsize=32)
def _hold_statement(prices: sold.Prices, allow_gifts: bool, dialect: str) -> sa.Update:
    """The approval: one conditional UPDATE (``rules.hold.clause``) that takes the hold.

    Built once per catalogue (ids and prices), gift setting and dialect, with the query's
    values as parameters: building it per request cost more Python than its round trip.
    On PostgreSQL it also carries ``hold_settings`` (see there) in the same round trip.
    """
    return (
        sa.update(Order)
        .where(
            hold_settings() if dialect == "postgresql" else sa.true(),
            hold.clause(prices, allow_gifts),
        )
        .values(
            held_by=sa.bindparam("p_user_id", type_=Order.held_by.type),
            held_until=sa.bindparam("p_until", type_=Order.held_until.type),
            hold_query_id=sa.bindparam("p_query_id", type_=Order.hold_query_id.type),
        )
        .execution_options(synchronize_session=False)
    )
