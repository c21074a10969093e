"""The Bot API the sandbox answers: one table, method name -> the part that answers it.

As stripe-mock routes by a table, the sandbox finds a method here and nowhere else: the
HTTP server, a method the app puts in its webhook reply, and a test calling a method
directly all go through ``answer``. A method not in ``METHODS`` is answered as Telegram
answers an unknown one (404 "Not Found: method not found").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Protocol

from .bot import Bot
from .chats import Chats
from .ledger import Ledger
from .params import ApiError, Params
from .queries import PreCheckoutQueries
from .webhook import WebhookDeliverer

__all__ = ["METHODS", "Handler", "SandboxParts", "answer"]


class SandboxParts(Protocol):
    """The parts a method's handler reaches (``Sandbox`` holds them)."""

    @property
    def bot(self) -> Bot:
        """The bot served."""

    @property
    def chats(self) -> Chats:
        """Users, private chats and the bot's messages."""

    @property
    def queries(self) -> PreCheckoutQueries:
        """Pre-checkout queries and their answers."""

    @property
    def deliverer(self) -> WebhookDeliverer:
        """The webhook deliverer."""

    @property
    def ledger(self) -> Ledger:
        """Invoices, charges, refunds and subscriptions."""


#: A method's handler: the sandbox's parts and the request's parameters in, the result out
#: (or ``ApiError``).
Handler = Callable[[SandboxParts, Params], Any]

#: Every Bot API method the sandbox answers, by name.
METHODS: Mapping[str, Handler] = MappingProxyType(
    {
        # the bot
        "getMe": lambda s, p: s.bot.get_me(p),
        # the webhook
        "setWebhook": lambda s, p: s.deliverer.set_webhook(p),
        "deleteWebhook": lambda s, p: s.deliverer.delete_webhook(p),
        "getWebhookInfo": lambda s, p: s.deliverer.get_webhook_info(p),
        # invoices and Stars
        "createInvoiceLink": lambda s, p: s.ledger.create_invoice_link(p),
        "sendInvoice": lambda s, p: s.ledger.send_invoice(p),
        "refundStarPayment": lambda s, p: s.ledger.refund_star_payment(p),
        "editUserStarSubscription": lambda s, p: s.ledger.edit_user_star_subscription(p),
        "getStarTransactions": lambda s, p: s.ledger.get_star_transactions(p),
        "getMyStarBalance": lambda s, p: s.ledger.get_my_star_balance(p),
        # answers to the user's queries, and messages
        "answerPreCheckoutQuery": lambda s, p: s.queries.answer(p),
        "answerCallbackQuery": lambda s, p: s.chats.answer_callback_query(p),
        "sendMessage": lambda s, p: s.chats.send_message(p),
    }
)


def answer(parts: SandboxParts, method: str, params: Params) -> Any:
    """The result of ``method`` called with ``params``; ``ApiError`` when it is refused.

    :param parts: the sandbox whose parts answer.
    :param method: the Bot API method's name.
    :param params: the request's parameters.
    """
    handler = METHODS.get(method)
    if handler is None:
        raise ApiError(404, "Not Found: method not found")
    return handler(parts, params)
