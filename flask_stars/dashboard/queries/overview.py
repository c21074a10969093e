"""The overview's counts besides revenue (``reports.revenue``): conversion, plans, warnings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ... import reports
from ...models import Order, OrderStatus, Payment, Subscription, SubscriptionState, UpdateLog, utcnow
from ...rules.refund_due import clause as due_refund_clause

RENEWAL_WINDOW = timedelta(days=7)


@dataclass
class Conversion:
    """Invoices opened, and how many of them were paid."""

    opened: int
    paid: int

    @property
    def rate(self) -> float | None:
        """The share paid (None when none was opened)."""
        return self.paid / self.opened if self.opened else None


def conversion(session: Session, days: int) -> Conversion:
    """Invoices (orders) opened in the last ``days`` days, and how many of them were paid."""
    since = utcnow() - timedelta(days=days)
    paid = sa.case((Order.status.in_((OrderStatus.PAID, OrderStatus.REFUNDED)), 1), else_=0)
    opened, paid_count = session.execute(
        sa.select(sa.func.count(), sa.func.sum(paid)).where(
            Order.created_at >= since, Order.status != OrderStatus.FAILED
        )
    ).one()
    return Conversion(int(opened or 0), int(paid_count or 0))


@dataclass
class SubscriptionCounts:
    """Plans not expired, and those Telegram renews soon."""

    active: int
    renewals_due: int


def subscription_counts(session: Session) -> SubscriptionCounts:
    """Active plans (not expired), and those Telegram renews within ``RENEWAL_WINDOW``."""
    now = utcnow()
    due = sa.case((Subscription.expires_at <= now + RENEWAL_WINDOW, 1), else_=0)
    active, renewals = session.execute(
        sa.select(sa.func.count(), sa.func.sum(due)).where(
            Subscription.state == SubscriptionState.ACTIVE,
            sa.or_(Subscription.expires_at.is_(None), Subscription.expires_at > now),
        )
    ).one()
    return SubscriptionCounts(int(active or 0), int(renewals or 0))


def failed_count(session: Session) -> int:
    """How many updates are failed (``reports.failed_updates``)."""
    count = sa.select(sa.func.count()).select_from(UpdateLog).where(reports.failed_updates())
    return int(session.scalar(count) or 0)


def due_refund_count(session: Session) -> int:
    """Second payments for paid orders still to give back (``ledger.due_refunds``, counted)."""
    count = sa.select(sa.func.count()).select_from(Payment).where(due_refund_clause())
    return int(session.scalar(count) or 0)
