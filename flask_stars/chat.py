"""The chat path: ``/buy_stars`` and its pack buttons, on the host's (or our own) TeleBot.

A button (or ``/buy_stars stars_pack_1``) sends a Stars invoice tied to the same kind of
pending order the Mini App makes, so both credit alike, and counts against the same
per-user limit (``STARS_INVOICE_RATE_LIMIT``) as the Mini App's ``POST /stars/invoice``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from telebot import types

from . import metrics
from .errors import BotApiError, MissingCallbackError, RateLimited, RateLimitUnavailable
from .operations.invoice import open_invoice, pending_order
from .state import get_state

if TYPE_CHECKING:
    from flask import Flask
    from telebot import TeleBot

    from .state import StarsState

log = logging.getLogger(__name__)
BUY_CALLBACK_PREFIX = "stars:buy:"


def offer_packs(state: StarsState, chat_id: int, language_code: str | None) -> None:
    """Send the catalogue as buttons; a press sends that pack's invoice."""
    markup = types.InlineKeyboardMarkup(row_width=1)
    for pack in state.packs.values():
        markup.add(
            types.InlineKeyboardButton(
                f"{pack.title_in(language_code)} — {pack.stars} ⭐",
                callback_data=f"{BUY_CALLBACK_PREFIX}{pack.id}",
            )
        )
    state.gateway.send_message(chat_id, state.message("choose_pack", language_code), reply_markup=markup)


def send_pack_invoice(
    state: StarsState, user_id: int, chat_id: int, pack_id: str, language_code: str | None
) -> None:
    """Send the invoice for ``pack_id`` in the chat, tied to the user's pending order.

    Counts against the user's invoice limit (``state.invoice_limit``, shared with the Mini
    App's ``POST /stars/invoice``) before anything is sent; past it, raises ``RateLimited``
    and sends nothing, so a user pressing a button in a loop cannot push the bot into
    Telegram's 429s. When the limit's storage cannot be reached, raises
    ``RateLimitUnavailable`` and sends nothing either (fail-closed, as the Mini App's 503).
    """
    state.invoice_limit.hit(user_id)
    pack = state.packs.get(pack_id)
    if pack is None:
        state.gateway.send_message(chat_id, state.message("unknown_pack", language_code))
        return
    try:
        state.credit_callback()
    except MissingCallbackError:
        log.error("no credit callback; not selling %s", pack_id)
        state.gateway.send_message(chat_id, state.message("shop_unavailable", language_code))
        return
    if pack.subscription:
        # Telegram takes subscription_period only in createInvoiceLink: send the link.
        order, _ = open_invoice(state, user_id, pack, language_code)
        markup = types.InlineKeyboardMarkup()
        button = f"{pack.title_in(language_code)} — {pack.stars} ⭐"
        markup.add(types.InlineKeyboardButton(button, url=order.invoice_url))
        state.gateway.send_message(chat_id, pack.description_in(language_code), reply_markup=markup)
        return
    order, _ = pending_order(state, user_id, pack)
    state.gateway.send_invoice(chat_id, order, pack, language_code)


def _tell(state: StarsState, chat_id: int, text: str) -> None:
    """Send one short line; if Telegram fails too, the log is all that is left."""
    try:
        state.gateway.send_message(chat_id, text)
    except BotApiError as exc:
        log.error("could not tell chat %s why nothing was sent: %s", chat_id, exc)


def register_buy_command(bot: TeleBot, app: Flask) -> None:
    """Add ``/<STARS_BUY_COMMAND>`` and its pack buttons to ``bot`` (once per bot)."""
    if getattr(bot, "_flask_stars_buy_command", False):
        return
    bot._flask_stars_buy_command = True  # type: ignore[attr-defined]
    command = get_state(app).settings.buy_command
    if command is None:
        return

    def on_command(msg: types.Message) -> None:
        with app.app_context():
            state = get_state(app)
            if msg.from_user is None:
                return  # a channel post: nobody to sell to
            lang = msg.from_user.language_code
            args = (msg.text or "").split(maxsplit=1)[1:]
            try:
                if args:
                    send_pack_invoice(state, msg.from_user.id, msg.chat.id, args[0].strip(), lang)
                else:
                    offer_packs(state, msg.chat.id, lang)
            except RateLimited as exc:
                # One short line per typed command (the user's own pace), never an invoice.
                log.info("/%s from user %s: over the invoice limit", command, msg.from_user.id)
                state.gateway.send_message(
                    msg.chat.id, state.message("rate_limited", lang, seconds=exc.retry_after)
                )
            except RateLimitUnavailable as exc:
                metrics.rate_limit_unavailable(state, exc.limit)  # logged where it was raised
                _tell(state, msg.chat.id, state.message("limit_unavailable", lang))
            except BotApiError as exc:
                log.error("/%s failed: %s", command, exc)

    def on_button(call: types.CallbackQuery) -> None:
        with app.app_context():
            state = get_state(app)
            lang = call.from_user.language_code
            pack_id = (call.data or "")[len(BUY_CALLBACK_PREFIX) :]
            chat_id = call.message.chat.id if call.message else call.from_user.id
            notice: str | None = None
            try:
                send_pack_invoice(state, call.from_user.id, chat_id, pack_id, lang)
            except RateLimited as exc:
                # Past the limit the press gets only its callback answer (which Telegram
                # needs anyway), with a short notice: no invoice, no extra message.
                log.info("button from user %s: over the invoice limit", call.from_user.id)
                notice = state.message("rate_limited", lang, seconds=exc.retry_after)
            except RateLimitUnavailable as exc:
                metrics.rate_limit_unavailable(state, exc.limit)  # logged where it was raised
                notice = state.message("limit_unavailable", lang)
            except BotApiError as exc:
                log.error("buying %s from the chat failed: %s", pack_id, exc)
            except Exception:
                log.exception("buying %s from the chat failed", pack_id)
            try:
                state.bot.answer_callback_query(call.id, text=notice)
            except Exception as exc:  # the button's spinner only; nothing to undo
                log.warning("answerCallbackQuery failed: %s", exc)

    bot.register_message_handler(on_command, commands=[command])
    bot.register_callback_query_handler(
        on_button, func=lambda call: (call.data or "").startswith(BUY_CALLBACK_PREFIX)
    )
