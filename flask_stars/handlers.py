"""Telegram's side: what to do with each update, from the webhook or a polling bot.

Payment updates never go through telebot's handler machinery in webhook mode: a
``TeleBot(threaded=True)`` would run them in a thread pool after the request returned and
swallow their errors. They are handled here, synchronously, so the webhook's answer says
whether the payment is safely recorded. Everything else goes to the host's bot.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError
from telebot import types

from .db import kept_after_commit, limit_wait
from .errors import BotApiError, MissingCallbackError
from .messages import message
from .models import UpdateKind
from .payments import (
    ChargeReport,
    PreCheckout,
    PreCheckoutDecision,
    announce_payment,
    decide_pre_checkout,
    log_update,
    mark_failed,
    mark_refunded,
    pending_order,
    record_payment,
)
from .schemas import ValidationError, payment_message_schema, pre_checkout_query_schema
from .signals import pre_checkout_rejected
from .subscriptions import apply_state_update

if TYPE_CHECKING:
    from flask import Flask
    from telebot import TeleBot

    from .extension import StarsState

log = logging.getLogger("flask_stars")
BUY_CALLBACK_PREFIX = "stars:buy:"


class MalformedUpdate(ValueError):
    """A payment update whose fields are not what Telegram sends."""

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


def parse_charge(msg: Any, key: str, update_id: int | None) -> ChargeReport:
    try:
        m = payment_message_schema.load(msg if isinstance(msg, dict) else {})
    except ValidationError as exc:
        raise MalformedUpdate(exc.messages) from None
    charge = m.get(key)
    if charge is None:
        raise MalformedUpdate({key: ["Missing data for required field."]})
    return ChargeReport(
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


def handle_update(
    state: StarsState, update: dict[str, Any], body: str | None = None, *, can_reply: bool = False
) -> Outcome:
    """Handle one update the webhook received (or ``flask stars replay`` re-reads).

    Raises on anything that must make Telegram redeliver (a database error, a failing
    credit callback); the caller answers 500 then.
    """
    kind = classify(update)
    update_id = update.get("update_id")
    update_id = update_id if isinstance(update_id, int) and not isinstance(update_id, bool) else None
    if body is None:
        body = json.dumps(update, ensure_ascii=False)
    if kind == UpdateKind.PRE_CHECKOUT:
        query = parse_pre_checkout(update["pre_checkout_query"])
        return handle_pre_checkout(state, query, update_id, body, can_reply=can_reply)
    if kind in (UpdateKind.SUCCESSFUL_PAYMENT, UpdateKind.REFUNDED_PAYMENT):
        return handle_charge(state, kind, update["message"], update_id, body)
    if kind == UpdateKind.SUBSCRIPTION:
        return handle_subscription_update(state, update["subscription"], update_id, body)
    return pass_to_bot(state, update)


def handle_subscription_update(
    state: StarsState, data: dict[str, Any], update_id: int | None, body: str
) -> Outcome:
    """The user cancelled or re-enabled a plan, or a renewal failed: note the new state."""
    user = data.get("user") if isinstance(data.get("user"), dict) else {}
    user_id, payload, new_state = user.get("id"), data.get("invoice_payload"), data.get("state")
    if not isinstance(user_id, int) or not isinstance(payload, str) or not isinstance(new_state, str):
        raise MalformedUpdate({"subscription": ["user.id, invoice_payload and state are required."]})
    sub = apply_state_update(state, user_id, payload, new_state)
    try:
        log_update(
            state, update_id, UpdateKind.SUBSCRIPTION, body, processed=True, note=None if sub else "unknown"
        )
    except SQLAlchemyError:
        log.exception("flask_stars: could not log subscription update %s", update_id)
        _rollback_quietly(state)
    return Outcome(UpdateKind.SUBSCRIPTION, new_state if sub else "unknown subscription")


def handle_pre_checkout(
    state: StarsState, query: PreCheckout, update_id: int | None, body: str, *, can_reply: bool = False
) -> Outcome:
    """Decide, answer, then commit the hold together with the log row (one commit).

    Telegram gets the answer before anything is committed: it is due in 10 s, and the
    approval's row lock already keeps a racing second pre-checkout waiting. With
    ``STARS_ANSWER_IN_RESPONSE`` and ``can_reply`` (a webhook request), the answer goes
    back as the webhook's own reply instead (the commit comes just before it); otherwise
    ``answerPreCheckoutQuery`` is called and its failure makes Telegram redeliver.
    """
    try:
        state.credit_callback()  # never approve what could not be credited
        limit_wait(state.session, state.settings.pre_checkout_timeout)
        decision = decide_pre_checkout(state, query)
    except Exception:
        log.exception("flask_stars: pre-checkout %s could not be decided; refusing it", query.id)
        _rollback_quietly(state)
        decision = PreCheckoutDecision(ok=False, reason="try_again")
    error_message = None if decision.ok else message(decision.reason or "try_again", query.language_code)

    def commit_and_log() -> None:
        try:
            log_update(state, update_id, UpdateKind.PRE_CHECKOUT, body, processed=True, note=decision.reason)
        except Exception:
            log.exception("flask_stars: could not log pre-checkout %s", query.id)
            _rollback_quietly(state)

    def announce() -> None:
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
        # Committed before the reply leaves: after the response this request's session is
        # gone (Flask tears the app context down first), and the hold with it.
        commit_and_log()
        return Outcome("pre_checkout_query", detail, reply=reply, after=announce)
    try:
        state.gateway.answer_pre_checkout(query.id, decision.ok, error_message)
    except BotApiError as exc:
        if exc.error_code != 400:
            _rollback_quietly(state)
            raise  # Telegram busy or unreachable: answer 500 so it redelivers and we answer again
        # 400: the query was already answered or is too old; a redelivery cannot help.
        log.warning("flask_stars: Telegram refused our answer to pre-checkout %s: %s", query.id, exc)
    commit_and_log()
    return Outcome("pre_checkout_query", detail, after=announce)


def handle_charge(
    state: StarsState, kind: str, msg: dict[str, Any], update_id: int | None, body: str
) -> Outcome:
    """Log a money-moving update first (own transaction), then apply it in one transaction.

    If the database cannot even take the log row, the body goes to the disk spool and the
    error propagates (500: Telegram redelivers; ``flask stars replay --failed`` applies it).
    """
    try:
        row_id, already_done = log_update(state, update_id, kind, body)
    except SQLAlchemyError:
        _rollback_quietly(state)
        state.spool.put(update_id, body)
        raise
    if already_done:
        return Outcome(kind, "duplicate update")
    with kept_after_commit(state.session):  # signals read the payment after the commit
        try:
            report = parse_charge(msg, kind, update_id)
            if kind == UpdateKind.SUCCESSFUL_PAYMENT:
                result = record_payment(state, report, row_id)
            else:
                refunded = mark_refunded(
                    state, report.telegram_payment_charge_id, report.total_amount, row_id
                )
        except Exception as exc:
            mark_failed(state, row_id, exc)
            raise
        if kind == UpdateKind.REFUNDED_PAYMENT:
            return Outcome(kind, "refunded" if refunded is not None else "noted")
        announce_payment(state, result)
    if result.duplicate_delivery:
        return Outcome(kind, "duplicate charge")
    return Outcome(kind, "credited" if result.credited else str(result.payment.problem))


def _rollback_quietly(state: StarsState) -> None:
    try:
        state.session.rollback()
    except SQLAlchemyError:
        log.debug("flask_stars: rollback failed too", exc_info=True)


def pass_to_bot(state: StarsState, update: dict[str, Any]) -> Outcome:
    """Anything that is not a payment goes to the host's TeleBot; its errors are its own."""
    try:
        state.bot.process_new_updates([types.Update.de_json(update)])
    except Exception:
        log.exception("flask_stars: the bot failed on update %s", update.get("update_id"))
        return Outcome("other", "bot error")
    return Outcome("other", "passed to bot")


# --- the chat: /buy_stars ------------------------------------------------------------------


def offer_packs(state: StarsState, chat_id: int, language_code: str | None) -> None:
    """Send the catalogue as buttons; a press sends that pack's invoice."""
    markup = types.InlineKeyboardMarkup(row_width=1)
    for pack in state.packs.values():
        markup.add(
            types.InlineKeyboardButton(
                f"{pack.title} — {pack.stars} ⭐", callback_data=f"{BUY_CALLBACK_PREFIX}{pack.id}"
            )
        )
    state.gateway.send_message(chat_id, message("choose_pack", language_code), reply_markup=markup)


def send_pack_invoice(
    state: StarsState, user_id: int, chat_id: int, pack_id: str, language_code: str | None
) -> None:
    """Send the invoice for ``pack_id`` in the chat, tied to the user's pending order.

    The order is the same kind of row the Mini App path makes, so both credit alike.
    """
    pack = state.packs.get(pack_id)
    if pack is None:
        state.gateway.send_message(chat_id, message("unknown_pack", language_code))
        return
    try:
        state.credit_callback()
    except MissingCallbackError:
        log.error("flask_stars: no credit callback; not selling %s", pack_id)
        state.gateway.send_message(chat_id, message("shop_unavailable", language_code))
        return
    if pack.subscription:
        # Telegram takes subscription_period only in createInvoiceLink: send the link.
        from .payments import open_invoice

        order, _ = open_invoice(state, user_id, pack)
        markup = types.InlineKeyboardMarkup()
        markup.add(types.InlineKeyboardButton(f"{pack.title} — {pack.stars} ⭐", url=order.invoice_url))
        state.gateway.send_message(chat_id, pack.invoice_description, reply_markup=markup)
        return
    order, _ = pending_order(state, user_id, pack)
    state.gateway.send_invoice(chat_id, order, pack)


def register_buy_command(bot: TeleBot, app: Flask) -> None:
    """Add ``/<STARS_BUY_COMMAND>`` and its pack buttons to ``bot`` (once per bot)."""
    if getattr(bot, "_flask_stars_buy_command", False):
        return
    bot._flask_stars_buy_command = True  # type: ignore[attr-defined]
    from .extension import get_state

    command = get_state(app).settings.buy_command

    def on_command(msg: types.Message) -> None:
        with app.app_context():
            state = get_state(app)
            lang = msg.from_user.language_code if msg.from_user else None
            args = (msg.text or "").split(maxsplit=1)[1:]
            try:
                if args:
                    send_pack_invoice(state, msg.from_user.id, msg.chat.id, args[0].strip(), lang)
                else:
                    offer_packs(state, msg.chat.id, lang)
            except BotApiError as exc:
                log.error("flask_stars: /%s failed: %s", command, exc)

    def on_button(call: types.CallbackQuery) -> None:
        with app.app_context():
            state = get_state(app)
            lang = call.from_user.language_code
            pack_id = call.data[len(BUY_CALLBACK_PREFIX) :]
            chat_id = call.message.chat.id if call.message else call.from_user.id
            try:
                state.bot.answer_callback_query(call.id)
                send_pack_invoice(state, call.from_user.id, chat_id, pack_id, lang)
            except BotApiError as exc:
                log.error("flask_stars: buying %s from the chat failed: %s", pack_id, exc)
            except Exception:
                log.exception("flask_stars: buying %s from the chat failed", pack_id)

    bot.register_message_handler(on_command, commands=[command])
    bot.register_callback_query_handler(
        on_button, func=lambda call: (call.data or "").startswith(BUY_CALLBACK_PREFIX)
    )


# --- polling bots -------------------------------------------------------------------------


def register_handlers(bot: TeleBot, app: Flask) -> None:
    """Wire the payment handlers into a polling bot; each runs the same code as the webhook.

    A polling bot has no HTTP answer to make Telegram redeliver, so a failed payment stays
    in the raw update log (``flask stars replay --failed`` applies it) and the error is
    re-raised to telebot.
    """
    from .extension import get_state

    def on_pre_checkout(query: types.PreCheckoutQuery) -> None:
        with app.app_context():
            pc = PreCheckout(
                id=query.id,
                user_id=query.from_user.id,
                currency=query.currency,
                total_amount=query.total_amount,
                invoice_payload=query.invoice_payload,
                language_code=query.from_user.language_code,
            )
            body = json.dumps({"pre_checkout_query": _pre_checkout_json(query)}, ensure_ascii=False)
            outcome = handle_pre_checkout(get_state(app), pc, None, body)
            if outcome.after is not None:
                outcome.after()

    def on_charge(msg: types.Message) -> None:
        kind = UpdateKind.SUCCESSFUL_PAYMENT if msg.successful_payment else UpdateKind.REFUNDED_PAYMENT
        raw = msg.json if isinstance(msg.json, dict) else json.loads(msg.json)
        with app.app_context():
            handle_charge(get_state(app), kind, raw, None, json.dumps({"message": raw}, ensure_ascii=False))

    def on_subscription(update: types.BotSubscriptionUpdated) -> None:
        data = {
            "user": {"id": update.user.id},
            "invoice_payload": update.invoice_payload,
            "state": update.state,
        }
        with app.app_context():
            handle_subscription_update(get_state(app), data, None, json.dumps({"subscription": data}))

    bot.register_pre_checkout_query_handler(on_pre_checkout, func=lambda q: True)
    bot.register_subscription_handler(on_subscription)
    bot.register_message_handler(on_charge, content_types=["successful_payment"])
    # telebot 4.37 leaves content_type None for refunded_payment (see the reference §7.2).
    bot.register_message_handler(
        on_charge, content_types=[None], func=lambda m: getattr(m, "refunded_payment", None) is not None
    )
    if get_state(app).settings.buy_command:
        register_buy_command(bot, app)


def _pre_checkout_json(query: types.PreCheckoutQuery) -> dict[str, Any]:
    user = query.from_user
    return {
        "id": query.id,
        "from": {"id": user.id, "language_code": user.language_code},
        "currency": query.currency,
        "total_amount": query.total_amount,
        "invoice_payload": query.invoice_payload,
    }
