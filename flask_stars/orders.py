"""Orders: what a user asked to buy, and the invoice link that pays for it.

An order is made (or reused) when the Mini App or the chat asks for a pack; its id is
the invoice payload. Each function here is one whole operation and ends its own
transaction; no transaction is open while Telegram is called.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import set_committed_value

from . import signals
from .db import kept_after_commit
from .errors import BotApiError, OrderConflict, OrderNotFound
from .models import Order, OrderStatus, utcnow

if TYPE_CHECKING:
    from .packs import Pack
    from .state import StarsState

#: A pending order is reused only while at least this share of STARS_ORDER_TTL is left, so a
#: user who reopens the shop never gets an invoice that expires while the sheet is open.
REUSE_MIN_LIFE_SHARE = 0.25
POLL_INTERVAL = 0.2
MAX_WAIT = 25


def load_order(state: StarsState, order_id: str, *, lock: bool = False) -> Order | None:
    """The order as the database has it now (``lock``: ``SELECT ... FOR UPDATE``)."""
    stmt = sa.select(Order).where(Order.id == order_id).execution_options(populate_existing=True)
    if lock:
        stmt = stmt.with_for_update()
    return state.session.scalar(stmt)


def _reusable(state: StarsState, order: Order, pack: Pack, now: datetime) -> bool:
    min_life = timedelta(seconds=state.settings.order_ttl * REUSE_MIN_LIFE_SHARE)
    held = order.held_until is not None and order.held_until > now
    # Handed out again only while it sells exactly what the catalogue sells now.
    return order.sells(pack) and (held or order.expires_at - now > min_life)


def sold_pack(state: StarsState, order: Order) -> Pack | None:
    """What ``order`` sells: its own record, or for an order made before that record
    existed (revision stars_0003), the catalogue's pack while its price is unchanged."""
    recorded = order.sold_pack
    if recorded is not None:
        return recorded
    current = state.packs.get(order.pack_id)
    return current if current is not None and current.stars == order.stars else None


def sells_something(catalogue: Iterable[tuple[str, int]]) -> sa.ColumnElement[bool]:
    """SQL for ``sold_pack(state, order) is not None``, given the catalogue's ``(id, stars)``
    pairs: an order records what it sells; one made before that record existed is sold
    only while the catalogue offers its pack at its price."""
    return sa.or_(
        Order.pack_title.is_not(None),
        *(sa.and_(Order.pack_id == pack_id, Order.stars == stars) for pack_id, stars in catalogue),
    )


def pending_order(state: StarsState, user_id: int, pack: Pack) -> tuple[Order, bool]:
    """The user's pending order for ``pack``, made if there is none: ``(order, created)``.

    The partial unique index on (user_id, pack_id) for pending orders makes concurrent
    clicks in any number of workers end with one order.
    """
    session = state.session
    for _attempt in range(5):
        now = utcnow()
        order = session.scalar(
            sa.select(Order)
            .where(
                Order.user_id == user_id,
                Order.pack_id == pack.id,
                Order.status == OrderStatus.PENDING,
            )
            .execution_options(populate_existing=True)
        )
        if order is not None:
            if _reusable(state, order, pack, now):
                # End the read: the caller may call Telegram next (createInvoiceLink,
                # sendInvoice), and nothing stays open while it does.
                with kept_after_commit(session):
                    session.commit()
                return order, False
            # Too old, or the pack changed: retire it (unless a payment holds it). An
            # invoice of it the buyer still holds is then refused at pre-checkout with
            # "replaced by a newer one" (``order_replaced``), so only the new one pays.
            session.execute(
                sa.update(Order)
                .where(
                    Order.id == order.id,
                    Order.status == OrderStatus.PENDING,
                    sa.or_(Order.held_until.is_(None), Order.held_until <= now),
                )
                .values(status=OrderStatus.EXPIRED)
            )
            session.commit()
            continue
        order = Order(
            user_id=user_id,
            status=OrderStatus.PENDING,
            created_at=now,
            expires_at=now + timedelta(seconds=state.settings.order_ttl),
        )
        order.record_pack(pack)
        session.add(order)
        try:
            session.commit()
        except IntegrityError:
            session.rollback()  # another click made it first: take that one
            continue
        return order, True
    raise OrderConflict()


def open_invoice(state: StarsState, user_id: int, pack: Pack) -> tuple[Order, bool]:
    """The user's pending order for ``pack`` with an invoice link: ``(order, created)``.

    A pending order that already has a link is returned as it is, with no Bot API call.
    If ``createInvoiceLink`` fails, an order made by this call is marked failed (never
    reused) and the ``BotApiError`` propagates; nothing is left half-made.
    """
    order, created = pending_order(state, user_id, pack)
    if order.invoice_url:
        return order, created
    # No link yet (a new order, one made from the chat, or a concurrent click still
    # waiting for Telegram): make one. Two links for one order carry the same payload, so
    # either pays the same order; the first one stored is the one handed out.
    try:
        url = state.gateway.create_invoice_link(order, pack)
    except BotApiError:
        if created:
            state.session.execute(
                sa.update(Order)
                .where(Order.id == order.id, Order.invoice_url.is_(None))
                .values(status=OrderStatus.FAILED)
            )
            state.session.commit()
        raise
    stored = state.session.execute(  # type: ignore[attr-defined]
        sa.update(Order)
        .where(Order.id == order.id, Order.invoice_url.is_(None))
        .values(invoice_url=url)
        .execution_options(synchronize_session=False)
    ).rowcount
    state.session.commit()
    if stored:
        set_committed_value(order, "invoice_url", url)
    else:  # a concurrent click stored its link first: hand out that one
        fresh = load_order(state, order.id)
        assert fresh is not None
        order = fresh
    if created:
        state.send(signals.order_created, order=order)
    return order, created


def order_for_user(state: StarsState, order_id: str, user_id: int) -> Order:
    """The order, if it is ``user_id``'s; ``OrderNotFound`` otherwise."""
    order = load_order(state, order_id) if len(order_id) <= 32 else None
    if order is None or order.user_id != user_id:
        # The same answer for "no such order" and "someone else's": ids are not probed.
        raise OrderNotFound()
    return order


def wait_for_order(state: StarsState, order_id: str, user_id: int, wait: float) -> Order:
    """The order once its status is no longer ``pending``, or after ``wait`` seconds."""
    order = order_for_user(state, order_id, user_id)
    deadline = time.monotonic() + min(max(wait, 0), MAX_WAIT)
    while order_status(order) == OrderStatus.PENDING and time.monotonic() < deadline:
        state.session.rollback()  # end the read transaction: never sit idle in one
        time.sleep(min(POLL_INTERVAL, max(deadline - time.monotonic(), 0)))
        order = order_for_user(state, order_id, user_id)
    state.session.rollback()
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
