"""The payable order: may a successful payment close its order as paid, and be credited?

In words, a payment pays its order when its payload names one of our orders
(``unknown_order`` otherwise) and:

- price: it paid the order's price in XTR (``amount_mismatch``);
- sells: the order still sells something (``sold``; ``pack_unavailable``);
- unpaid: the order is neither paid nor refunded (``order_already_paid``: a second payment,
  or a plan's renewal, which the ledger credits without closing the order again). A
  pending, expired or failed order is payable: Telegram took the money;
- no refund first: Telegram has not reported this charge's refund before its payment
  (``refunded_before_paid``: the Stars are back with the buyer already).

No owner, hold or expiry is checked: a payment Telegram took is credited to the order's
owner, whoever paid it and whenever it came.

``clause`` is the SQL form, the WHERE of the ledger's fast path (one conditional UPDATE
that marks the order paid). ``problem`` and ``refund_came_first`` are the Python form, the
ledger's slow path: the order pays when ``problem`` is None and no refund came first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

import sqlalchemy as sa

from ..models import Order, OrderStatus, RefundNotice
from ..packs import XTR, Pack
from . import sold

#: The statuses of an order that is paid for already.
PAID_FOR = (OrderStatus.PAID, OrderStatus.REFUNDED)


@dataclass(frozen=True)
class Charge:
    """A successful payment as the rule reads it."""

    order_id: str | None  # the order its payload names; None when it names none of ours
    currency: str
    amount: int
    charge_id: str

    def params(self) -> dict[str, Any]:
        """The values ``clause`` is executed with."""
        return {
            "p_order_id": self.order_id,
            "p_currency": self.currency,
            "p_amount": self.amount,
            "p_charge_id": self.charge_id,
        }


def clause(prices: sold.Prices) -> sa.ColumnElement[bool]:
    """SQL: the order ``p_order_id`` is paid by the charge (``Charge.params``)."""
    names_it = Order.id == sa.bindparam("p_order_id", type_=Order.id.type)
    price = sa.and_(
        sa.bindparam("p_currency", type_=sa.String) == XTR,
        Order.stars == sa.bindparam("p_amount", type_=Order.stars.type),
    )
    sells = sold.clause(prices)
    unpaid = Order.status.not_in(PAID_FOR)
    return sa.and_(names_it, unpaid, price, sells, ~refund_came_first_clause())


def refund_came_first_clause() -> sa.ColumnElement[bool]:
    """SQL: a refund of the charge ``p_charge_id`` waits for its payment."""
    return sa.exists().where(
        RefundNotice.telegram_payment_charge_id == sa.bindparam("p_charge_id", type_=sa.String),
        RefundNotice.applied.is_(False),
    )


def problem(order: Order | None, charge: Charge, packs: Mapping[str, Pack]) -> str | None:
    """Python: why ``charge`` does not pay ``order`` (the order ``charge.order_id`` names,
    None when there is none), recorded as the payment's ``problem``; None when it does
    (unless a refund came first)."""
    if order is None:
        return "unknown_order"
    if charge.currency != XTR or charge.amount != order.stars:  # price
        return "amount_mismatch"
    if sold.pack_of(order, packs) is None:  # sells
        return "pack_unavailable"
    if order.status in PAID_FOR:  # unpaid
        return "order_already_paid"
    return None


def refund_came_first(notice: RefundNotice | None) -> TypeGuard[RefundNotice]:
    """Python: ``notice`` (the charge's row in ``stars_refunds``, if any) waits for its payment."""
    return notice is not None and not notice.applied
