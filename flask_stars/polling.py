"""A polling bot's way in: telebot handlers that hand each payment update to the intake.

A polling bot has no HTTP answer to make Telegram redeliver, so a failed payment stays
in the raw update log (``flask stars replay --failed`` applies it) and the error is
re-raised to telebot. Each handler runs in an app context and handles the payment before
it returns, whatever the bot's threading mode.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from telebot import types

from .chat import register_buy_command
from .state import get_state
from .updates import handle_update

if TYPE_CHECKING:
    from flask import Flask
    from telebot import TeleBot


def register_handlers(bot: TeleBot, app: Flask) -> None:
    """Wire the payment handlers into a polling bot; each runs the webhook's own code."""

    def handle(update: dict[str, Any]) -> None:
        with app.app_context():
            outcome = handle_update(get_state(app), update)
            if outcome.after is not None:
                outcome.after()

    def on_pre_checkout(query: types.PreCheckoutQuery) -> None:
        handle({"pre_checkout_query": _pre_checkout_json(query)})

    def on_charge(msg: types.Message) -> None:
        raw = msg.json if isinstance(msg.json, dict) else json.loads(msg.json)
        handle({"message": raw})

    def on_subscription(update: types.BotSubscriptionUpdated) -> None:
        handle(
            {
                "subscription": {
                    "user": {"id": update.user.id},
                    "invoice_payload": update.invoice_payload,
                    "state": update.state,
                }
            }
        )

    bot.register_pre_checkout_query_handler(on_pre_checkout, func=lambda q: True)
    bot.register_subscription_handler(on_subscription)
    bot.register_message_handler(on_charge, content_types=["successful_payment"])
    # telebot 4.37 leaves content_type None for refunded_payment.
    bot.register_message_handler(
        on_charge,
        content_types=[None],  # type: ignore[list-item]
        func=lambda m: getattr(m, "refunded_payment", None) is not None,
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
