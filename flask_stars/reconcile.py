"""Reconciliation: read the bot's Stars transactions from Telegram and mend the ledger.

``getStarTransactions`` lists every transaction, oldest first, ``limit`` at a time. An
incoming ``invoice_payment`` whose charge id is not in the ledger is a payment whose
webhook never arrived: if its payload names one of our orders it is recorded and credited
through ``ledger.record_payment``, the webhook's own path, so exactly-once still holds.
An outgoing one is a refund: if the ledger still shows the payment as paid, the refund is
applied (debit callback once). Anything else that cannot be matched is reported, never
"fixed". Progress (how many transactions were read) is kept in ``stars_meta`` so the next
run reads only new ones; pages are handled one at a time, so memory stays flat.

Every run that may change the ledger (not ``dry_run``) is recorded in
``stars_reconcile_runs``: a row committed when it starts, its report (or its error)
committed when it ends, each in a short transaction of its own, so no transaction is open
while Telegram is asked.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa

from .ledger import (
    ChargeReport,
    announce_payment,
    announce_refund,
    apply_refund,
    due_refunds,
    record_payment,
    refund,
)
from .models import Meta, Order, Payment, PaymentStatus, ReconcileRun, order_id_from_payload, utcnow
from .packs import XTR

if TYPE_CHECKING:
    from .state import StarsState

log = logging.getLogger(__name__)
OFFSET_KEY = "reconcile_offset"
PAGE_SIZE = 100  # Telegram's maximum
MAX_EXAMPLES = 50
#: How many runs ``stars_reconcile_runs`` keeps (the newest); see ``record_start``.
KEEP_RUNS = 100
ERROR_CHARS = 2000


@dataclass
class ReconcileReport:
    """What a run found and did (or, with ``dry_run``, would do)."""

    dry_run: bool = False
    start_offset: int = 0
    end_offset: int = 0
    read: int = 0
    already_recorded: int = 0
    credited: int = 0
    recorded_not_credited: int = 0
    refunds_applied: int = 0
    refunds_noted: int = 0
    due_refunds_finished: int = 0
    unmatched: int = 0
    other: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)

    def counts(self) -> dict[str, Any]:
        """The report as plain data (the counts, the offsets and the unmatched examples)."""
        return asdict(self)

    def rows(self) -> list[tuple[str, int]]:
        would = "would be " if self.dry_run else ""
        return [
            ("transactions read", self.read),
            ("already in the ledger", self.already_recorded),
            (f"missed payments {would}credited", self.credited),
            (f"missed payments {would}recorded, not credited", self.recorded_not_credited),
            (f"missed refunds {would}applied", self.refunds_applied),
            (f"refunds of unseen payments {would}kept for them", self.refunds_noted),
            (f"due refunds of second payments {would}finished", self.due_refunds_finished),
            ("unmatched (reported, not changed)", self.unmatched),
            ("other transactions (not payments)", self.other),
        ]

    def _example(self, tx: dict[str, Any], why: str) -> None:
        self.unmatched += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(
                {"id": tx.get("id"), "amount": tx.get("amount"), "date": tx.get("date"), "why": why}
            )


def _kind(tx: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """("in" | "out" | "other", partner): a user's invoice payment, its refund, or else."""
    for direction, key in (("in", "source"), ("out", "receiver")):
        partner = tx.get(key)
        if isinstance(partner, dict):
            if (
                partner.get("type") == "user"
                and partner.get("transaction_type", "invoice_payment") == "invoice_payment"
            ):
                return direction, partner
            return "other", partner
    return "other", {}


def reconcile(
    state: StarsState,
    *,
    dry_run: bool = False,
    full: bool = False,
    on_page: Callable[[ReconcileReport], None] | None = None,
    page_size: int = PAGE_SIZE,
) -> ReconcileReport:
    """Page through getStarTransactions from where the last run stopped (``full``: from 0).

    The run is recorded in ``stars_reconcile_runs`` (``record_start``, ``record_end``), a
    failed one with its error before the error is raised again. A ``dry_run`` changes
    nothing, so it writes no record either (nor would it tell that the ledger was mended).
    ``flask stars reconcile``, ``FlaskStars.reconcile`` and the dashboard's Run now all
    come here.
    """
    report = ReconcileReport(dry_run=dry_run)
    if dry_run:
        _run(state, report, full=full, on_page=on_page, page_size=page_size)
        return report
    run_id = record_start(state)
    try:
        _run(state, report, full=full, on_page=on_page, page_size=page_size)
    except BaseException as exc:
        state.session.rollback()
        try:
            record_end(state, run_id, report, error=f"{exc.__class__.__name__}: {exc}")
        except Exception:  # the database is gone too: the row stays unfinished (ok is NULL)
            state.session.rollback()
            log.exception("could not record the failure of reconcile run %s", run_id)
        raise
    record_end(state, run_id, report)
    return report


def record_start(state: StarsState) -> int:
    """Commit a row for a run starting now, and drop all but the newest ``KEEP_RUNS``; its id.

    The rows are an operator's log of when reconcile ran and what it found: the ledger
    itself holds every change a run made, so old rows carry nothing the money needs.
    A hundred is over three months of daily runs (four days of hourly ones), all shown on
    one dashboard page, and the table never grows past it.
    """
    session = state.session
    session.rollback()  # start from a clean transaction of our own
    try:
        run = ReconcileRun(started_at=utcnow())
        session.add(run)
        session.flush()
        run_id = run.id
        cutoff = session.scalar(
            sa.select(ReconcileRun.id).order_by(ReconcileRun.id.desc()).offset(KEEP_RUNS - 1).limit(1)
        )
        if cutoff is not None:
            session.execute(sa.delete(ReconcileRun).where(ReconcileRun.id < cutoff))
        session.commit()
    except Exception:
        session.rollback()
        raise
    return run_id


def record_end(state: StarsState, run_id: int, report: ReconcileReport, error: str | None = None) -> None:
    """Commit how run ``run_id`` ended: its report, and ``error`` when it failed."""
    session = state.session
    try:
        session.execute(
            sa.update(ReconcileRun)
            .where(ReconcileRun.id == run_id)
            .values(
                finished_at=utcnow(),
                ok=error is None,
                report=report.counts(),
                error=None if error is None else error[:ERROR_CHARS],
            )
        )
        session.commit()
    except Exception:
        session.rollback()
        raise


def _run(
    state: StarsState,
    report: ReconcileReport,
    *,
    full: bool,
    on_page: Callable[[ReconcileReport], None] | None,
    page_size: int,
) -> None:
    """The run itself, filling ``report`` as it goes (so a failed run's report says how far it got)."""
    session = state.session
    dry_run = report.dry_run
    saved = session.get(Meta, OFFSET_KEY)
    offset = 0 if full or saved is None else int(saved.value)
    session.rollback()
    report.start_offset = report.end_offset = offset
    while True:
        page = state.gateway.star_transactions(offset, page_size)
        # Applied in Telegram's order, each seeing what the ones before it wrote: a refund
        # listed after its payment on the same page finds the payment just recorded.
        known = _ledger_statuses(state, page)
        for tx in page:
            _one(state, tx, known, report, dry_run)
        offset += len(page)
        report.read += len(page)
        report.end_offset = offset
        if not dry_run and page:
            _save_offset(state, offset)
        if on_page is not None:
            on_page(report)
        if len(page) < page_size:
            break
    if dry_run:
        report.due_refunds_finished = len(due_refunds(state))
    else:
        for charge_id in due_refunds(state):
            refund(state, charge_id, reason="a second payment for a paid order, finished by reconcile")
            report.due_refunds_finished += 1


def _ledger_statuses(state: StarsState, page: list[dict[str, Any]]) -> dict[str, str]:
    """The ledger status of every charge on the page, in one query."""
    ids = [tx["id"] for tx in page if isinstance(tx.get("id"), str)]
    if not ids:
        return {}
    rows = state.session.execute(
        sa.select(Payment.telegram_payment_charge_id, Payment.status).where(
            Payment.telegram_payment_charge_id.in_(ids)
        )
    ).all()
    state.session.rollback()
    return {charge_id: status for charge_id, status in rows}


def _one(
    state: StarsState, tx: dict[str, Any], known: dict[str, str], report: ReconcileReport, dry_run: bool
) -> None:
    """One transaction; ``known`` maps charge ids to ledger statuses and is kept current."""
    direction, partner = _kind(tx)
    charge_id = tx.get("id")
    if direction == "other" or not isinstance(charge_id, str) or not charge_id:
        report.other += 1
        return
    status = known.get(charge_id)
    session = state.session
    if direction == "out":
        if status == PaymentStatus.REFUNDED:
            report.already_recorded += 1
            return
        if status is None:
            # A refund of a payment whose webhook never came: kept, as the webhook path
            # keeps it, and applied when the payment is recorded (nothing is credited then).
            report.refunds_noted += 1
        else:
            report.refunds_applied += 1
        known[charge_id] = PaymentStatus.REFUNDED
        if not dry_run:
            _commit(state, lambda: apply_refund(state, charge_id, int(tx.get("amount") or 0)))
        return
    if status is not None:
        report.already_recorded += 1
        return
    payload = partner.get("invoice_payload") or ""
    user = partner.get("user") or {}
    order_id = order_id_from_payload(payload)
    order = session.get(Order, order_id) if order_id else None
    session.rollback()
    if order is None or not isinstance(user.get("id"), int):
        report._example(tx, "an incoming payment whose payload names none of our orders")
        return
    known[charge_id] = PaymentStatus.PAID
    if dry_run:
        report.credited += 1
        return
    charge = ChargeReport(
        telegram_payment_charge_id=charge_id,
        currency=XTR,
        total_amount=int(tx.get("amount") or 0),
        invoice_payload=payload,
        user_id=user["id"],
        language_code=user.get("language_code"),
        is_recurring=bool(partner.get("subscription_period")),
        raw={"star_transaction": tx},
    )
    # The full path (fast=False): it looks the charge up first, so a charge the webhook
    # recorded in the meantime is found, never met as a failed INSERT mid-run.
    result = _commit(state, lambda: record_payment(state, charge, fast=False))
    announce_payment(state, result)
    if result.duplicate_delivery:
        report.already_recorded += 1  # the webhook got there in the meantime
    elif result.credited:
        report.credited += 1
        log.warning("reconcile credited %s, whose webhook never arrived", charge_id)
    else:
        report.recorded_not_credited += 1


def _save_offset(state: StarsState, offset: int) -> None:
    session = state.session
    row = session.get(Meta, OFFSET_KEY, populate_existing=True)
    if row is None:
        session.add(Meta(key=OFFSET_KEY, value=str(offset)))
    else:
        row.value = str(offset)
    session.commit()


T = TypeVar("T")


def _commit(state: StarsState, change: Callable[[], T]) -> T:
    """Run one ledger change in its own transaction and commit it (roll back on error)."""
    try:
        result = change()
        state.session.commit()
    except Exception:
        state.session.rollback()
        raise
    if isinstance(result, Payment):
        announce_refund(state, result, "found by reconcile")
    return result
