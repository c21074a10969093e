"""A due refund: a second payment for a paid order, still to be given back.

In words: a payment is due a refund when it was recorded as a second payment for an order
already paid (``problem="order_already_paid"``), it is still paid (not refunded), and it was
not credited. Such a payment is committed so before ``refundStarPayment`` is called; if the
process dies in between or Telegram fails, it stays so until ``reconcile`` or
``flask stars refund --due`` finishes it. Under ``STARS_DUPLICATE_PAYMENT="credit"`` a second
payment is credited, so none is due.

``clause`` is the SQL form (``ledger.due_refunds``, the dashboard's overview), ``is_due``
the Python form (the ledger, right after recording a payment).
"""

from __future__ import annotations

import sqlalchemy as sa

from ..models import Payment, PaymentStatus

SECOND_PAYMENT = "order_already_paid"


def clause() -> sa.ColumnElement[bool]:
    """SQL: the payment is due a refund."""
    second_payment = Payment.problem == SECOND_PAYMENT
    still_paid = Payment.status == PaymentStatus.PAID
    not_credited = Payment.credited.is_(False)
    return sa.and_(second_payment, still_paid, not_credited)


def is_due(payment: Payment) -> bool:
    """Python: ``payment`` is due a refund."""
    second_payment = payment.problem == SECOND_PAYMENT
    still_paid = payment.status == PaymentStatus.PAID
    not_credited = not payment.credited
    return second_payment and still_paid and not_credited
