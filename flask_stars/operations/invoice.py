"""An order and its invoice link, in steps; and the Mini App's wait for a paid order.

``open_invoice`` is what ``POST /stars/invoice`` and the chat's subscription buttons run:

1. ``pending_order``: the user's pending order for the pack, reused or made, in a unit of
   work of its own (committed before Telegram is asked);
2. ``createInvoiceLink`` at Telegram, with no transaction open;
3. ``store_link``: the link stored on the order in a second unit of work, and
   ``order_created`` announced after its commit.

If Telegram fails at step 2, an order made at step 1 is marked failed (never reused) and
the ``BotApiError`` propagates; nothing is left half-made.
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import set_committed_value

from .. import signals
from ..errors import BotApiError, OrderConflict
from ..models import Order, OrderStatus, utcnow
from ..orders import load_order, new_order, order_for_user, order_status, retire_statement, reusable
from ..packs import Pack
from ..state import StarsState
from ..transaction import end_read, unit_of_work

__all__ = ["MAX_WAIT", "POLL_INTERVAL", "open_invoice", "pending_order", "store_link", "wait_for_order"]

#: How often, and at most how long, ``GET /stars/order/<id>?wait=`` looks again (seconds).
POLL_INTERVAL = 0.2
MAX_WAIT = 25
#: How many times a click retries when concurrent clicks race to make the order.
ATTEMPTS = 5


def pending_order(state: StarsState, user_id: int, pack: Pack) -> tuple[Order, bool]:
    """Step 1: the user's pending order for ``pack``, made if there is none: ``(order, created)``.

    :param state: the extension's state.
    :param user_id: the buyer's Telegram user id.
    :param pack: the pack asked for.

    Each attempt is one unit of work, committed (the caller may call Telegram next). The
    partial unique index on (user_id, pack_id) for pending orders makes concurrent clicks
    in any number of workers end with one order; an order too old, or of a pack that
    changed since, is retired first (``orders.retire_statement``).
    """
    for _attempt in range(ATTEMPTS):
        now = utcnow()
        try:
            with unit_of_work(state, keep_loaded=True):
                order = state.session.scalar(
                    sa.select(Order)
                    .where(
                        Order.user_id == user_id,
                        Order.pack_id == pack.id,
                        Order.status == OrderStatus.PENDING,
                    )
                    .execution_options(populate_existing=True)
                )
                if order is None:
                    return new_order(state, user_id, pack, now), True
                if reusable(state, order, pack, now):
                    return order, False
                state.session.execute(retire_statement(order, now))
        except IntegrityError:
            pass  # another click made it first: take that one
    raise OrderConflict()


def open_invoice(
    state: StarsState, user_id: int, pack: Pack, language: str | None = None
) -> tuple[Order, bool]:
    """The user's pending order for ``pack`` with an invoice link: ``(order, created)``.

    :param state: the extension's state.
    :param user_id: the buyer's Telegram user id.
    :param pack: the pack asked for.
    :param language: the buyer's Telegram ``language_code``: the link's title and description
        are in it (``Pack.title_in``). A link already made is handed out as it is.

    A pending order that already has a link is returned as it is, with no Bot API call.
    """
    order, created = pending_order(state, user_id, pack)
    if order.invoice_url:
        return order, created
    # No link yet (a new order, one made from the chat, or a concurrent click still
    # waiting for Telegram): make one. Two links for one order carry the same payload, so
    # either pays the same order; the first one stored is the one handed out.
    try:
        url = state.gateway.create_invoice_link(order, pack, language)
    except BotApiError:
        if created:
            with unit_of_work(state):
                state.session.execute(
                    sa.update(Order)
                    .where(Order.id == order.id, Order.invoice_url.is_(None))
                    .values(status=OrderStatus.FAILED)
                )
        raise
    return store_link(state, order, url, created), created


def store_link(state: StarsState, order: Order, url: str, created: bool) -> Order:
    """Step 3: ``url`` stored on ``order`` unless a concurrent click stored one first; the
    order with the link handed out.

    :param state: the extension's state.
    :param order: the order step 1 gave.
    :param url: the link Telegram made.
    :param created: whether step 1 made the order (``order_created`` is then announced).
    """
    with unit_of_work(state, keep_loaded=True) as work:
        stored = state.session.execute(  # type: ignore[attr-defined]
            sa.update(Order)
            .where(Order.id == order.id, Order.invoice_url.is_(None))
            .values(invoice_url=url)
            .execution_options(synchronize_session=False)
        ).rowcount
        if stored:
            set_committed_value(order, "invoice_url", url)
        else:  # a concurrent click stored its link first: hand out that one
            fresh = load_order(state, order.id)
            assert fresh is not None
            order = fresh
        if created:
            made = order
            work.after_commit(lambda: state.send(signals.order_created, order=made))
    return order


def wait_for_order(state: StarsState, order_id: str, user_id: int, wait: float) -> Order:
    """The order once its status is no longer ``pending``, or after ``wait`` seconds.

    :param state: the extension's state.
    :param order_id: the order's id (the invoice payload's).
    :param user_id: the buyer asking; another user's order is ``OrderNotFound``.
    :param wait: seconds to wait at most (capped at ``MAX_WAIT``); 0 answers at once.

    No transaction stays open while it waits: each look is a read, ended.
    """
    order = order_for_user(state, order_id, user_id)
    deadline = time.monotonic() + min(max(wait, 0), MAX_WAIT)
    while order_status(order) == OrderStatus.PENDING and time.monotonic() < deadline:
        end_read(state)
        time.sleep(min(POLL_INTERVAL, max(deadline - time.monotonic(), 0)))
        order = order_for_user(state, order_id, user_id)
    end_read(state)
    return order
