"""Orders: what a user asked to buy, and the invoice link that pays for it.

An order is made (or reused) when the Mini App or the chat asks for a pack; its id is
the invoice payload. These functions work in the caller's unit of work; the operation
that makes an order and its invoice link is ``operations.invoice``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa

from .errors import OrderNotFound
from .models import Order, OrderStatus, utcnow

if TYPE_CHECKING:
    from .packs import Pack
    from .state import StarsState

#: A pending order is reused only while at least this share of STARS_ORDER_TTL is left, so a
#: user who reopens the shop never gets an invoice that expires while the sheet is open.
REUSE_MIN_LIFE_SHARE = 0.25


def load_order(state: StarsState, order_id: str, *, lock: bool = False) -> Order | None:
    """The order as the database has it now (``lock``: ``SELECT ... FOR UPDATE``)."""
    stmt = sa.select(Order).where(Order.id == order_id).execution_options(populate_existing=True)
    if lock:
        stmt = stmt.with_for_update()
    return state.session.scalar(stmt)


def reusable(state: StarsState, order: Order, pack: Pack, now: datetime) -> bool:
    """Whether pending ``order`` may be handed out again for ``pack`` at ``now``."""
    min_life = timedelta(seconds=state.settings.order_ttl * REUSE_MIN_LIFE_SHARE)
    held = order.held_until is not None and order.held_until > now
    # Handed out again only while it sells exactly what the catalogue sells now.
    return order.sells(pack) and (held or order.expires_at - now > min_life)


def retire_statement(order: Order, now: datetime) -> sa.Update:
    """An UPDATE retiring pending ``order`` (status ``expired``), unless a payment holds it.

    An invoice of it the buyer still holds is then refused at pre-checkout with "replaced by
    a newer one" (``order_replaced``), so only the newer order pays.
    """
    return (
        sa.update(Order)
        .where(
            Order.id == order.id,
            Order.status == OrderStatus.PENDING,
            sa.or_(Order.held_until.is_(None), Order.held_until <= now),
        )
        .values(status=OrderStatus.EXPIRED)
    )


def new_order(state: StarsState, user_id: int, pack: Pack, now: datetime) -> Order:
    """A pending order of ``pack`` for ``user_id``, added to the caller's session."""
    order = Order(
        user_id=user_id,
        status=OrderStatus.PENDING,
        created_at=now,
        expires_at=now + timedelta(seconds=state.settings.order_ttl),
    )
    order.record_pack(pack)
    state.session.add(order)
    return order


def order_for_user(state: StarsState, order_id: str, user_id: int) -> Order:
    """The order, if it is ``user_id``'s; ``OrderNotFound`` otherwise."""
    order = load_order(state, order_id) if len(order_id) <= 32 else None
    if order is None or order.user_id != user_id:
        # The same answer for "no such order" and "someone else's": ids are not probed.
        raise OrderNotFound()
    return order


def order_status(order: Order, now: datetime | None = None) -> str:
    """The status a client sees: a pending order past its expiry (and not held) is expired."""
    now = now or utcnow()
    if (
        order.status == OrderStatus.PENDING
        and order.expires_at <= now
        and not (order.held_until and order.held_until > now)
    ):
        return OrderStatus.EXPIRED
    return order.status
