"""The money path: orders, pre-checkout decisions, the ledger, refunds.

Nothing here knows about HTTP or telebot. Every function takes the app's ``StarsState``
(``ctx``) for the session, the settings, the catalogue, the Bot API gateway and the host's
callbacks, and reads top to bottom: validate → lock → write the ledger → call back →
commit. Exactly-once comes from the database (a unique charge id, a partial unique index
on pending orders, row locks and conditional updates), never from a Python lock, so it
holds across processes and hosts.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import set_committed_value

from . import signals, subscriptions
from .botapi import XTR
from .db import insert_unless_exists, lock_for_write
from .errors import BotApiError, NotFound, ServerError
from .models import (
    Order,
    OrderStatus,
    Payment,
    PaymentStatus,
    RefundNotice,
    UpdateLog,
    order_id_from_payload,
    utcnow,
)

if TYPE_CHECKING:
    from .extension import StarsState
    from .packs import Pack

log = logging.getLogger("flask_stars")

#: A pending order is reused only while at least this share of STARS_ORDER_TTL is left, so a
#: user who reopens the shop never gets an invoice that expires while the sheet is open.
REUSE_MIN_LIFE_SHARE = 0.25
POLL_INTERVAL = 0.2
MAX_WAIT = 25


# --- inputs: what Telegram reported, reduced to what the money path needs -------------


@dataclass(frozen=True)
class PreCheckout:
    """A ``pre_checkout_query``."""

    id: str
    user_id: int
    currency: str
    total_amount: int
    invoice_payload: str
    language_code: str | None = None


@dataclass(frozen=True)
class ChargeReport:
    """A ``successful_payment`` or ``refunded_payment`` message."""

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


@dataclass(frozen=True)
class PreCheckoutDecision:
    ok: bool
    reason: str | None = None  # a messages.MESSAGES key when not ok
    order: Order | None = None


@dataclass
class PaymentResult:
    payment: Payment
    duplicate_delivery: bool = False  # this charge was already in the ledger
    credited: bool = False
    refund_due: bool = False  # a second payment for a paid order, to refund


# --- orders ---------------------------------------------------------------------------


def _fresh_order(ctx: StarsState, order_id: str, *, lock: bool = False) -> Order | None:
    stmt = sa.select(Order).where(Order.id == order_id).execution_options(populate_existing=True)
    if lock:
        stmt = stmt.with_for_update()
    return ctx.session.scalar(stmt)


def _reusable(ctx: StarsState, order: Order, pack: Pack, now: datetime) -> bool:
    min_life = timedelta(seconds=ctx.settings.order_ttl * REUSE_MIN_LIFE_SHARE)
    held = order.held_until is not None and order.held_until > now
    return order.stars == pack.stars and (held or order.expires_at - now > min_life)


def pending_order(ctx: StarsState, user_id: int, pack: Pack) -> tuple[Order, bool]:
    """The user's pending order for ``pack``, made if there is none: ``(order, created)``.

    The partial unique index on (user_id, pack_id) for pending orders makes concurrent
    clicks in any number of workers end with one order.
    """
    session = ctx.session
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
            if _reusable(ctx, order, pack, now):
                return order, False
            # Too old, or the pack's price changed: retire it (unless a payment holds it).
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
            pack_id=pack.id,
            stars=pack.stars,
            status=OrderStatus.PENDING,
            created_at=now,
            expires_at=now + timedelta(seconds=ctx.settings.order_ttl),
        )
        session.add(order)
        try:
            session.commit()
        except IntegrityError:
            session.rollback()  # another click made it first: take that one
            continue
        return order, True
    raise ServerError("Could not create the order; please retry.", error="order_conflict")


def open_invoice(ctx: StarsState, user_id: int, pack: Pack) -> tuple[Order, bool]:
    """The user's pending order for ``pack`` with an invoice link: ``(order, created)``.

    A pending order that already has a link is returned as it is, with no Bot API call.
    If ``createInvoiceLink`` fails, an order made by this call is marked failed (never
    reused) and the ``BotApiError`` propagates; nothing is left half-made.
    """
    order, created = pending_order(ctx, user_id, pack)
    if order.invoice_url:
        return order, created
    # No link yet (a new order, one made from the chat, or a concurrent click still
    # waiting for Telegram): make one. Two links for one order carry the same payload, so
    # either pays the same order; the first one stored is the one handed out.
    try:
        url = ctx.gateway.create_invoice_link(order, pack)
    except BotApiError:
        if created:
            ctx.session.execute(
                sa.update(Order)
                .where(Order.id == order.id, Order.invoice_url.is_(None))
                .values(status=OrderStatus.FAILED)
            )
            ctx.session.commit()
        raise
    stored = ctx.session.execute(
        sa.update(Order)
        .where(Order.id == order.id, Order.invoice_url.is_(None))
        .values(invoice_url=url)
        .execution_options(synchronize_session=False)
    ).rowcount
    ctx.session.commit()
    if stored:
        set_committed_value(order, "invoice_url", url)
    else:  # a concurrent click stored its link first: hand out that one
        order = _fresh_order(ctx, order.id)
        assert order is not None
    if created:
        ctx.send(signals.order_created, order=order)
    return order, created


def order_for_user(ctx: StarsState, order_id: str, user_id: int) -> Order:
    """The order, if it is ``user_id``'s; ``NotFound`` otherwise (404)."""
    order = _fresh_order(ctx, order_id)
    if order is None or order.user_id != user_id:
        # The same answer for "no such order" and "someone else's": ids are not probed.
        raise NotFound("No such order.", error="order_not_found")
    return order


def wait_for_order(ctx: StarsState, order_id: str, user_id: int, wait: float) -> Order:
    """The order once its status is no longer ``pending``, or after ``wait`` seconds."""
    order = order_for_user(ctx, order_id, user_id)
    deadline = time.monotonic() + min(max(wait, 0), MAX_WAIT)
    while order_status(order) == OrderStatus.PENDING and time.monotonic() < deadline:
        ctx.session.rollback()  # end the read transaction: never sit idle in one
        time.sleep(min(POLL_INTERVAL, max(deadline - time.monotonic(), 0)))
        order = order_for_user(ctx, order_id, user_id)
    ctx.session.rollback()
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


# --- pre-checkout -----------------------------------------------------------------------


def decide_pre_checkout(ctx: StarsState, query: PreCheckout) -> PreCheckoutDecision:
    """Approve or refuse a pre-checkout query by DESIGN §4, taking the hold when approving.

    The approval is one conditional UPDATE that checks every rule and takes the hold at
    once (atomic, so two racing pre-checkouts cannot both win), left for the caller to
    commit after answering. Only when it matches nothing is the order read, to tell the
    buyer why.
    """
    order_id = order_id_from_payload(query.invoice_payload)
    if order_id is not None and query.currency == XTR:
        now = utcnow()
        held_by_this_query = sa.and_(Order.hold_query_id == query.id, Order.held_until > now)
        owner = sa.true() if ctx.settings.allow_gifts else Order.user_id == query.user_id
        taken = ctx.session.execute(
            sa.update(Order)
            .where(
                Order.id == order_id,
                Order.status == OrderStatus.PENDING,
                Order.stars == query.total_amount,
                owner,
                sa.or_(Order.expires_at > now, held_by_this_query),
                # Free, or held by this same query (Telegram redelivered it).
                sa.or_(Order.held_until.is_(None), Order.held_until <= now, Order.hold_query_id == query.id),
            )
            .values(
                held_by=query.user_id,
                held_until=now + timedelta(seconds=ctx.settings.pre_checkout_hold),
                hold_query_id=query.id[:64],
            )
            .execution_options(synchronize_session=False)
        ).rowcount
        if taken:
            # Left uncommitted: the caller answers Telegram first and then commits the hold
            # (with the log row). Until then the row lock keeps a racing second pre-checkout
            # waiting; if the commit were lost, only the hold would be, never a payment.
            return PreCheckoutDecision(ok=True)
        ctx.session.rollback()
    order = _fresh_order(ctx, order_id) if order_id else None
    ctx.session.rollback()
    reason = _refusal(ctx, query, order) or "order_held"
    return PreCheckoutDecision(ok=False, reason=reason, order=order)


def _refusal(ctx: StarsState, query: PreCheckout, order: Order | None) -> str | None:
    if order is None:
        return "order_not_found"
    if query.currency != XTR:
        return "wrong_currency"
    if query.total_amount != order.stars:
        return "wrong_amount"
    if order.status != OrderStatus.PENDING:
        return "order_not_pending"
    if query.user_id != order.user_id and not ctx.settings.allow_gifts:
        return "not_owner"
    now = utcnow()
    same_query_holds = order.hold_query_id == query.id and order.held_until and order.held_until > now
    if order.expires_at <= now and not same_query_holds:
        return "order_expired"
    return None


# --- the ledger -------------------------------------------------------------------------


def record_payment(ctx: StarsState, report: ChargeReport, log_row_id: int | None = None) -> PaymentResult:
    """Record a ``successful_payment`` and credit it, exactly once, in one transaction.

    The charge is locked first (``lock_for_write``), so deliveries of one charge and its
    refund take turns in every worker. The order is locked and decided on, the ledger row
    goes in with one INSERT (its unique charge id turns a duplicate into an
    IntegrityError), the host's credit callback runs, and one commit ends it. If the
    callback raises, everything rolls back and the error propagates, so the webhook
    answers 500 and Telegram redelivers.
    """
    session = ctx.session
    charge_id = report.telegram_payment_charge_id
    lock_for_write(session, charge_id)
    now = utcnow()
    order_id = order_id_from_payload(report.invoice_payload)
    order = _fresh_order(ctx, order_id, lock=True) if order_id else None
    payment = Payment(
        telegram_payment_charge_id=charge_id,
        provider_payment_charge_id=report.provider_payment_charge_id or None,
        user_id=report.user_id,
        payer_id=report.user_id,
        stars=report.total_amount,
        currency=report.currency,
        invoice_payload=report.invoice_payload[:255],
        status=PaymentStatus.PAID,
        credited=False,
        paid_at=now,
        update_id=report.update_id,
        raw=report.raw,
    )
    result = PaymentResult(payment)
    renewal = False
    if order is None:
        payment.problem = "unknown_order"
    else:
        payment.order = order
        payment.user_id = order.user_id
        payment.pack_id = order.pack_id
        if report.currency != XTR or report.total_amount != order.stars:
            payment.problem = "amount_mismatch"
        elif order.status in (OrderStatus.PAID, OrderStatus.REFUNDED):
            if subscriptions.is_subscription(ctx, order, report):
                renewal = True  # a subscription's next month: same payload, new charge
            else:
                payment.problem = "order_already_paid"

    waiting_refund = session.scalar(
        sa.select(RefundNotice).where(
            RefundNotice.telegram_payment_charge_id == charge_id, RefundNotice.applied.is_(False)
        )
    )
    if waiting_refund is not None:
        # Telegram reported the refund before the payment: the money is already back with
        # the buyer, so nothing is credited (and nothing will need debiting).
        waiting_refund.applied = True
        payment.status = PaymentStatus.REFUNDED
        payment.refunded_at = waiting_refund.received_at
        if payment.problem is None and order is not None:
            _close_order(order, OrderStatus.REFUNDED, now)
        payment.problem = payment.problem or "refunded_before_paid"
    elif payment.problem is None:
        assert order is not None
        if not renewal:
            _close_order(order, OrderStatus.PAID, now)
        result.credited = True
    elif payment.problem == "order_already_paid":
        if ctx.settings.duplicate_payment == "credit":
            result.credited = True
        else:
            result.refund_due = True
    payment.credited = result.credited

    session.add(payment)
    try:
        session.flush()
    except IntegrityError:
        # The charge is already in the ledger: a redelivery in a new update.
        session.rollback()
        existing = _payment_by_charge(ctx, charge_id)
        if existing is None:
            raise
        _mark_processed(ctx, log_row_id)
        session.commit()
        return PaymentResult(existing, duplicate_delivery=True)

    if result.credited:
        if order is not None and subscriptions.is_subscription(ctx, order, report):
            subscriptions.record_period(ctx, payment, order, report, now)
        _lock_user(ctx, payment.user_id)
        ctx.credit(payment)  # the host's callback, inside this transaction
    _mark_processed(ctx, log_row_id)
    session.commit()
    return result


def _lock_user(ctx: StarsState, user_id: int) -> None:
    """Credits and debits of one user take turns, in every worker.

    Two payments of one user (two packs, in two workers) would otherwise both read the
    same balance in the host's callback and one ``user.coins += n`` would be lost. Held to
    the commit, so the next callback reads the balance this one wrote.
    """
    lock_for_write(ctx.session, f"user:{user_id}")


def _close_order(order: Order, status: str, now: datetime) -> None:
    order.status = status
    order.paid_at = order.paid_at or now
    order.held_by = order.held_until = order.hold_query_id = None


def _payment_by_charge(ctx: StarsState, charge_id: str, *, lock: bool = False) -> Payment | None:
    stmt = (
        sa.select(Payment)
        .where(Payment.telegram_payment_charge_id == charge_id)
        .execution_options(populate_existing=True)
    )
    if lock:
        stmt = stmt.with_for_update(of=Payment)
    return ctx.session.scalar(stmt)


def announce_payment(ctx: StarsState, result: PaymentResult) -> None:
    """After the commit: signals, and the refund of a second payment for a paid order."""
    payment = result.payment
    if result.duplicate_delivery:
        return
    if result.credited and payment.problem is None:
        ctx.send(signals.payment_succeeded, payment=payment, order=payment.order)
    elif payment.problem in ("unknown_order", "amount_mismatch"):
        log.warning(
            "flask_stars: payment %s recorded but not credited (%s)",
            payment.telegram_payment_charge_id,
            payment.problem,
        )
        ctx.send(signals.payment_unmatched, payment=payment, reason=payment.problem)
    elif payment.problem == "order_already_paid":
        ctx.send(
            signals.payment_duplicated,
            payment=payment,
            order=payment.order,
            policy=ctx.settings.duplicate_payment,
        )
        if result.credited:
            ctx.send(signals.payment_succeeded, payment=payment, order=payment.order)
    if result.refund_due:
        refund_duplicate(ctx, payment)


def refund(ctx: StarsState, charge_id: str, reason: str | None = None) -> Payment:
    """Give a payment back: refundStarPayment, then the ledger (debit callback once).

    Telegram's ``CHARGE_ALREADY_REFUNDED`` is not an error here: the ledger ends refunded
    either way. Refunding a payment that is already refunded does nothing. Raises
    ``NotFound`` for a charge the ledger does not know and ``BotApiError`` when Telegram
    refuses for another reason (the ledger is then unchanged).
    """
    payment = _payment_by_charge(ctx, charge_id)
    ctx.session.rollback()
    if payment is None:
        raise NotFound(f"No payment {charge_id!r} in the ledger.", error="payment_not_found")
    if payment.status == PaymentStatus.REFUNDED:
        return payment
    try:
        ctx.gateway.refund(payment.payer_id, charge_id)
    except BotApiError as exc:
        if "CHARGE_ALREADY_REFUNDED" not in exc.description:
            raise
    log.info("flask_stars: refunded %s (%s)", charge_id, reason or "no reason given")
    mark_refunded(ctx, charge_id, payment.stars, reason=reason)
    refreshed = _payment_by_charge(ctx, charge_id)  # loaded, so it can be read after the request
    assert refreshed is not None
    return refreshed


def refund_duplicate(ctx: StarsState, payment: Payment) -> bool:
    """Give back a second payment for an already-paid order (STARS_DUPLICATE_PAYMENT="refund").

    If Telegram refuses or is down, the payment stays recorded as paid and not credited
    (``problem="order_already_paid"``), so it can be refunded later with ``flask stars
    refund``; it is never dropped.
    """
    try:
        refund(ctx, payment.telegram_payment_charge_id, reason="second payment for a paid order")
    except BotApiError as exc:
        log.error(
            "flask_stars: could not refund duplicate payment %s: %s", payment.telegram_payment_charge_id, exc
        )
        return False
    try:
        from .messages import message

        language = ((payment.raw or {}).get("from") or {}).get("language_code")
        ctx.gateway.send_message(
            payment.payer_id, message("duplicate_refunded", language, stars=payment.stars)
        )
    except BotApiError as exc:
        log.info("flask_stars: could not tell user %s about the refund: %s", payment.payer_id, exc)
    return True


def mark_refunded(
    ctx: StarsState, charge_id: str, stars: int, log_row_id: int | None = None, reason: str | None = None
) -> Payment | None:
    """Apply a refund of ``charge_id``, once: debit if it was credited, close the order.

    A refund of a charge not in the ledger yet is kept (``stars_refunds``) and applied
    when the payment is recorded. Returns the payment when this call refunded it.
    """
    session = ctx.session
    lock_for_write(session, charge_id)
    payment = _payment_by_charge(ctx, charge_id, lock=True)
    if payment is None:
        waiting = session.scalar(
            sa.select(RefundNotice).where(RefundNotice.telegram_payment_charge_id == charge_id)
        )
        if waiting is None:
            session.add(RefundNotice(telegram_payment_charge_id=charge_id, stars=stars))
        _mark_processed(ctx, log_row_id)
        try:
            session.commit()
        except IntegrityError:
            session.rollback()  # the same refund is being noted by another delivery
            return mark_refunded(ctx, charge_id, stars, log_row_id, reason)
        return None
    if payment.status == PaymentStatus.REFUNDED:
        _mark_processed(ctx, log_row_id)
        session.commit()
        return None
    payment.status = PaymentStatus.REFUNDED
    payment.refunded_at = utcnow()
    order = payment.order
    if (
        order is not None
        and payment.problem is None
        and order.status == OrderStatus.PAID
        and subscriptions.is_first_payment(ctx, payment)  # a refunded renewal leaves the order paid
    ):
        order.status = OrderStatus.REFUNDED
    if payment.credited:
        _lock_user(ctx, payment.user_id)
        ctx.debit(payment)
    _mark_processed(ctx, log_row_id)
    session.commit()
    ctx.send(signals.payment_refunded, payment=payment, reason=reason)
    return payment


# --- the raw update log ----------------------------------------------------------------


def log_update(
    ctx: StarsState,
    update_id: int | None,
    kind: str,
    body: str,
    *,
    processed: bool = False,
    note: str | None = None,
) -> tuple[int, bool]:
    """Write an update to the raw log in its own transaction: ``(row id, already_processed)``.

    A redelivery of an update that was fully handled returns ``already_processed=True``.
    An update is the same only if its id *and* its body match: Telegram restarts its ids at
    random after a week of silence, and a reused id must never hide a new payment.
    """
    session = ctx.session
    digest = hashlib.sha256(body.encode()).hexdigest()
    now = utcnow()
    values = {
        "update_id": update_id,
        "digest": digest,
        "kind": kind,
        "body": body,
        "attempts": 1,
        "processed": processed,
        "processed_at": now if processed else None,
        "error": note,
        "received_at": now,
    }
    row_id = session.execute(
        insert_unless_exists(session, UpdateLog, ["update_id", "digest"], values)
    ).scalar()
    if row_id is not None:
        session.commit()
        return row_id, False
    # Logged before: a redelivery (or a concurrent delivery) of the same update.
    existing = session.execute(
        sa.select(UpdateLog.id, UpdateLog.processed).where(
            UpdateLog.update_id == update_id, UpdateLog.digest == digest
        )
    ).one()
    if existing.processed:
        session.rollback()
        return existing.id, True
    session.execute(
        sa.update(UpdateLog).where(UpdateLog.id == existing.id).values(attempts=UpdateLog.attempts + 1)
    )
    session.commit()
    return existing.id, False


def _mark_processed(ctx: StarsState, log_row_id: int | None) -> None:
    if log_row_id is not None:
        ctx.session.execute(
            sa.update(UpdateLog)
            .where(UpdateLog.id == log_row_id)
            .values(processed=True, processed_at=utcnow(), error=None)
        )


def mark_failed(ctx: StarsState, log_row_id: int | None, error: BaseException) -> None:
    """After a rollback: note why the update failed, so it can be inspected and replayed."""
    if log_row_id is None:
        return
    try:
        ctx.session.rollback()
        ctx.session.execute(
            sa.update(UpdateLog)
            .where(UpdateLog.id == log_row_id)
            .values(error=f"{error.__class__.__name__}: {error}"[:2000])
        )
        ctx.session.commit()
    except Exception:  # the database may be what failed; the row stays unprocessed
        log.exception("flask_stars: could not note the failure of update row %s", log_row_id)
        ctx.session.rollback()
