"""What follows a committed payment: signals, and the refund of a second payment.

Run by a unit of work's ``after_commit`` (``transaction``), never inside the transaction:
a receiver's slow code or a Bot API call holds no lock.
"""

from __future__ import annotations

import logging

from .. import signals
from ..errors import BotApiError
from ..ledger import PaymentResult
from ..models import Payment
from ..state import StarsState
from .refund import refund

__all__ = ["announce_payment", "refund_duplicate"]

log = logging.getLogger("flask_stars.ledger")


def announce_payment(state: StarsState, result: PaymentResult) -> None:
    """Signals for a committed payment, and the refund of a second payment for a paid order.

    :param state: the extension's state.
    :param result: what ``ledger.record_payment`` did, as committed.
    """
    payment = result.payment
    if result.duplicate_delivery:
        return
    if result.credited and payment.problem is None:
        state.send(signals.payment_succeeded, payment=payment, order=payment.order)
    elif payment.problem in ("unknown_order", "amount_mismatch", "pack_unavailable"):
        log.warning(
            "payment %s recorded but not credited (%s)", payment.telegram_payment_charge_id, payment.problem
        )
        state.send(signals.payment_unmatched, payment=payment, reason=payment.problem)
    elif payment.problem == "order_already_paid":
        state.send(
            signals.payment_duplicated,
            payment=payment,
            order=payment.order,
            policy=state.settings.duplicate_payment,
        )
        if result.credited:
            state.send(signals.payment_succeeded, payment=payment, order=payment.order)
    if result.refund_due:
        refund_duplicate(state, payment)


def refund_duplicate(state: StarsState, payment: Payment) -> bool:
    """Give back a second payment for an already-paid order (STARS_DUPLICATE_PAYMENT="refund").

    :param state: the extension's state.
    :param payment: the second payment, committed with ``problem="order_already_paid"``.
    :returns: whether Telegram gave it back.

    If Telegram refuses or is down, the payment stays recorded as paid and not credited
    (``problem="order_already_paid"``), so it can be refunded later with ``flask stars
    refund``; it is never dropped.
    """
    try:
        refund(state, payment.telegram_payment_charge_id, reason="second payment for a paid order")
    except BotApiError as exc:
        log.error("could not refund duplicate payment %s: %s", payment.telegram_payment_charge_id, exc)
        return False
    try:
        language = ((payment.raw or {}).get("from") or {}).get("language_code")
        state.gateway.send_message(
            payment.payer_id, state.message("duplicate_refunded", language, stars=payment.stars)
        )
    except BotApiError as exc:
        log.info("could not tell user %s about the refund: %s", payment.payer_id, exc)
    return True
