"""The intake: every update Telegram sends, from the webhook, a polling bot or a replay.

One place classifies an update, parses it, logs it raw, handles it and owns its
transaction. A ``successful_payment`` reads top to bottom here and in ``ledger``:
``handle_update`` → ``handle_charge`` (charge lock → raw log row → ``ledger.record_payment``
→ one commit) → ``ledger.announce_payment``. Anything that is not a payment goes to the host's bot.

Payment updates never go through telebot's handler machinery in webhook mode: a
``TeleBot(threaded=True)`` would run them in a thread pool after the request returned and
swallow their errors. They are handled here, synchronously, so the webhook's answer says
whether the payment is safely recorded.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    IntegrityError,
    OperationalError,
    SQLAlchemyError,
    StatementError,
)
from telebot import types

from . import audit, ledger, metrics
from .audit import Actor, python_actor
from .db import insert_unless_exists, kept_after_commit, lock_and_insert_unless_exists, lock_for_write
from .errors import BotApiError, StarsError
from .messages import message
from .models import INT64_MAX, UpdateKind, UpdateLog, utcnow
from .precheckout import PreCheckout, PreCheckoutDecision, decide
from .schemas import (
    ValidationError,
    payment_message_schema,
    pre_checkout_query_schema,
    subscription_update_schema,
    unstorable_text,
)
from .signals import pre_checkout_rejected
from .subscriptions import apply_state_update

if TYPE_CHECKING:
    from .state import StarsState

log = logging.getLogger(__name__)

#: What makes two log rows the same update: its id *and* its body's digest.
LOG_KEY = ("update_id", "digest")


class MalformedUpdate(StarsError):
    """A payment update whose fields are not what Telegram sends."""

    error = "invalid_update"

    def __init__(self, messages: Any) -> None:
        super().__init__(f"malformed payment update: {messages}")
        self.messages = messages


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


# --- classify and parse -------------------------------------------------------------------


def classify(update: dict[str, Any]) -> str | None:
    """The payment kind of an update (``UpdateKind``), or None for any other update."""
    if update.get("pre_checkout_query") is not None:
        return UpdateKind.PRE_CHECKOUT
    if isinstance(update.get("subscription"), dict):
        return UpdateKind.SUBSCRIPTION
    msg = update.get("message")
    if isinstance(msg, dict):
        if msg.get("successful_payment") is not None:
            return UpdateKind.SUCCESSFUL_PAYMENT
        if msg.get("refunded_payment") is not None:
            return UpdateKind.REFUNDED_PAYMENT
    return None


def parse_pre_checkout(data: Any) -> PreCheckout:
    """A ``pre_checkout_query`` object as a ``PreCheckout``; ``MalformedUpdate`` if it is not one."""
    try:
        q = pre_checkout_query_schema.load(data if isinstance(data, dict) else {})
    except ValidationError as exc:
        raise MalformedUpdate(exc.messages) from None
    return PreCheckout(
        id=q["id"],
        user_id=q["from_"]["id"],
        currency=q["currency"],
        total_amount=q["total_amount"],
        invoice_payload=q["invoice_payload"],
        language_code=q["from_"]["language_code"],
    )


def parse_charge(msg: Any, kind: str, update_id: int | None) -> ledger.ChargeReport:
    """A payment message's ``successful_payment``/``refunded_payment`` as a ``ChargeReport``."""
    try:
        m = payment_message_schema.load(msg if isinstance(msg, dict) else {})
    except ValidationError as exc:
        raise MalformedUpdate(exc.messages) from None
    charge = m.get(kind)
    if charge is None:
        raise MalformedUpdate({kind: ["Missing data for required field."]})
    return ledger.ChargeReport(
        telegram_payment_charge_id=charge["telegram_payment_charge_id"],
        currency=charge["currency"],
        total_amount=charge["total_amount"],
        invoice_payload=charge["invoice_payload"],
        provider_payment_charge_id=charge["provider_payment_charge_id"],
        user_id=m["from_"]["id"],
        chat_id=(m.get("chat") or {}).get("id"),
        language_code=m["from_"]["language_code"],
        update_id=update_id,
        is_recurring=bool(charge.get("is_recurring")),
        subscription_expiration_date=charge.get("subscription_expiration_date"),
        raw=msg,
    )


def storable_text(text: str) -> str:
    """``text`` as every database stores it: unchanged, unless it holds a NUL or a lone
    surrogate (``schemas.unstorable_text``), which are written as their JSON escapes
    (``\\u0000``, ``\\udc80``). In an update's JSON text those escapes mean the same, so
    the logged body still parses to the update that arrived."""
    if unstorable_text(text) is None:
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\u0000")


# --- handle ---------------------------------------------------------------------------------


def handle_update(
    state: StarsState, update: dict[str, Any], body: str | None = None, *, can_reply: bool = False
) -> Outcome:
    """Handle one update the webhook received (or a polling bot or ``replay`` hands over).

    Raises on anything that must make Telegram redeliver (a database error, a failing
    credit callback); the webhook answers 500 then. An update that cannot be understood
    or stored (a field out of its column's range, a NUL, a lone surrogate) is kept in
    ``stars_updates`` with why, and returned: a redelivery of the same bytes could never
    do better.
    """
    kind = classify(update)
    raw_id = update.get("update_id")
    update_id = raw_id if isinstance(raw_id, int) and not isinstance(raw_id, bool) else None
    if update_id is not None and not 0 <= update_id <= INT64_MAX:
        update_id = None  # no column holds it: the row keeps it in its body only
    # Logged as text every database stores (a polling bot's update may hold a lone surrogate).
    body = storable_text(json.dumps(update, ensure_ascii=False) if body is None else body)
    if kind is not None and raw_id is not None and update_id is None:
        bad_id = MalformedUpdate({"update_id": ["Not an update id: an integer from 0 to 2^63-1."]})
        log.warning("update %r is malformed: %s", raw_id, bad_id.messages)
        if kind == UpdateKind.PRE_CHECKOUT:  # too late to answer once a human looks
            log_update(state, None, kind, body, processed=True, note=str(bad_id))
            return Outcome(kind, "malformed")
        keep_failed(state, None, kind, body, bad_id)
        return Outcome(kind, "malformed: kept for replay", kept=True)
    if kind in (UpdateKind.SUCCESSFUL_PAYMENT, UpdateKind.REFUNDED_PAYMENT):
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
    try:
        state.credit_callback()  # never approve what could not be credited
        decision = decide(state, query)
    except Exception:
        log.exception("pre-checkout %s could not be decided; refusing it", query.id)
        _rollback_quietly(state)
        decision = PreCheckoutDecision(ok=False, reason="try_again")
    error_message = None if decision.ok else message(decision.reason or "try_again", query.language_code)
    try:
        if decision.ok:
            # The hold names the query (``hold_query_id``): an approval needs no log row.
            state.session.commit()
        else:
            log_update(state, update_id, UpdateKind.PRE_CHECKOUT, body, processed=True, note=decision.reason)
    except Exception:
        # Only the hold or the refusal's record is lost (the hold is an optimisation: the
        # duplicate-payment policy covers a second payment); the buyer still gets the decision.
        log.exception("could not commit pre-checkout %s", query.id)
        _rollback_quietly(state)

    def announce(answered_at: float | None = None) -> None:
        # In the reply's case this runs once the reply has been sent.
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
    answered_at = time.perf_counter()
    return Outcome(UpdateKind.PRE_CHECKOUT, detail, after=functools.partial(announce, answered_at))


def handle_charge(state: StarsState, kind: str, msg: Any, update_id: int | None, body: str) -> Outcome:
    """A ``successful_payment`` or ``refunded_payment``: applied and logged in one commit.

    Telegram is the durable queue until the webhook answers 2xx, so the happy path needs
    one commit: the charge lock, the raw log row (written processed), the ledger's change
    and the host's credit, together. A crash before the commit leaves nothing and answers
    no 2xx, so Telegram delivers again. A failure is kept with its error for ``flask
    stars replay`` (``keep_failed``); if the database cannot take even that, the body
    goes to the disk spool. Signals follow the commit.
    """
    session = state.session
    try:
        report = parse_charge(msg, kind, update_id)
    except MalformedUpdate as exc:
        # Kept with its error for a human (and `replay`), answered 2xx: a redelivery of the
        # same bytes could never do better.
        keep_failed(state, update_id, kind, body, exc)
        return Outcome(kind, "malformed: kept for replay", kept=True)
    charge_id = report.telegram_payment_charge_id
    with kept_after_commit(session):  # signals read the payment after the commit
        for fast in (True, False):
            try:
                if not claim_update(state, update_id, kind, body, lock_key=charge_id):
                    session.rollback()
                    metrics.payment_outcome(state, "duplicate_delivery")
                    return Outcome(kind, "duplicate update")
                if kind == UpdateKind.SUCCESSFUL_PAYMENT:
                    result = ledger.record_payment(state, report, charge_locked=True, fast=fast)
                else:
                    refunded = ledger.apply_refund(state, charge_id, report.total_amount, charge_locked=True)
                session.commit()
                break
            except IntegrityError as exc:
                if fast and kind == UpdateKind.SUCCESSFUL_PAYMENT:
                    _rollback_quietly(state)  # the charge is in the ledger under another order
                    continue
                keep_failed(state, update_id, kind, body, exc)
                raise
            except Exception as exc:
                keep_failed(state, update_id, kind, body, exc)
                if not _unstorable(state, exc):
                    raise
                # A value the database cannot store that the schema let through: kept with
                # its error and answered 2xx, never a 500 that Telegram redelivers forever.
                log.error("update %s cannot be stored: %s", update_id, exc)
                return Outcome(kind, "unstorable: kept for replay", kept=True)
        if kind == UpdateKind.REFUNDED_PAYMENT:
            ledger.announce_refund(state, refunded)
            if refunded is None:
                metrics.payment_outcome(state, "refund_noted")
            return Outcome(kind, "refunded" if refunded is not None else "noted")
        ledger.announce_payment(state, result)
    # The signals count the rest; these two outcomes have none.
    if result.duplicate_delivery:
        metrics.payment_outcome(state, "duplicate_delivery")
        return Outcome(kind, "duplicate charge")
    if result.payment.problem == "refunded_before_paid":
        metrics.payment_refunded_first(state, result.payment)
    return Outcome(kind, "credited" if result.credited else str(result.payment.problem))


def handle_subscription_update(state: StarsState, data: Any, update_id: int | None, body: str) -> Outcome:
    """The user cancelled or re-enabled a plan, or a renewal failed: note the new state.

    One that does not validate, or holds a value the database cannot store, is kept
    unprocessed with its error (``keep_failed``) and answered: its change was not noted.
    A database error otherwise raises, and Telegram redelivers.
    """
    kind = UpdateKind.SUBSCRIPTION
    try:
        fields = subscription_update_schema.load(data if isinstance(data, dict) else {})
    except ValidationError as exc:
        malformed = MalformedUpdate({"subscription": exc.messages})
        log.warning("update %s is malformed: %s", update_id, malformed.messages)
        keep_failed(state, update_id, kind, body, malformed)
        return Outcome(kind, "malformed: kept for replay", kept=True)
    new_state = fields["state"]
    try:
        sub = apply_state_update(state, fields["user"]["id"], fields["invoice_payload"], new_state)
        state.session.commit()
    except Exception as exc:
        if not _unstorable(state, exc):
            _rollback_quietly(state)
            raise
        log.error("update %s cannot be stored: %s", update_id, exc)
        keep_failed(state, update_id, kind, body, exc)
        return Outcome(kind, "unstorable: kept for replay", kept=True)
    try:
        log_update(
            state, update_id, UpdateKind.SUBSCRIPTION, body, processed=True, note=None if sub else "unknown"
        )
    except SQLAlchemyError:
        log.exception("could not log subscription update %s", update_id)
        _rollback_quietly(state)
    return Outcome(UpdateKind.SUBSCRIPTION, new_state if sub else "unknown subscription")


def pass_to_bot(state: StarsState, update: dict[str, Any]) -> Outcome:
    """Anything that is not a payment goes to the host's TeleBot; its errors are its own."""
    try:
        state.bot.process_new_updates([types.Update.de_json(update)])  # type: ignore[no-untyped-call]
    except Exception:
        log.exception("the bot failed on update %s", update.get("update_id"))
        return Outcome("other", "bot error")
    return Outcome("other", "passed to bot")


def _unstorable(state: StarsState, error: BaseException) -> bool:
    """Whether ``error`` says a value cannot be stored (``DataError``, or what the driver
    raised converting a parameter: a lone surrogate, an int out of range), rather than a
    database that failed, a bug, or the host's credit or debit callback (whose errors make
    Telegram redeliver, as documented)."""
    if _raised_by_host(state, error):
        return False
    if isinstance(error, DataError):
        return True
    if isinstance(error, DBAPIError):
        return False  # the database: down, locked, a constraint
    if isinstance(error, StatementError) and error.orig is not None:
        error = error.orig  # a parameter the driver could not convert
    return isinstance(error, (ValueError, OverflowError))  # UnicodeEncodeError is a ValueError


def _raised_by_host(state: StarsState, error: BaseException) -> bool:
    # The callbacks run inside StarsState.credit/debit: their frames are on the traceback.
    callbacks = {type(state).credit.__code__, type(state).debit.__code__}
    frame = error.__traceback__
    while frame is not None:
        if frame.tb_frame.f_code in callbacks:
            return True
        frame = frame.tb_next
    return False


def _rollback_quietly(state: StarsState) -> None:
    try:
        state.session.rollback()
    except SQLAlchemyError:
        log.debug("rollback failed too", exc_info=True)


# --- the raw update log ------------------------------------------------------------------

#: The log row a ``replay`` is handling now: a polling bot's update (no ``update_id``) is
#: found by its body, and of several rows with that body this one is taken over.
_replaying_row: ContextVar[int | None] = ContextVar("stars_replaying_row", default=None)


def _log_values(
    update_id: int | None, kind: str, body: str, *, processed: bool, note: str | None
) -> dict[str, Any]:
    now = utcnow()
    return {
        "update_id": update_id,
        "digest": hashlib.sha256(body.encode()).hexdigest(),
        "kind": kind,
        "body": body,
        "attempts": 1,
        "processed": processed,
        "processed_at": now if processed else None,
        "error": note,
        "received_at": now,
        # Every column: PostgreSQL's locked insert (``lock_and_insert_unless_exists``) names them all.
        "archived_at": None,
        "archived_by": None,
        "archived_reason": None,
    }


def _insert_log(state: StarsState, values: dict[str, Any]) -> int | None:
    """Insert a log row unless the same update is logged: its id, or None.

    A row without ``update_id`` is always inserted (``ON CONFLICT`` never matches NULL):
    callers look for its earlier row by body first (``_logged_before``).
    """
    conn = state.session.connection()
    stmt = insert_unless_exists(conn.dialect.name, UpdateLog, LOG_KEY)
    row_id: int | None = conn.execute(stmt, values).scalar()
    return row_id


def _logged_before(state: StarsState, values: dict[str, Any], *, unprocessed: bool = False) -> Any:
    """The log row of the same update, as ``(id, processed)``; None if there is none.

    With an ``update_id``: the row with that id *and* body (the unique key). Without one (a
    polling bot's update): a row with the same body and no id, the row being replayed
    first, then one not processed yet (a failed attempt to take over), then the oldest;
    with ``unprocessed``, only a row not processed yet.
    """
    stmt = sa.select(UpdateLog.id, UpdateLog.processed).where(UpdateLog.digest == values["digest"])
    if values["update_id"] is not None:
        return state.session.execute(stmt.where(UpdateLog.update_id == values["update_id"])).one_or_none()
    stmt = stmt.where(UpdateLog.update_id.is_(None))
    if unprocessed:
        stmt = stmt.where(UpdateLog.processed.is_(False))
    order: list[Any] = [UpdateLog.processed, UpdateLog.id]
    replaying = _replaying_row.get()
    if replaying is not None:
        order.insert(0, sa.case((UpdateLog.id == replaying, 0), else_=1))
    return state.session.execute(stmt.order_by(*order).limit(1)).first()


def claim_update(state: StarsState, update_id: int | None, kind: str, body: str, *, lock_key: str) -> bool:
    """In the caller's transaction, take the write lock on ``lock_key`` (the charge) and log a
    money update as processed: False if it already was (one round trip on PostgreSQL).

    An update is the same only if its id *and* its body match: Telegram restarts its ids at
    random after a week of silence, and a reused id must never hide a new payment. A row
    left by an earlier failed attempt is taken over (marked processed, one more attempt).
    A polling bot's update has no id: its row is found by its body, under the charge lock
    (the body holds the charge, so the same body is the same payment), so its replay or
    redelivery takes over the failed row instead of adding one.
    """
    session = state.session
    values = _log_values(update_id, kind, body, processed=True, note=None)
    if update_id is None:
        lock_for_write(session, lock_key)
        earlier = _logged_before(state, values)
        if earlier is None:
            _insert_log(state, values)
            return True
    else:
        if lock_and_insert_unless_exists(session, UpdateLog, LOG_KEY, values, lock_key):
            return True
        earlier = _logged_before(state, values)
    if earlier.processed:
        return False
    session.execute(
        sa.update(UpdateLog)
        .where(UpdateLog.id == earlier.id)
        .values(
            attempts=UpdateLog.attempts + 1, processed=True, processed_at=values["processed_at"], error=None
        )
    )
    return True


def log_update(
    state: StarsState, update_id: int | None, kind: str, body: str, *, processed: bool, note: str | None
) -> None:
    """Write an update to the raw log in its own transaction.

    A redelivery (or replay) of an update whose row is not processed yet adds an attempt
    to that row, with its new note, and marks it processed when it now is. A polling bot's
    update (no ``update_id``) finds that row by its body.
    """
    session = state.session
    values = _log_values(update_id, kind, body, processed=processed, note=note)
    if update_id is None:
        earlier = _logged_before(state, values, unprocessed=True)
        if earlier is None:
            _insert_log(state, values)
    else:
        earlier = None if _insert_log(state, values) else _logged_before(state, values)
    if earlier is not None and not earlier.processed:
        change: dict[str, Any] = {"attempts": UpdateLog.attempts + 1, "error": note}
        if processed:
            change.update(processed=True, processed_at=values["processed_at"])
        session.execute(sa.update(UpdateLog).where(UpdateLog.id == earlier.id).values(**change))
    session.commit()


def keep_failed(state: StarsState, update_id: int | None, kind: str, body: str, error: BaseException) -> None:
    """After a failure: roll back, and keep the update unprocessed with why, to replay it.

    If the database is what failed (down, or locked past the busy timeout), the body goes
    to the disk spool instead, without waiting on the database a second time.
    """
    _rollback_quietly(state)
    if kind in (UpdateKind.SUCCESSFUL_PAYMENT, UpdateKind.REFUNDED_PAYMENT):
        metrics.payment_outcome(state, "failed")
    # Both stored whatever they hold: the error may quote the value that could not be.
    body = storable_text(body)
    note = storable_text(f"{error.__class__.__name__}: {error}")[:2000]
    if not isinstance(error, OperationalError):
        try:
            log_update(state, update_id, kind, body, processed=False, note=note)
            return
        except SQLAlchemyError:
            log.exception("could not keep failed update %s in the database", update_id)
            _rollback_quietly(state)
    state.spool.put(update_id, body)


# --- replay -------------------------------------------------------------------------------

_PRE_CHECKOUT_NOT_REPLAYED = "a pre-checkout query is not replayed (Telegram wanted its answer within 10 s)"


@dataclass(frozen=True)
class Replayed:
    """What a replay did with one update.

    ``ok`` is False when the update is still not applied afterwards: its handling raised,
    it was kept unprocessed again, or it could not be replayed at all. ``detail`` says
    what happened (``credited``, ``duplicate update``) or why it failed (with the error
    kept on its row). ``row_id`` is its ``stars_updates`` row, when it has one.
    """

    label: str
    row_id: int | None
    ok: bool
    detail: str
    outcome: Outcome | None = None
    error: Exception | None = None


def replay(
    state: StarsState,
    update_ids: Iterable[int] = (),
    *,
    rows: Iterable[int] = (),
    failed: bool = False,
    actor: Actor | str | None = None,
) -> Iterator[Replayed]:
    """Handle logged payment updates again, yielding a ``Replayed`` per update.

    With ``failed``: first the spooled bodies the database could not take (each file is
    removed once the database holds it), then every failed update (``UpdateLog.failed()``:
    not processed, not archived). ``update_ids`` names rows by Telegram's update id,
    ``rows`` by their own id (a polling bot's update has no update id); an archived
    update is replayed when named so. A name that matches no row, or a pre-checkout
    query (too late to answer), is reported as failed.

    Each update takes over its own row (a polling bot's too), never adds one; exactly-once
    holds (a charge already done is skipped). Each replayed update is recorded in the
    audit trail (``replay``, its row id, ok or failed) as ``actor``: an ``audit.Actor``
    (the CLI's, the dashboard's), or the Python API caller's name (``"python"`` if None).
    """
    who = actor if isinstance(actor, Actor) else python_actor(actor)
    handled: set[int] = set()  # rows a spooled body just went to: not handled twice in one run
    for path in state.spool.pending() if failed else []:
        try:
            body = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            continue  # another replay took it (exactly-once holds in the ledger either way)
        result = _replay_body(state, f"spooled {path.name}", None, body)
        if result.error is None:
            path.unlink(missing_ok=True)  # the database holds it now: applied, or kept as failed
        if result.row_id is not None:
            handled.add(result.row_id)
        _audit(state, who, result, result.row_id if result.row_id is not None else f"spool:{path.name}")
        yield result
    update_ids, rows = tuple(update_ids), tuple(rows)
    found = _rows_to_replay(state, update_ids, rows, failed)
    yield from _not_found(update_ids, rows, found)
    for row_id, update_id, kind, body in found:
        if row_id in handled:
            continue
        label = f"row {row_id}" + (f" (update {update_id})" if update_id is not None else "")
        if kind == UpdateKind.PRE_CHECKOUT:
            yield Replayed(label, row_id, False, _PRE_CHECKOUT_NOT_REPLAYED)
            continue
        result = _replay_body(state, label, row_id, body)
        _audit(state, who, result, row_id)
        yield result


def _rows_to_replay(
    state: StarsState, update_ids: tuple[int, ...], rows: tuple[int, ...], failed: bool
) -> list[Any]:
    """``(id, update_id, kind, body)`` of the rows asked for, oldest first (read, then ended)."""
    chosen: list[Any] = []
    if failed:
        chosen.append(UpdateLog.failed())
    if rows:
        chosen.append(UpdateLog.id.in_([r for r in rows if abs(r) <= INT64_MAX]))
    if update_ids:
        chosen.append(UpdateLog.update_id.in_([u for u in update_ids if abs(u) <= INT64_MAX]))
    if not chosen:
        return []
    session = state.session
    stmt = sa.select(UpdateLog.id, UpdateLog.update_id, UpdateLog.kind, UpdateLog.body)
    found = list(session.execute(stmt.where(sa.or_(*chosen)).order_by(UpdateLog.id)).all())
    session.rollback()
    return found


def _not_found(update_ids: tuple[int, ...], rows: tuple[int, ...], found: list[Any]) -> Iterator[Replayed]:
    row_ids, logged = {r.id for r in found}, {r.update_id for r in found}
    for row_id in dict.fromkeys(rows):
        if row_id not in row_ids:
            yield Replayed(f"row {row_id}", None, False, "no such row in stars_updates")
    for update_id in dict.fromkeys(update_ids):
        if update_id not in logged:
            yield Replayed(f"update {update_id}", None, False, "no such update in stars_updates")


def _replay_body(state: StarsState, label: str, row_id: int | None, body: str) -> Replayed:
    """Handle ``body`` again (taking over row ``row_id``), then read whether its row is processed."""
    token = _replaying_row.set(row_id)
    update: Any = None
    try:
        update = json.loads(body)
        outcome = handle_update(state, update, body)
    except Exception as exc:
        _rollback_quietly(state)
        if row_id is None:  # a spooled body: the row it was kept in, if the database took it
            kept = _row_after(state, None, update, body)
            row_id = kept.id if kept is not None else None
        return Replayed(label, row_id, False, f"{exc.__class__.__name__}: {exc}", error=exc)
    finally:
        _replaying_row.reset(token)
    # The truth is the row's: processed, or kept with an error (whatever the outcome said).
    row = _row_after(state, row_id, update, body)
    if row is not None:
        row_id = row.id
    if outcome.kept or (row is not None and not row.processed):
        detail = f"{outcome.detail}: {row.error}" if row is not None and row.error else outcome.detail
        return Replayed(label, row_id, False, detail or "not processed", outcome=outcome)
    return Replayed(label, row_id, True, outcome.detail, outcome=outcome)


def _row_after(state: StarsState, row_id: int | None, update: Any, body: str) -> Any:
    """``(id, processed, error)`` of the log row a replay handled: row ``row_id``, or for a
    spooled body the row of that update (None when it has none, or the read failed)."""
    columns = sa.select(UpdateLog.id, UpdateLog.processed, UpdateLog.error)
    try:
        if row_id is not None:
            return state.session.execute(columns.where(UpdateLog.id == row_id)).one_or_none()
        raw_id = update.get("update_id") if isinstance(update, dict) else None
        valid = isinstance(raw_id, int) and not isinstance(raw_id, bool) and 0 <= raw_id <= INT64_MAX
        key = _log_values(raw_id if valid else None, "", storable_text(body), processed=False, note=None)
        earlier = _logged_before(state, key)
        if earlier is None:
            return None
        return state.session.execute(columns.where(UpdateLog.id == earlier.id)).one_or_none()
    except SQLAlchemyError:
        log.exception("could not read whether replayed update %s is processed", row_id)
        return None
    finally:
        _rollback_quietly(state)


def _audit(state: StarsState, actor: Actor, result: Replayed, target: int | str) -> None:
    audit.record(
        state,
        actor,
        audit.REPLAY,
        target=target,
        outcome=audit.OK if result.ok else audit.FAILED,
        detail=result.detail,
    )
