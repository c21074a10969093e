"""The pre-checkout decision: may this query pay this order (and take its hold)?

In words, a pre-checkout query is approved when its payload names one of our orders
(``order_not_found`` otherwise) and:

- currency: it pays in XTR (``wrong_currency``);
- amount: its ``total_amount`` is the order's price (``wrong_amount``);
- pending: the order is pending. An order retired for a newer one (``orders.pending_order``)
  is ``order_replaced`` while its own time is not up and ``order_expired`` after; a paid,
  refunded or failed one is ``order_not_pending``;
- owner: the payer owns the order, unless gifts are on (``not_owner``);
- sells: the order still sells something (``sold``; ``pack_unavailable``);
- in_time: it has not expired, or this same query holds it: Telegram redelivered a query
  approved in time (``order_expired``);
- free: no other query holds it; a hold whose time ran out holds nothing (``order_held``).

Approving takes the hold: the order is held for this query for ``STARS_PRE_CHECKOUT_HOLD``
seconds, so a second device's query is refused meanwhile.

``clause`` is the SQL form, the WHERE of the one UPDATE that approves and takes the hold
(``precheckout``: atomic, so two racing queries cannot both win). ``refusal`` is the Python
form: the reason of the first condition that fails, read when the UPDATE matched nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ..models import Order, OrderStatus
from ..packs import XTR, Pack
from . import sold

#: What ``stars_orders.hold_query_id`` holds of a query id: both forms compare that much.
QUERY_ID_LENGTH: int = Order.hold_query_id.type.length


@dataclass(frozen=True)
class Ask:
    """A pre-checkout query as the rule reads it, at the clock ``now``."""

    order_id: str | None  # the order its payload names; None when it names none of ours
    currency: str
    amount: int
    payer: int
    query_id: str
    now: datetime

    @property
    def held_query_id(self) -> str:
        """The query id as a hold records it."""
        return self.query_id[:QUERY_ID_LENGTH]

    def params(self) -> dict[str, Any]:
        """The values ``clause`` is executed with."""
        return {
            "p_order_id": self.order_id,
            "p_currency": self.currency,
            "p_amount": self.amount,
            "p_user_id": self.payer,
            "p_query_id": self.held_query_id,
            "p_now": self.now,
        }


def clause(prices: sold.Prices, allow_gifts: bool) -> sa.ColumnElement[bool]:
    """SQL: the order ``p_order_id`` may be held for the query (``Ask.params``)."""
    now = sa.bindparam("p_now", type_=Order.held_until.type)
    query_id = sa.bindparam("p_query_id", type_=Order.hold_query_id.type)
    names_it = Order.id == sa.bindparam("p_order_id", type_=Order.id.type)
    currency = sa.bindparam("p_currency", type_=sa.String) == XTR
    amount = Order.stars == sa.bindparam("p_amount", type_=Order.stars.type)
    pending = Order.status == OrderStatus.PENDING
    owner = sa.true() if allow_gifts else Order.user_id == sa.bindparam("p_user_id", type_=Order.user_id.type)
    sells = sold.clause(prices)
    held_by_this_query = sa.and_(Order.hold_query_id == query_id, Order.held_until > now)
    in_time = sa.or_(Order.expires_at > now, held_by_this_query)
    free = sa.or_(Order.held_until.is_(None), Order.held_until <= now, Order.hold_query_id == query_id)
    return sa.and_(names_it, currency, amount, pending, owner, sells, in_time, free)


def refusal(order: Order | None, ask: Ask, packs: Mapping[str, Pack], allow_gifts: bool) -> str | None:
    """Python: why ``ask`` may not hold ``order`` (the order ``ask.order_id`` names, None
    when there is none), as a ``messages.MESSAGES`` key; None when every condition holds."""
    if order is None:
        return "order_not_found"
    now = ask.now
    if ask.currency != XTR:  # currency
        return "wrong_currency"
    if ask.amount != order.stars:  # amount
        return "wrong_amount"
    if order.status != OrderStatus.PENDING:  # pending
        if order.status == OrderStatus.EXPIRED:
            return "order_replaced" if order.expires_at > now else "order_expired"
        return "order_not_pending"
    if not allow_gifts and ask.payer != order.user_id:  # owner
        return "not_owner"
    if sold.pack_of(order, packs) is None:  # sells
        return "pack_unavailable"
    held_by_this_query = (
        order.hold_query_id == ask.held_query_id and order.held_until is not None and order.held_until > now
    )
    in_time = order.expires_at > now or held_by_this_query
    if not in_time:
        return "order_expired"
    free = order.held_until is None or order.held_until <= now or order.hold_query_id == ask.held_query_id
    if not free:
        return "order_held"
    return None
