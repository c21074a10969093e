"""Monthly plans: subscription packs, their renewals, and cancelling or re-enabling them.

Telegram sells a subscription only through ``createInvoiceLink`` with a 30-day
``subscription_period``. The first payment and each renewal arrive as ``successful_payment``
with the same payload (``is_recurring``); each credits once, through the ledger like any
payment. The ``subscription`` update tells when the user cancels, re-enables, or a renewal
fails. Like ``payments``, nothing here knows about HTTP or telebot.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa

from .errors import BotApiError, Conflict, NotFound
from .models import Order, Payment, Subscription, SubscriptionState, order_id_from_payload, utcnow

if TYPE_CHECKING:
    from .extension import StarsState
    from .payments import ChargeReport

log = logging.getLogger("flask_stars")
PERIOD = timedelta(days=30)


def is_subscription(ctx: StarsState, order: Order, report: ChargeReport) -> bool:
    pack = ctx.packs.get(order.pack_id)
    return bool(report.is_recurring or (pack is not None and pack.subscription))


def record_period(
    ctx: StarsState, payment: Payment, order: Order, report: ChargeReport, now: datetime
) -> Subscription:
    """Note a first payment or a renewal (in the payment's transaction)."""
    expires = (
        datetime.fromtimestamp(report.subscription_expiration_date, UTC)
        if report.subscription_expiration_date
        else None
    )
    sub = ctx.session.scalar(
        sa.select(Subscription)
        .where(Subscription.order_id == order.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if sub is None:
        sub = Subscription(
            user_id=order.user_id,
            pack_id=order.pack_id,
            order_id=order.id,
            charge_id=payment.telegram_payment_charge_id,
            last_charge_id=payment.telegram_payment_charge_id,
            state=SubscriptionState.ACTIVE,
            canceled_by_bot=False,
            payments=1,
            expires_at=expires or now + PERIOD,
            created_at=now,
            updated_at=now,
        )
        ctx.session.add(sub)
        return sub
    sub.payments += 1
    sub.last_charge_id = payment.telegram_payment_charge_id
    sub.expires_at = max(filter(None, (sub.expires_at, expires or now + PERIOD)))
    if sub.state == SubscriptionState.FAILED:
        sub.state = SubscriptionState.ACTIVE  # the renewal went through after all
    sub.updated_at = now
    return sub


def is_first_payment(ctx: StarsState, payment: Payment) -> bool:
    """Whether ``payment`` is the one that paid its order (not a later renewal)."""
    sub = ctx.session.scalar(sa.select(Subscription).where(Subscription.order_id == payment.order_id))
    return sub is None or sub.charge_id == payment.telegram_payment_charge_id


def apply_state_update(
    ctx: StarsState, user_id: int, invoice_payload: str, state: str
) -> Subscription | None:
    """Telegram's ``subscription`` update: the user cancelled, re-enabled, or a renewal failed."""
    if state not in (SubscriptionState.ACTIVE, SubscriptionState.CANCELED, SubscriptionState.FAILED):
        log.warning("flask_stars: unknown subscription state %r", state)
        return None
    order_id = order_id_from_payload(invoice_payload)
    sub = ctx.session.scalar(
        sa.select(Subscription).where(Subscription.order_id == order_id, Subscription.user_id == user_id)
    )
    if sub is None:
        log.warning("flask_stars: subscription update for unknown payload %r", invoice_payload)
        ctx.session.rollback()
        return None
    sub.state = state
    if state == SubscriptionState.CANCELED:
        sub.canceled_by_bot = False  # the user did it, in Telegram
    sub.updated_at = utcnow()
    ctx.session.commit()
    return sub


def user_subscriptions(ctx: StarsState, user_id: int) -> list[Subscription]:
    rows = ctx.session.scalars(
        sa.select(Subscription).where(Subscription.user_id == user_id).order_by(Subscription.id.desc())
    ).all()
    ctx.session.rollback()
    return list(rows)


def get_subscription(ctx: StarsState, subscription_id: int, user_id: int | None = None) -> Subscription:
    sub = ctx.session.get(Subscription, subscription_id, populate_existing=True)
    if sub is None or (user_id is not None and sub.user_id != user_id):
        raise NotFound("No such subscription.", error="subscription_not_found")
    return sub


def set_canceled(ctx: StarsState, sub: Subscription, canceled: bool) -> Subscription:
    """editUserStarSubscription: stop renewing (access lasts to ``expires_at``) or renew again.

    Telegram re-enables only a subscription the bot itself cancelled; one the user
    cancelled in Telegram answers 409.
    """
    if not canceled and sub.state == SubscriptionState.CANCELED and not sub.canceled_by_bot:
        raise Conflict("The user cancelled this subscription in Telegram; only they can renew it.")
    try:
        ctx.gateway.edit_subscription(sub.user_id, sub.charge_id, canceled)
    except BotApiError as exc:
        if exc.error_code == 400:
            raise Conflict(f"Telegram refused: {exc.description}", error="subscription_conflict") from None
        raise
    sub = get_subscription(ctx, sub.id)
    sub.state = SubscriptionState.CANCELED if canceled else SubscriptionState.ACTIVE
    sub.canceled_by_bot = canceled
    sub.updated_at = utcnow()
    ctx.session.commit()
    ctx.session.refresh(sub)
    return sub


def is_live(sub: Subscription, now: datetime | None = None) -> bool:
    """Paid up: the user has what the plan gives until ``expires_at``, cancelled or not."""
    return sub.expires_at is not None and sub.expires_at > (now or utcnow())
