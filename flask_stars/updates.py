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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.exc import DataError, IntegrityError, OperationalError, SQLAlchemyError
from telebot import types

from . import ledger, metrics
from .db import insert_unless_exists, kept_after_commit, lock_and_insert_unless_exists
from .errors import BotApiError, StarsError
from .messages import message
from .models import UpdateKind, UpdateLog, utcnow
from .precheckout import PreCheckout, PreCheckoutDecision, decide
from .schemas import ValidationError, payment_message_schema, pre_checkout_query_schema
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


# --- handle ---------------------------------------------------------------------------------


def handle_update(
    state: StarsState, update: dict[str, Any], body: str | None = None, *, can_reply: bool = False
) -> Outcome:
    """Handle one update the webhook received (or a polling bot or ``replay`` hands over).

    Raises on anything that must make Telegram redeliver (a database error, a failing
    credit callback); the webhook answers 500 then.
    """
    kind = classify(update)
    raw_id = update.get("update_id")
    update_id = raw_id if isinstance(raw_id, int) and not isinstance(raw_id, bool) else None
    if body is None:
        body = json.dumps(update, ensure_ascii=False)
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
        log_update(state, update_id, kind or "other", body, processed=True, note=str(exc)[:2000])
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
        return Outcome(kind, "malformed: kept for replay")
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
            except (DataError, OverflowError) as exc:
                # A value the database cannot store (only a forged update carries one): kept
                # with its error and answered 2xx, never a 500 that Telegram redelivers forever.
                log.error("update %s cannot be stored: %s", update_id, exc)
                keep_failed(state, update_id, kind, body, exc)
                return Outcome(kind, "unstorable: kept for replay")
            except Exception as exc:
                keep_failed(state, update_id, kind, body, exc)
                raise
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
    """The user cancelled or re-enabled a plan, or a renewal failed: note the new state."""
    fields: dict[str, Any] = data if isinstance(data, dict) else {}
    user = fields.get("user")
    user_id = user.get("id") if isinstance(user, dict) else None
    payload, new_state = fields.get("invoice_payload"), fields.get("state")
    if not isinstance(user_id, int) or not isinstance(payload, str) or not isinstance(new_state, str):
        raise MalformedUpdate({"subscription": ["user.id, invoice_payload and state are required."]})
    sub = apply_state_update(state, user_id, payload, new_state)
    state.session.commit()
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


def _rollback_quietly(state: StarsState) -> None:
    try:
        state.session.rollback()
    except SQLAlchemyError:
        log.debug("rollback failed too", exc_info=True)


# --- the raw update log ------------------------------------------------------------------


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
    }


def _insert_log(state: StarsState, values: dict[str, Any]) -> int | None:
    """Insert a log row unless the same update is logged: its id, or None."""
    conn = state.session.connection()
    stmt = insert_unless_exists(conn.dialect.name, UpdateLog, LOG_KEY)
    row_id: int | None = conn.execute(stmt, values).scalar()
    return row_id


def _logged_before(state: StarsState, values: dict[str, Any]) -> Any:
    """The log row of the same update (id *and* body), as ``(id, processed)``."""
    return state.session.execute(
        sa.select(UpdateLog.id, UpdateLog.processed).where(
            UpdateLog.update_id == values["update_id"], UpdateLog.digest == values["digest"]
        )
    ).one()


def claim_update(state: StarsState, update_id: int | None, kind: str, body: str, *, lock_key: str) -> bool:
    """In the caller's transaction, take the write lock on ``lock_key`` (the charge) and log a
    money update as processed: False if it already was (one round trip on PostgreSQL).

    An update is the same only if its id *and* its body match: Telegram restarts its ids at
    random after a week of silence, and a reused id must never hide a new payment. A row
    left by an earlier failed attempt is taken over (marked processed, one more attempt).
    """
    session = state.session
    values = _log_values(update_id, kind, body, processed=True, note=None)
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
    """Write an update to the raw log in its own transaction (a redelivery adds an attempt)."""
    session = state.session
    values = _log_values(update_id, kind, body, processed=processed, note=note)
    if not _insert_log(state, values):
        earlier = _logged_before(state, values)
        if not earlier.processed:
            session.execute(
                sa.update(UpdateLog)
                .where(UpdateLog.id == earlier.id)
                .values(attempts=UpdateLog.attempts + 1, error=note)
            )
    session.commit()


def keep_failed(state: StarsState, update_id: int | None, kind: str, body: str, error: BaseException) -> None:
    """After a failure: roll back, and keep the update unprocessed with why, to replay it.

    If the database is what failed (down, or locked past the busy timeout), the body goes
    to the disk spool instead, without waiting on the database a second time.
    """
    _rollback_quietly(state)
    metrics.payment_outcome(state, "failed")
    note = f"{error.__class__.__name__}: {error}"[:2000]
    if not isinstance(error, OperationalError):
        try:
            log_update(state, update_id, kind, body, processed=False, note=note)
            return
        except SQLAlchemyError:
            log.exception("could not keep failed update %s in the database", update_id)
            _rollback_quietly(state)
    state.spool.put(update_id, body)


# --- replay -------------------------------------------------------------------------------


def replay(
    state: StarsState, update_ids: tuple[int, ...] = (), *, failed: bool = False
) -> Iterator[tuple[str, Outcome | Exception]]:
    """Handle logged payment updates again, yielding ``(label, outcome or error)`` per update.

    With ``failed``: first the spooled bodies the database could not take (each file is
    removed once handled), then every logged payment update not yet processed. With
    ``update_ids``: those updates. Exactly-once holds: a charge already done is skipped.
    """
    session = state.session
    for path in state.spool.pending() if failed else []:
        try:
            body = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            continue  # another replay took it (exactly-once holds in the ledger either way)
        try:
            outcome = handle_update(state, json.loads(body), body)
        except Exception as exc:
            _rollback_quietly(state)
            yield f"{path.name} (spooled)", exc
            continue
        path.unlink(missing_ok=True)
        yield f"{path.name} (spooled)", outcome
    stmt = (
        sa.select(UpdateLog.update_id, UpdateLog.body)
        .where(UpdateLog.kind != UpdateKind.PRE_CHECKOUT)
        .order_by(UpdateLog.id)
    )
    if failed:
        stmt = stmt.where(UpdateLog.processed.is_(False))
    if update_ids:
        stmt = stmt.where(UpdateLog.update_id.in_(update_ids))
    rows = session.execute(stmt).all()
    session.rollback()
    for update_id, body in rows:
        try:
            yield str(update_id), handle_update(state, json.loads(body), body)
        except Exception as exc:
            _rollback_quietly(state)
            yield str(update_id), exc
