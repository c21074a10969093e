"""One reconcile run: page through ``getStarTransactions`` and mend the ledger.

Pages are handled one at a time, so memory stays flat, each transaction in Telegram's
order and each change in a short transaction of its own; nothing is open while Telegram
is asked. A missed payment goes through ``ledger.record_payment`` (the webhook's own
path: exactly-once still holds), a missed refund through ``ledger.apply_refund``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from .. import audit
from ..errors import HostCallbackFailed
from ..ledger import ChargeReport, apply_refund, due_refunds, record_payment
from ..models import Order, Payment, PaymentStatus, order_id_from_payload, utcnow
from ..operations.announce import announce_payment
from ..operations.refund import announce_refund, refund
from ..packs import XTR
from ..transaction import abandon, end_read, unit_of_work
from .position import LEGACY, MOVED, PAST_END, UNREADABLE, Position, position_key, save_position, saved_texts
from .report import ReconcileReport
from .runs import Heartbeat, record_end, record_start
from .transactions import OTHER, OUT, kind, telegram_date

if TYPE_CHECKING:
    from ..state import StarsState

log = logging.getLogger(__name__)

PAGE_SIZE = 100  # Telegram's maximum


def reconcile(
    state: StarsState,
    *,
    dry_run: bool = False,
    full: bool = False,
    on_page: Callable[[ReconcileReport], None] | None = None,
    page_size: int = PAGE_SIZE,
    actor: audit.Actor | None = None,
) -> ReconcileReport:
    """Page through getStarTransactions from the saved position, checked (``full``: from 0).

    The run is recorded in ``stars_reconcile_runs`` (``record_start``, a heartbeat after
    each page, ``record_end``), a failed one with its error before the error is raised
    again (a host callback's own error, when the credit or debit callback raised), and in
    the audit trail (action ``reconcile``, the run's id, by ``actor``, the Python API's
    when None; outcome ``ok``, ``warning`` or ``failed``). ``ReconcileBusy`` when another
    run is under way. A ``dry_run`` changes nothing, so it writes no record either (nor
    would it tell that the ledger was mended); it does not take turns.
    ``flask stars reconcile``, ``FlaskStars.reconcile`` and the dashboard's Run now all
    come here.
    """
    who = actor or audit.python_actor(None)
    report = ReconcileReport(dry_run=dry_run, full=full, actor=f"{who.name} ({who.source})")
    report.position_key = position_key(state)
    run = functools.partial(_run, state, report, who, full=full, on_page=on_page, page_size=page_size)
    if dry_run:
        run(beat=Heartbeat(state, None))
        return report
    run_id = report.run_id = record_start(state, report)
    try:
        run(beat=Heartbeat(state, run_id))
    except BaseException as exc:
        failure = exc.original if isinstance(exc, HostCallbackFailed) else exc
        _record_failure(state, who, report, run_id, failure)
        if failure is not exc:
            raise failure from None  # the host's own error, as the host raised it
        raise
    record_end(state, run_id, report)
    if report.warning:
        log.warning("reconcile run %s: %s", run_id, report.warning)
    audit.record(state, who, audit.RECONCILE, target=run_id, outcome=report.outcome, detail=report.summary())
    return report


def _record_failure(
    state: StarsState, who: audit.Actor, report: ReconcileReport, run_id: int, failure: BaseException
) -> None:
    """Roll back, then record run ``run_id`` as failed with ``failure`` (row and audit trail)."""
    abandon(state)
    error = f"{failure.__class__.__name__}: {failure}"
    try:
        record_end(state, run_id, report, error=error)
    except Exception:  # the database is gone too: the row stays unfinished until it is stale
        abandon(state)
        log.exception("could not record the failure of reconcile run %s", run_id)
    audit.record(
        state,
        who,
        audit.RECONCILE,
        target=run_id,
        outcome=audit.FAILED,
        detail=f"{error}; {report.summary()}",
    )


def _start(state: StarsState, report: ReconcileReport, full: bool) -> tuple[Position | None, int]:
    """Where to start reading: the position to check (None: nothing to check) and the offset
    of the first page, after reading what was saved (and ending that read)."""
    text, legacy = saved_texts(state, report.position_key or position_key(state))
    if text is None:
        if legacy is not None and legacy.strip() not in ("", "0"):
            report.position_not_used(LEGACY, int(legacy) if legacy.strip().isdigit() else None)
        return None, 0
    try:
        saved = Position.loads(text)
    except ValueError:
        report.position_not_used(UNREADABLE, None)
        return None, 0
    report.saved_offset = saved.offset
    if saved.offset == 0:
        return None, 0
    return saved, 0 if full else saved.offset - 1


def _run(
    state: StarsState,
    report: ReconcileReport,
    actor: audit.Actor,
    *,
    full: bool,
    on_page: Callable[[ReconcileReport], None] | None,
    page_size: int,
    beat: Heartbeat,
) -> None:
    """The run itself, filling ``report`` as it goes (so a failed run's report says how far it got)."""
    check, offset = _start(state, report, full)
    resuming = check is not None and not full
    report.start_offset = report.end_offset = offset + (1 if resuming else 0)
    while True:
        page = state.gateway.star_transactions(offset, page_size)
        check, new = _check_saved(report, check, offset, page, resuming)
        if resuming and report.position_problem is not None:
            # The saved position does not hold: read Telegram's list from its start.
            resuming = False
            offset = report.start_offset = report.end_offset = 0
            continue
        resuming = False
        # Applied in Telegram's order, each seeing what the ones before it wrote: a refund
        # listed after its payment on the same page finds the payment just recorded.
        known = _ledger_statuses(state, new)
        for tx in new:
            _one(state, tx, known, report)
            beat.maybe(report)
        offset += len(page)
        report.read += len(new)
        report.end_offset = offset
        if not report.dry_run and page:
            beat.write(report, Position.after(offset, page[-1]))
        if on_page is not None:
            on_page(report)
        if len(page) < page_size:
            break
    _finish(state, report, actor, check, beat)


def _check_saved(
    report: ReconcileReport, check: Position | None, offset: int, page: list[dict[str, Any]], resuming: bool
) -> tuple[Position | None, list[dict[str, Any]]]:
    """Check the saved position against ``page`` (read from ``offset``) if it reaches it: the
    position still to check (None once checked), and the page's transactions to apply (a
    resumed run read the saved one last time)."""
    if check is None:
        return None, page
    if offset <= check.offset - 1 < offset + len(page):
        if not check.names(page[check.offset - 1 - offset]):
            report.position_not_used(MOVED, check.offset)
            return None, page
        return None, page[1:] if resuming else page
    if resuming:
        # Nothing at the saved position: the list is shorter than it was.
        report.position_not_used(PAST_END, check.offset)
        return None, page
    return check, page


def _finish(
    state: StarsState, report: ReconcileReport, actor: audit.Actor, check: Position | None, beat: Heartbeat
) -> None:
    """After the last page: the position's fate, the report's note, and the due refunds."""
    if check is not None:  # a full run that never reached the saved position
        report.position_not_used(PAST_END, check.offset)
    if not report.dry_run and report.end_offset == 0 and (report.saved_offset or report.position_problem):
        save_position(state, None)  # nothing listed now: the saved position (or the legacy one) goes
    if report.read == 0 and not report.warning:
        report.note = report.note or (
            f"no new transactions since position {report.end_offset}"
            if report.end_offset
            else "Telegram lists no transactions for this bot yet"
        )
    due = due_refunds(state)
    end_read(state)
    if report.dry_run:
        report.due_refunds_finished = len(due)
        return
    for charge_id in due:
        refund(
            state, charge_id, reason="a second payment for a paid order, finished by reconcile", actor=actor
        )
        report.due_refunds_finished += 1
        beat.write(report)


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
    end_read(state)
    return {charge_id: status for charge_id, status in rows}


def _one(state: StarsState, tx: dict[str, Any], known: dict[str, str], report: ReconcileReport) -> None:
    """One transaction; ``known`` maps charge ids to ledger statuses and is kept current."""
    direction, partner = kind(tx)
    charge_id = tx.get("id")
    if direction == OTHER or not isinstance(charge_id, str) or not charge_id:
        report.other += 1
    elif direction == OUT:
        _refund_found(state, tx, charge_id, known, report)
    else:
        _payment_found(state, tx, charge_id, partner, known, report)


def _refund_found(
    state: StarsState, tx: dict[str, Any], charge_id: str, known: dict[str, str], report: ReconcileReport
) -> None:
    """An outgoing transaction: a refund, applied unless the ledger has it."""
    status = known.get(charge_id)
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
    if report.dry_run:
        return
    refunded_at = telegram_date(tx)
    stars = int(tx.get("amount") or 0)
    with unit_of_work(state) as work:
        refunded = apply_refund(state, charge_id, stars, refunded_at=refunded_at, found_at=utcnow())
        work.after_commit(lambda: announce_refund(state, refunded, "found by reconcile"))


def _payment_found(
    state: StarsState,
    tx: dict[str, Any],
    charge_id: str,
    partner: dict[str, Any],
    known: dict[str, str],
    report: ReconcileReport,
) -> None:
    """An incoming transaction: a payment, recorded and credited unless the ledger has it."""
    if known.get(charge_id) is not None:
        report.already_recorded += 1
        return
    payload = partner.get("invoice_payload") or ""
    user = partner.get("user") or {}
    order_id = order_id_from_payload(payload)
    order = state.session.get(Order, order_id) if order_id else None
    end_read(state)
    if order is None or not isinstance(user.get("id"), int):
        report.add_unmatched(tx, "an incoming payment whose payload names none of our orders")
        return
    known[charge_id] = PaymentStatus.PAID
    if report.dry_run:
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
        paid_at=telegram_date(tx),  # when Telegram charged it, not when reconcile ran
        found_at=utcnow(),
    )
    # The full path (fast=False): it looks the charge up first, so a charge the webhook
    # recorded in the meantime is found, never met as a failed INSERT mid-run.
    with unit_of_work(state) as work:
        result = record_payment(state, charge, fast=False)
        work.after_commit(lambda: announce_payment(state, result))
    if result.duplicate_delivery:
        report.already_recorded += 1  # the webhook got there in the meantime
    elif result.credited:
        report.credited += 1
        log.warning("reconcile credited %s, whose webhook never arrived", charge_id)
    else:
        report.recorded_not_credited += 1
