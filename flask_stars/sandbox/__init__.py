"""The sandbox: Telegram played on 127.0.0.1, for tests and development; never loaded in production.

``Sandbox`` emulates the Bot API (a Stars ledger included) and plays the buyer who pays
invoices and whose updates go to the app's webhook; ``attach_sandbox`` wires one to an
app and registers the ``/stars/sandbox/`` pages that play the Telegram client.

Modules, one job each (each uses only those above it):

- ``server``: the HTTP endpoint ``/bot<token>/<method>``, recorded calls, faults and delays.
- ``webhook``: the app's webhook: its target, and updates posted to it.
- ``ledger``: invoices, charges, refunds, subscriptions and the Bot API methods on them.
- ``buyer``: the user: texts, button presses, Pay, and what the bot sends back.
- ``emulator``: ``Sandbox``, the one public class made of the four above.
- ``web``: the ``stars_sandbox`` blueprint (the pages) and ``attach_sandbox``.
"""

from __future__ import annotations

from .buyer import PRE_CHECKOUT_DEADLINE, TEST_USERS, PaymentAttempt
from .emulator import Sandbox
from .ledger import SUBSCRIPTION_PERIOD, XTR, Invoice
from .server import SANDBOX_TOKEN, ApiError, Call, Fault, KeepAliveRequestHandler, QuietRequestHandler
from .web import WEB_APP_VERSION, attach_sandbox
from .webhook import Delivery, make_user

__all__ = [
    "PRE_CHECKOUT_DEADLINE",
    "SANDBOX_TOKEN",
    "SUBSCRIPTION_PERIOD",
    "TEST_USERS",
    "WEB_APP_VERSION",
    "XTR",
    "ApiError",
    "Call",
    "Delivery",
    "Fault",
    "Invoice",
    "KeepAliveRequestHandler",
    "PaymentAttempt",
    "QuietRequestHandler",
    "Sandbox",
    "attach_sandbox",
    "make_user",
]
