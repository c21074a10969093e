"""The intake: every update Telegram sends, from the webhook, a polling bot or a replay.

``handle_update`` classifies an update and hands it to its kind's handler, which logs it
raw, applies it and owns its transaction. A ``successful_payment`` reads top to bottom
here and in ``ledger``: ``handle_update`` → ``handle_charge`` (charge lock → raw log row →
``ledger.record_payment`` → one unit of work) → ``operations.announce``. Anything that is not
a payment goes to the host's bot.

Payment updates never go through telebot's handler machinery in webhook mode: a
``TeleBot(threaded=True)`` would run them in a thread pool after the request returned and
swallow their errors. They are handled here, synchronously, so the webhook's answer says
whether the payment is safely recorded.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, SQLAlchemyError, StatementError
from telebot import types

from .. import ledger, metrics
from ..errors import BotApiError, HostCallbackFailed
from ..models import Payment, UpdateKind
from ..operations.announce import announce_payment
from ..operations.refund import announce_refund
from ..precheckout import PreCheckout, PreCheckoutDecision, decide
from ..signals import pre_checkout_rejected
from ..subscriptions import apply_state_update
from ..transaction import UnitOfWork, abandon, end_read, unit_of_work
from .parse import (
    BAD_UPDATE_ID,
    MalformedUpdate,
    classify,
    parse_charge,
    parse_pre_checkout,
    parse_subscription,
    storable_update_id,
)
from .rawlog import claim_update, keep_failed, log_update, storable_text

if TYPE_CHECKING:
    from ..state import StarsState

log = logging.getLogger(__name__)

_MONEY = (UpdateKind.SUCCESSFUL_PAYMENT, UpdateKind.REFUNDED_PAYMENT)


@dataclass(frozen=True)
class Outcome:
    """What became of an update: ``kind`` and a short ``detail`` for logs and tests."""

    kind: str
    detail: str = ""
    #: A Bot API call to send as the webhook's reply (``{"method": ..., ...}``), if any.
    reply: dict[str, Any] | None = None
    #: Work that may wait until the answer is on its way (logging, signals).
    after: Callable[[], None] | None = None
    #: The update was not applied but kept unprocessed in ``stars_updates`` (``keep_failed``),
    #: answered 2xx all the same: a replay that ends so has failed again.
    kept: bool = False


def handle_update(
    state: StarsState, update: dict[str, Any], body: str | None = None, *, can_reply: bool = False
) -> Outcome:
    """Handle one update the webhook received (or a polling bot or ``replay`` hands over).

    Raises on anything that must make Telegram redeliver (a database error, a failing
    credit or debit callback: then the callback's own exception); the webhook answers 500
    then. An update that cannot be understood or stored (a field out of its column's
    range, a NUL, a lone surrogate) is kept in ``stars_updates`` with why, and returned: a
    redelivery of the same bytes could never do better.
    """
    kind = classify(update)
    raw_id = update.get("update_id")
    update_id = storable_update_id(raw_id)  # None: no column holds it, the row keeps it in its body only
    # Logged as text every database stores (a polling bot's update may hold a lone surrogate).
    body = storable_text(json.dumps(update, ensure_ascii=False) if body is None else body)
    if kind is not None and raw_id is not None and update_id is None:
        return _bad_update_id(state, kind, raw_id, body)
    if kind in _MONEY:
        assert kind is not None
        return handle_charge(state, kind, update["message"], update_id, body)
    try:
        if kind == UpdateKind.PRE_CHECKOUT:
            query = parse_pre_checkout(update["pre_checkout_query"])
            return handle_pre_checkout(state, query, update_id, body, can_reply=can_reply)
        if kind == UpdateKind.SUBSCRIPTION:
            return handle_subscription_update(state, update["subscription"], update_id, body)
    except MalformedUpdate as exc:
        # Recorded and answered 2xx: a redelivery of the same bytes could never do better.
        log.warning("update %s is malformed: %s", update_id, exc.messages)
        note = storable_text(str(exc))[:2000]
        log_update(state, update_id, kind or "other", body, processed=True, note=note)
        return Outcome(kind or "other", "malformed")
    return pass_to_bot(state, update)


def _bad_update_id(state: StarsState, kind: str, raw_id: Any, body: str) -> Outcome:
    """A payment update whose ``update_id`` no column holds: logged with why, answered 2xx."""
    bad_id = MalformedUpdate(BAD_UPDATE_ID)
    log.warning("update %r is malformed: %s", raw_id, bad_id.messages)
    if kind == UpdateKind.PRE_CHECKOUT:  # too late to answer once a human looks
        log_update(state, None, kind, body, processed=True, note=str(bad_id))
        return Outcome(kind, "malformed")
    keep_failed(state, None, kind, body, bad_id)
    return Outcome(kind, "malformed: kept for replay", kept=True)


# --- pre-checkout -------------------------------------------------------------------------


def handle_pre_checkout(
    state: StarsState, query: PreCheckout, update_id: int | None, body: str, *, can_reply: bool = False
) -> Outcome:
    """Decide, commit the hold together with the log row (one commit), then answer.

    Nothing is held while Telegram is called: the approval's hold is committed first, so
    a racing second pre-checkout finds the order held and is refused, and a redelivery of
    this query (same id) is approved again. With ``STARS_ANSWER_IN_RESPONSE`` and
    ``can_reply`` (a webhook request), the answer goes back as the webhook's own reply;
    otherwise ``answerPreCheckoutQuery`` is called and its failure makes Telegram redeliver.
    """
    started = time.perf_counter()
    decision = _decide_and_record(state, query, update_id, body)
    error_message = (
        None if decision.ok else state.message(decision.reason or "try_again", query.language_code)
    )
    announce = functools.partial(_announce_pre_checkout, state, query, decision, started)
    detail = "ok" if decision.ok else str(decision.reason)
    if can_reply and state.settings.answer_in_response:
        reply: dict[str, Any] = {
            "method": "answerPreCheckoutQuery",
            "pre_checkout_query_id": query.id,
            "ok": decision.ok,
        }
        if error_message:
            reply["error_message"] = error_message
        return Outcome(UpdateKind.PRE_CHECKOUT, detail, reply=reply, after=announce)
    try:
        state.gateway.answer_pre_checkout(query.id, decision.ok, error_message)
    except BotApiError as exc:
        if exc.error_code != 400:
            raise  # Telegram busy or unreachable: answer 500 so it redelivers and we answer again
        # 400: the query was already answered or is too old; a redelivery cannot help.
        log.warning("Telegram refused our answer to pre-checkout %s: %s", query.id, exc)
    return Outcome(UpdateKind.PRE_CHECKOUT, detail, after=functools.partial(announce, time.perf_counter()))


def _decide_and_record(
    state: StarsState, query: PreCheckout, update_id: int | None, body: str
) -> PreCheckoutDecision:
    """The decision, committed: an approval's hold, or a refusal's log row (never raises)."""
    try:
        state.credit_callback()  # never approve what could not be credited
        decision = decide(state, query)
    except Exception:
        log.exception("pre-checkout %s could not be decided; refusing it", query.id)
        abandon(state)
        decision = PreCheckoutDecision(ok=False, reason="try_again")
    try:
        if decision.ok:
            # The hold names the query (``hold_query_id``): an approval needs no log row.
            UnitOfWork(state).commit()
        else:
            log_update(state, update_id, UpdateKind.PRE_CHECKOUT, body, processed=True, note=decision.reason)
    except Exception:
        # Only the hold or the refusal's record is lost (the hold is an optimisation: the
        # duplicate-payment policy covers a second payment); the buyer still gets the decision.
        log.exception("could not commit pre-checkout %s", query.id)
        abandon(state)
    return decision


def _announce_pre_checkout(
    state: StarsState,
    query: PreCheckout,
    decision: PreCheckoutDecision,
    started: float,
    answered_at: float | None = None,
) -> None:
    """Count the answer and signal a refusal (in the reply's case, once the reply was sent)."""
    spent = (answered_at or time.perf_counter()) - started
    metrics.pre_checkout_answered(state, "approved" if decision.ok else str(decision.reason), spent)
    if not decision.ok:
        state.send(
            pre_checkout_rejected,
            query_id=query.id,
            user_id=query.user_id,
            reason=decision.reason,
            order=decision.order,
        )


# --- payments and refunds -------------------------------------------------------------------


def handle_charge(state: StarsState, kind: str, msg: Any, update_id: int | None, body: str) -> Outcome:
    """A ``successful_payment`` or ``refunded_payment``: applied and logged in one commit.

    Telegram is the durable queue until the webhook answers 2xx, so the happy path needs
    one commit: the charge lock, the raw log row (written processed), the ledger's change
    and the host's credit, together. A crash before the commit leaves nothing and answers
    no 2xx, so Telegram delivers again. A failure is kept with its error for ``flask
    stars replay`` (``keep_failed``); if the database cannot take even that, the body
    goes to the disk spool. Signals follow the commit.
    """
    try:
        report = parse_charge(msg, kind, update_id)
    except MalformedUpdate as exc:
        # Kept with its error for a human (and `replay`), answered 2xx: a redelivery of the
        # same bytes could never do better.
        keep_failed(state, update_id, kind, body, exc)
        return Outcome(kind, "malformed: kept for replay", kept=True)
    charge_id = report.telegram_payment_charge_id
    work = UnitOfWork(state, keep_loaded=True)  # signals read the payment after the commit
    for fast in (True, False):
        try:
            if not claim_update(state, update_id, kind, body, lock_key=charge_id):
                end_read(state)
                metrics.payment_outcome(state, "duplicate_delivery")
                return Outcome(kind, "duplicate update")
            if kind == UpdateKind.SUCCESSFUL_PAYMENT:
                result = ledger.record_payment(state, report, charge_locked=True, fast=fast)
                work.after_commit(functools.partial(announce_payment, state, result))
            else:
                refunded = ledger.apply_refund(state, charge_id, report.total_amount, charge_locked=True)
                work.after_commit(functools.partial(announce_refund, state, refunded))
            work.commit(announce=False)  # announced below, out of this error handling
            break
        except IntegrityError as exc:
            if fast and kind == UpdateKind.SUCCESSFUL_PAYMENT:
                work.rollback()  # the charge is in the ledger under another order
                continue
            keep_failed(state, update_id, kind, body, exc)
            raise
        except HostCallbackFailed as exc:
            # The host's code, not the update: kept with the callback's own error, which is
            # raised as it was (the webhook answers 500 and Telegram redelivers; a polling
            # bot or a replay gets the host's exception).
            keep_failed(state, update_id, kind, body, exc.original)
            raise exc.original from None
        except Exception as exc:
            keep_failed(state, update_id, kind, body, exc)
            if not _unstorable(exc):
                raise
            # A value the database cannot store that the schema let through: kept with
            # its error and answered 2xx, never a 500 that Telegram redelivers forever.
            log.error("update %s cannot be stored: %s", update_id, exc)
            return Outcome(kind, "unstorable: kept for replay", kept=True)
    work.announce()
    if kind == UpdateKind.REFUNDED_PAYMENT:
        return _refund_outcome(state, kind, refunded)
    # The signals count the rest; these two outcomes have none.
    if result.duplicate_delivery:
        metrics.payment_outcome(state, "duplicate_delivery")
        return Outcome(kind, "duplicate charge")
    if result.payment.problem == "refunded_before_paid":
        metrics.payment_refunded_first(state, result.payment)
    return Outcome(kind, "credited" if result.credited else str(result.payment.problem))


def _refund_outcome(state: StarsState, kind: str, refunded: Payment | None) -> Outcome:
    """A committed, announced ``refunded_payment`` (``refunded`` None: kept for a payment not seen yet)."""
    if refunded is None:
        metrics.payment_outcome(state, "refund_noted")
    return Outcome(kind, "refunded" if refunded is not None else "noted")


def _unstorable(error: BaseException) -> bool:
    """Whether ``error`` says a value cannot be stored (``DataError``, or what the driver
    raised converting a parameter: a lone surrogate, an int out of range), rather than a
    database that failed, a bug, or the host's credit or debit callback (whose errors make
    Telegram redeliver, as documented)."""
    if isinstance(error, HostCallbackFailed):
        return False
    if isinstance(error, DataError):
        return True
    if isinstance(error, DBAPIError):
        return False  # the database: down, locked, a constraint
    if isinstance(error, StatementError) and error.orig is not None:
        error = error.orig  # a parameter the driver could not convert
    return isinstance(error, (ValueError, OverflowError))  # UnicodeEncodeError is a ValueError


# --- subscriptions and the rest -------------------------------------------------------------


def handle_subscription_update(state: StarsState, data: Any, update_id: int | None, body: str) -> Outcome:
    """The user cancelled or re-enabled a plan, or a renewal failed: note the new state.

    One that does not validate, or holds a value the database cannot store, is kept
    unprocessed with its error (``keep_failed``) and answered: its change was not noted.
    A database error otherwise raises, and Telegram redelivers.
    """
    kind = UpdateKind.SUBSCRIPTION
    try:
        fields = parse_subscription(data)
    except MalformedUpdate as malformed:
        log.warning("update %s is malformed: %s", update_id, malformed.messages)
        keep_failed(state, update_id, kind, body, malformed)
        return Outcome(kind, "malformed: kept for replay", kept=True)
    new_state = fields["state"]
    try:
        with unit_of_work(state):
            sub = apply_state_update(state, fields["user"]["id"], fields["invoice_payload"], new_state)
    except Exception as exc:
        if not _unstorable(exc):
            raise
        log.error("update %s cannot be stored: %s", update_id, exc)
        keep_failed(state, update_id, kind, body, exc)
        return Outcome(kind, "unstorable: kept for replay", kept=True)
    try:
        log_update(state, update_id, kind, body, processed=True, note=None if sub else "unknown")
    except SQLAlchemyError:
        log.exception("could not log subscription update %s", update_id)
        abandon(state)
    return Outcome(kind, new_state if sub else "unknown subscription")


def pass_to_bot(state: StarsState, update: dict[str, Any]) -> Outcome:
    """Anything that is not a payment goes to the host's TeleBot; its errors are its own."""
    try:
        state.bot.process_new_updates([types.Update.de_json(update)])  # type: ignore[no-untyped-call]
    except Exception:
        log.exception("the bot failed on update %s", update.get("update_id"))
        return Outcome("other", "bot error")
    return Outcome("other", "passed to bot")
