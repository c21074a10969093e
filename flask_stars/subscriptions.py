"""Monthly plans: subscription packs, their renewals, and cancelling or re-enabling them.

Telegram sells a subscription only through ``createInvoiceLink`` with a 30-day
``subscription_period``. The first payment and each renewal arrive as ``successful_payment``
with the same payload (``is_recurring``); each credits once, through the ledger like any
payment. The ``subscription`` update tells when the user cancels, re-enables, or a renewal
fails. Nothing here knows about HTTP or telebot.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa

from .errors import SubscriptionNotFound
from .models import Order, Payment, Subscription, SubscriptionState, order_id_from_payload, utcnow

if TYPE_CHECKING:
    from .state import StarsState

log = logging.getLogger(__name__)
PERIOD = timedelta(days=30)


def record_period(
    state: StarsState, payment: Payment, order: Order, expiration_date: int | None, now: datetime
) -> Subscription:
    """Note a first payment or a renewal (in the payment's transaction).

    ``expiration_date`` is Telegram's ``subscription_expiration_date`` (a Unix time), if sent.
    """
    expires = _plausible_expiry(expiration_date, now)
    sub = state.session.scalar(
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
        state.session.add(sub)
        return sub
    sub.payments += 1
    sub.last_charge_id = payment.telegram_payment_charge_id
    sub.expires_at = max(filter(None, (sub.expires_at, expires or now + PERIOD)))
    if sub.state == SubscriptionState.FAILED:
        sub.state = SubscriptionState.ACTIVE  # the renewal went through after all
    sub.updated_at = now
    return sub


def _plausible_expiry(expiration_date: int | None, now: datetime) -> datetime | None:
    """Telegram's expiry as a datetime, or None when it is absent or absurd (a forged
    update must not make a row that cannot be stored, nor a plan that never ends)."""
    if not expiration_date:
        return None
    try:
        expires = datetime.fromtimestamp(expiration_date, UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return expires if now - PERIOD <= expires <= now + 2 * PERIOD else None


def subscription_of(state: StarsState, payment: Payment) -> Subscription | None:
    """The plan ``payment`` paid a period of, if any."""
    return state.session.scalar(sa.select(Subscription).where(Subscription.order_id == payment.order_id))


def end_refunded_period(sub: Subscription, payment: Payment, now: datetime) -> None:
    """A refund of the payment for the current period ends the access it paid for.

    A refund of an older period's payment changes nothing: that period is over already.
    """
    if sub.last_charge_id == payment.telegram_payment_charge_id and (
        sub.expires_at is None or sub.expires_at > now
    ):
        sub.expires_at = now
        sub.updated_at = now


def apply_state_update(
    state: StarsState, user_id: int, invoice_payload: str, new_state: str
) -> Subscription | None:
    """Telegram's ``subscription`` update: the user cancelled, re-enabled, or a renewal failed.

    Changes the row in the caller's transaction (the caller commits); None when the
    state or the subscription is unknown.
    """
    if new_state not in (SubscriptionState.ACTIVE, SubscriptionState.CANCELED, SubscriptionState.FAILED):
        log.warning("unknown subscription state %r", new_state)
        return None
    order_id = order_id_from_payload(invoice_payload)
    sub = state.session.scalar(
        sa.select(Subscription).where(Subscription.order_id == order_id, Subscription.user_id == user_id)
    )
    if sub is None:
        log.warning("subscription update for unknown payload %r", invoice_payload)
        return None
    sub.state = new_state
    if new_state == SubscriptionState.CANCELED:
        sub.canceled_by_bot = False  # the user did it, in Telegram
    sub.updated_at = utcnow()
    return sub


def user_subscriptions(state: StarsState, user_id: int) -> list[Subscription]:
    """The user's subscriptions, newest first."""
    rows = state.session.scalars(
        sa.select(Subscription).where(Subscription.user_id == user_id).order_by(Subscription.id.desc())
    ).all()
    return list(rows)


def get_subscription(state: StarsState, subscription_id: int, user_id: int | None = None) -> Subscription:
    """The subscription (``user_id``'s only, when given); ``SubscriptionNotFound`` otherwise."""
    sub = state.session.get(Subscription, subscription_id, populate_existing=True)
    if sub is None or (user_id is not None and sub.user_id != user_id):
        raise SubscriptionNotFound()
    return sub


def is_live(sub: Subscription, now: datetime | None = None) -> bool:
    """Paid up: the user has what the plan gives until ``expires_at``, cancelled or not."""
    return sub.expires_at is not None and sub.expires_at > (now or utcnow())
