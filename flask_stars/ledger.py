"""The ledger: payments recorded and credited exactly once, refunds applied once.

``record_payment`` and ``apply_refund`` change the ledger inside the caller's transaction
and never commit: the caller (``updates`` for Telegram's updates, ``reconcile``, or
``operations.refund`` for the operator) owns the unit of work and commits once. Exactly-once
comes from the database (a unique charge id, a per-charge lock taken before anything is
read, row locks), never from a Python lock, so it holds across processes and hosts.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from . import subscriptions
from .db import advisory_lock, lock_for_write
from .models import (
    Order,
    OrderStatus,
    Payment,
    PaymentStatus,
    RefundNotice,
    order_id_from_payload,
    utcnow,
)
from .orders import load_order
from .rules import payable, refund_due, sold

if TYPE_CHECKING:
    from .state import StarsState

log = logging.getLogger(__name__)

USER_LOCK_PREFIX = "user:"  # lock_for_write's key for one user's credits and debits


@dataclass(frozen=True)
class ChargeReport:
    """A ``successful_payment`` or ``refunded_payment``, reduced to what the ledger needs."""

    telegram_payment_charge_id: str
    currency: str
    total_amount: int
    invoice_payload: str
    user_id: int  # who sent it: the payer
    chat_id: int | None = None
    provider_payment_charge_id: str | None = None
    language_code: str | None = None
    update_id: int | None = None
    is_recurring: bool = False
    subscription_expiration_date: int | None = None
    raw: dict[str, Any] | None = field(default=None, compare=False, repr=False)
    #: Set by reconcile for a payment whose webhook never came: ``paid_at`` is the date of its
    #: Telegram transaction, ``found_at`` when reconcile found it. None on the webhook path
    #: (paid now, not found later).
    paid_at: datetime | None = None
    found_at: datetime | None = None


@dataclass
class PaymentResult:
    """What ``record_payment`` did with one charge."""

    payment: Payment
    duplicate_delivery: bool = False  # this charge was already in the ledger
    credited: bool = False
    refund_due: bool = False  # a second payment for a paid order, to refund


def record_payment(
    state: StarsState, report: ChargeReport, *, charge_locked: bool = False, fast: bool = True
) -> PaymentResult:
    """Record a ``successful_payment`` and credit it, once, in the caller's transaction.

    The charge is locked first (``lock_for_write``; ``charge_locked`` says the caller has
    done it), so deliveries of one charge and its refund take turns in every worker. The
    common case, a payment for a payable order, is one conditional UPDATE of the order
    and one INSERT (``fast``); anything else (a charge already in the ledger, a renewal, a
    refund that came first, an order that does not match) is read and decided in full.
    The host's credit callback runs last; if it raises, the error propagates and the
    caller rolls everything back. With ``fast``, a charge already filed under another
    order raises ``IntegrityError`` at the INSERT: roll back and call again without it.
    """
    session = state.session
    charge_id = report.telegram_payment_charge_id
    if not charge_locked:
        lock_for_write(session, charge_id)
    if fast:
        quick = _credit_payable_order(state, report)
        if quick is not None:
            return quick
    existing = payment_by_charge(state, charge_id)
    if existing is not None:
        return PaymentResult(existing, duplicate_delivery=True)
    now = utcnow()
    charge = _charge_of(report)
    order = load_order(state, charge.order_id, lock=True) if charge.order_id else None
    payment = _payment_of(report, now)
    result = PaymentResult(payment)
    pack = sold.pack_of(order, state.packs) if order is not None else None
    payment.problem = payable.problem(order, charge, state.packs)
    subscription = pack is not None and pack.subscription
    renewal = subscription and report.is_recurring and payment.problem == "order_already_paid"
    if renewal:
        payment.problem = None  # a plan's next month: same payload, new charge; the order stays as it is
    if order is not None:
        payment.order = order
        payment.user_id = order.user_id
        payment.pack_id = order.pack_id
        payment.attach_pack(pack)

    waiting_refund = session.scalar(
        sa.select(RefundNotice).where(RefundNotice.telegram_payment_charge_id == charge_id)
    )
    if payable.refund_came_first(waiting_refund):
        # Telegram reported the refund before the payment: the money is already back with
        # the buyer, so nothing is credited (and nothing will need debiting).
        waiting_refund.applied = True
        payment.status = PaymentStatus.REFUNDED
        payment.refunded_at = waiting_refund.received_at
        if payment.problem is None and order is not None:
            _close_order(order, OrderStatus.REFUNDED, payment.paid_at)
        payment.problem = payment.problem or "refunded_before_paid"
    elif payment.problem is None:
        assert order is not None
        if not renewal:
            _close_order(order, OrderStatus.PAID, payment.paid_at)
        result.credited = True
    elif payment.problem == "order_already_paid" and state.settings.duplicate_payment == "credit":
        result.credited = True
    payment.credited = result.credited
    result.refund_due = refund_due.is_due(payment)
    session.add(payment)
    session.flush()
    if result.credited:
        if order is not None and pack is not None and pack.subscription and payment.problem is None:
            subscriptions.record_period(state, payment, order, report.subscription_expiration_date, now)
        _credit(state, payment)
    return result


def _credit_payable_order(state: StarsState, report: ChargeReport) -> PaymentResult | None:
    """The common case in two statements, or None when it is not that case.

    One UPDATE marks the order paid only if it is payable (``rules.payable``). Its row lock
    makes a concurrent delivery of the same charge wait, then find the order paid and take
    the full path, which finds the charge.
    """
    charge = _charge_of(report)
    if charge.order_id is None:
        return None
    now = utcnow()
    session = state.session
    # PostgreSQL: the owner's credit lock (``_lock_user``) rides on the same round trip.
    user_locked = session.get_bind(Order).dialect.name == "postgresql"
    row = session.execute(
        _pay_order_statement(sold.prices(state.packs), user_locked), {**charge.params(), "p_now": now}
    ).first()
    if row is None:
        return None
    order = row[0]
    payment = _payment_of(report, now)
    payment.order = order
    payment.user_id = order.user_id
    payment.pack_id = order.pack_id
    pack = sold.pack_of(order, state.packs)
    payment.attach_pack(pack)
    payment.credited = True
    session.add(payment)
    session.flush()
    if pack is not None and pack.subscription:
        subscriptions.record_period(state, payment, order, report.subscription_expiration_date, now)
    _credit(state, payment, user_locked=user_locked)
    return PaymentResult(payment, credited=True)


@functools.lru_cache(maxsize=32)
def _pay_order_statement(prices: sold.Prices, lock_user: bool) -> Any:
    """``_credit_payable_order``'s UPDATE, built once per catalogue (values as parameters)."""
    stmt = (
        sa.update(Order)
        .where(payable.clause(prices))
        .values(
            status=OrderStatus.PAID,
            paid_at=sa.bindparam("p_now", type_=Order.paid_at.type),
            held_by=None,
            held_until=None,
            hold_query_id=None,
        )
        .execution_options(populate_existing=True, synchronize_session=False)
    )
    if lock_user:
        return stmt.returning(Order, advisory_lock(USER_LOCK_PREFIX + sa.cast(Order.user_id, sa.Text)))
    return stmt.returning(Order)


def _charge_of(report: ChargeReport) -> payable.Charge:
    return payable.Charge(
        order_id_from_payload(report.invoice_payload),
        report.currency,
        report.total_amount,
        report.telegram_payment_charge_id,
    )


def _payment_of(report: ChargeReport, now: datetime) -> Payment:
    """A ledger row for ``report``, paid and not credited yet, matched to no order yet.

    Paid ``now`` (the webhook's case), or when Telegram says (``report.paid_at``, reconcile's).
    """
    return Payment(
        telegram_payment_charge_id=report.telegram_payment_charge_id,
        provider_payment_charge_id=report.provider_payment_charge_id or None,
        user_id=report.user_id,
        payer_id=report.user_id,
        stars=report.total_amount,
        currency=report.currency[:8],  # anything but XTR is recorded as amount_mismatch
        invoice_payload=report.invoice_payload[:255],
        status=PaymentStatus.PAID,
        credited=False,
        paid_at=report.paid_at or now,
        found_at=report.found_at,
        update_id=report.update_id,
        raw=report.raw,
    )


def _credit(state: StarsState, payment: Payment, *, user_locked: bool = False) -> None:
    if not user_locked:
        _lock_user(state, payment.user_id)
    state.credit(payment)  # the host's callback, inside this transaction


def apply_refund(
    state: StarsState,
    charge_id: str,
    stars: int,
    *,
    charge_locked: bool = False,
    refunded_at: datetime | None = None,
    found_at: datetime | None = None,
) -> Payment | None:
    """Apply a refund of ``charge_id``, once, in the caller's transaction.

    Debits if the payment was credited and closes its order. A refund of a charge not in
    the ledger yet is kept (``stars_refunds``) and applied when the payment is recorded.
    Returns the payment when this call refunded it, None otherwise.

    The payment is refunded now, or when Telegram says (``refunded_at``: the date of the
    refund's transaction, for a refund reconcile found, ``found_at`` being when it did).
    """
    session = state.session
    if not charge_locked:
        lock_for_write(session, charge_id)
    payment = payment_by_charge(state, charge_id, lock=True)
    if payment is None:
        waiting = session.scalar(
            sa.select(RefundNotice.id).where(RefundNotice.telegram_payment_charge_id == charge_id)
        )
        if waiting is None:
            session.add(RefundNotice(telegram_payment_charge_id=charge_id, stars=stars))
        return None
    if payment.status == PaymentStatus.REFUNDED:
        return None
    now = utcnow()
    payment.status = PaymentStatus.REFUNDED
    payment.refunded_at = refunded_at or now
    payment.refund_found_at = found_at
    order = payment.order
    if order is not None:
        payment.attach_pack(sold.pack_of(order, state.packs))
    sub = subscriptions.subscription_of(state, payment) if order is not None else None
    if sub is not None:
        subscriptions.end_refunded_period(sub, payment, now)
    if (
        order is not None
        and payment.problem is None
        and order.status == OrderStatus.PAID
        and (sub is None or sub.charge_id == payment.telegram_payment_charge_id)  # a renewal: stays paid
    ):
        order.status = OrderStatus.REFUNDED
    if payment.credited:
        _lock_user(state, payment.user_id)
        state.debit(payment)
    return payment


def _lock_user(state: StarsState, user_id: int) -> None:
    """Credits and debits of one user take turns, in every worker.

    Two payments of one user (two packs, in two workers) would otherwise both read the
    same balance in the host's callback and one ``user.coins += n`` would be lost. Held to
    the commit, so the next callback reads the balance this one wrote.
    """
    lock_for_write(state.session, f"{USER_LOCK_PREFIX}{user_id}")


def _close_order(order: Order, status: str, now: datetime) -> None:
    order.status = status
    order.paid_at = order.paid_at or now
    order.held_by = order.held_until = order.hold_query_id = None


def payment_by_charge(state: StarsState, charge_id: str, *, lock: bool = False) -> Payment | None:
    """The ledger row of ``charge_id`` as the database has it now, or None."""
    stmt = (
        sa.select(Payment)
        .where(Payment.telegram_payment_charge_id == charge_id)
        .execution_options(populate_existing=True)
    )
    if lock:
        stmt = stmt.with_for_update(of=Payment)
    payment = state.session.scalar(stmt)
    if payment is not None and payment.order is not None:
        payment.attach_pack(sold.pack_of(payment.order, state.packs))
    return payment


# --- reads ---------------------------------------------------------------------------------


def due_refunds(state: StarsState) -> list[str]:
    """Charge ids of second payments for paid orders that are still to be given back
    (``rules.refund_due``), oldest first."""
    charge_ids = state.session.scalars(
        sa.select(Payment.telegram_payment_charge_id).where(refund_due.clause()).order_by(Payment.id)
    ).all()
    return list(charge_ids)
