"""The audit trail's pages: what operators did to a payment or an update, and Activity."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ...audit import ARCHIVE, REFUND, REPLAY
from ...models import AuditEntry, Payment, UpdateLog
from .paging import PAGE_SIZE, Page, keyset_page


def audit_of_payment(session: Session, payment: Payment, updates: Sequence[UpdateLog]) -> list[AuditEntry]:
    """What operators did to ``payment`` (its refunds, failed ones too) and to the update rows
    behind it (replays, archives), newest first: one SELECT by the target index."""
    about = [sa.and_(AuditEntry.action == REFUND, AuditEntry.target == payment.telegram_payment_charge_id)]
    rows = [str(u.id) for u in updates]
    if rows:
        about.append(sa.and_(AuditEntry.action.in_((REPLAY, ARCHIVE)), AuditEntry.target.in_(rows)))
    stmt = sa.select(AuditEntry).where(sa.or_(*about)).order_by(AuditEntry.id.desc()).limit(PAGE_SIZE)
    return list(session.scalars(stmt))


@dataclass
class Activity:
    """A keyset page of the audit trail, and the payments its refunds name (charge id -> id)."""

    page: Page
    payment_ids: dict[str, int]


def activity(
    session: Session, action: str | None, *, before: int | None = None, after: int | None = None
) -> Activity:
    """Audit entries newest first (of one ``action`` when given), a keyset page at a time,
    and the payment id of each refund's charge (one more SELECT, by the unique charge id)."""
    where = [AuditEntry.action == action] if action else []
    page = keyset_page(session, AuditEntry, where, before=before, after=after)
    charges = {e.target for e in page.rows if e.action == REFUND and e.target}
    payment_ids: dict[str, int] = {}
    if charges:
        found = session.execute(
            sa.select(Payment.telegram_payment_charge_id, Payment.id).where(
                Payment.telegram_payment_charge_id.in_(charges)
            )
        )
        payment_ids = {charge: payment_id for charge, payment_id in found}
    return Activity(page, payment_ids)


def audit_of_update(session: Session, row: UpdateLog) -> list[AuditEntry]:
    """Replays and archives of the logged update ``row``, newest first."""
    stmt = (
        sa.select(AuditEntry)
        .where(AuditEntry.action.in_((REPLAY, ARCHIVE)), AuditEntry.target == str(row.id))
        .order_by(AuditEntry.id.desc())
        .limit(PAGE_SIZE)
    )
    return list(session.scalars(stmt))
