"""A refund, in steps: find the payment, ask Telegram, record it.

``refund`` is what ``flask stars refund``, the dashboard's Refund button, reconcile's due
refunds and ``FlaskStars.refund`` run. Its steps:

1. ``find_payment``: the ledger's row, read and the read ended (nothing stays open while
   Telegram answers);
2. ``ask_telegram``: ``refundStarPayment`` (``CHARGE_ALREADY_REFUNDED`` counts as done);
3. ``record_refund``: one unit of work applies the refund (the host's debit callback once),
   writes the audit entry with it, and announces ``payment_refunded`` after the commit.

A failure at any step is recorded in the audit trail in a transaction of its own, with
what it left behind, and raised.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .. import audit, signals
from ..errors import BotApiError, HostCallbackFailed, PaymentNotFound
from ..ledger import apply_refund, payment_by_charge
from ..models import Payment, PaymentStatus
from ..state import StarsState
from ..transaction import end_read, unit_of_work

__all__ = ["RefundTarget", "announce_refund", "ask_telegram", "find_payment", "record_refund", "refund"]

log = logging.getLogger("flask_stars")


def refund(
    state: StarsState, charge_id: str, reason: str | None = None, *, actor: audit.Actor | None = None
) -> Payment:
    """Give a payment back: refundStarPayment, then the ledger (debit callback once).

    :param state: the extension's state.
    :param charge_id: the payment's ``telegram_payment_charge_id``.
    :param reason: why, as the operator gave it (kept in the audit trail and the signal).
    :param actor: who asked (the CLI's, the dashboard's or the Python API's); flask_stars
        itself when None.
    :returns: the payment as the ledger has it after the refund, loaded.

    Telegram's ``CHARGE_ALREADY_REFUNDED`` is not an error here: the ledger ends refunded
    either way. Refunding a payment that is already refunded does nothing. Raises
    ``PaymentNotFound`` for a charge the ledger does not know and ``BotApiError`` when
    Telegram refuses for another reason (the ledger is then unchanged). The audit trail
    gets one entry (action ``refund``): ``ok`` with the refund, or ``failed`` with why.
    """
    who = actor or audit.SYSTEM_ACTOR
    telegram_refunded = False
    try:
        target = find_payment(state, charge_id)
        if target.refunded:
            nothing = f"already refunded ({target.back}): nothing done"
            return record_refund(state, target, reason, who, nothing)
        already = ask_telegram(state, target, reason)
        telegram_refunded = True
        detail = target.back + (" (Telegram had already refunded it)" if already else "")
        return record_refund(state, target, reason, who, detail)
    except Exception as exc:
        audit.record(
            state,
            who,
            audit.REFUND,
            target=charge_id,
            reason=reason,
            outcome=audit.FAILED,
            detail=_failure(exc, telegram_refunded),
        )
        raise


@dataclass(frozen=True)
class RefundTarget:
    """What a refund needs of the payment, read once (no row stays loaded across steps)."""

    charge_id: str
    payer_id: int
    stars: int
    refunded: bool

    @property
    def back(self) -> str:
        """What giving it back means, in words."""
        return f"{self.stars} Stars back to user {self.payer_id}"


def find_payment(state: StarsState, charge_id: str) -> RefundTarget:
    """Step 1: what the ledger has of ``charge_id``, with the read ended.

    :param state: the extension's state.
    :param charge_id: the payment's charge id.
    :raises PaymentNotFound: the ledger has no such payment.
    """
    payment = payment_by_charge(state, charge_id)
    target = (
        None
        if payment is None
        else RefundTarget(
            charge_id, payment.payer_id, payment.stars, payment.status == PaymentStatus.REFUNDED
        )
    )
    end_read(state)  # nothing stays open while Telegram is called
    if target is None:
        raise PaymentNotFound(f"No payment {charge_id!r} in the ledger.")
    return target


def ask_telegram(state: StarsState, target: RefundTarget, reason: str | None) -> bool:
    """Step 2: ``refundStarPayment``; True when Telegram had already refunded it.

    :param state: the extension's state.
    :param target: the payment to give back (its payer and charge id are sent).
    :param reason: why, for the log.
    :raises BotApiError: Telegram refused for another reason, or could not be reached.
    """
    already = False
    try:
        state.gateway.refund(target.payer_id, target.charge_id)
    except BotApiError as exc:
        if "CHARGE_ALREADY_REFUNDED" not in exc.description:
            raise
        already = True
    log.info("refunded %s (%s)", target.charge_id, reason or "no reason given")
    return already


def record_refund(
    state: StarsState, target: RefundTarget, reason: str | None, who: audit.Actor, detail: str
) -> Payment:
    """Step 3: the ledger's refund (debit callback once) and its audit entry, one commit.

    :param state: the extension's state.
    :param target: the payment Telegram gave back.
    :param reason: why, for the audit trail and ``payment_refunded``.
    :param who: the actor the audit entry names.
    :param detail: what was done, in words, for the audit entry.
    :returns: the payment as the ledger now has it, loaded (readable after the request).
    """
    with unit_of_work(state, keep_loaded=True) as work:
        refunded = None if target.refunded else apply_refund(state, target.charge_id, target.stars)
        audit.add(state, who, audit.REFUND, target=target.charge_id, reason=reason, detail=detail)
        work.after_commit(lambda: announce_refund(state, refunded, reason))
    with unit_of_work(state, keep_loaded=True):
        fresh = payment_by_charge(state, target.charge_id)
    assert fresh is not None
    return fresh


def _failure(exc: Exception, telegram_refunded: bool) -> str:
    """What a failed refund left behind, in words for the audit trail."""
    if isinstance(exc, BotApiError):
        return f"{exc.summary}; the ledger is unchanged"  # said no, or could not be reached
    if isinstance(exc, PaymentNotFound):
        return exc.message
    # The debit callback's own error, as the operator's code raised it.
    what = exc.reason if isinstance(exc, HostCallbackFailed) else f"{exc.__class__.__name__}: {exc}"
    if telegram_refunded:
        # The debit callback (or the database) failed after Telegram gave the Stars back.
        return (
            f"Telegram gave the Stars back, but the ledger is unchanged: {what}; "
            "refund it again to record it and debit once"
        )
    return f"{what}; the ledger is unchanged"


def announce_refund(state: StarsState, payment: Payment | None, reason: str | None = None) -> None:
    """After the commit: ``payment_refunded`` for a refund that changed ``payment``.

    :param state: the extension's state.
    :param payment: the payment the refund changed; None when it changed none.
    :param reason: why, as given, passed to the receivers.
    """
    if payment is not None:
        state.send(signals.payment_refunded, payment=payment, reason=reason)
