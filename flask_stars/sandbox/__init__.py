"""The sandbox: Telegram played on 127.0.0.1, for tests and development; never loaded in production.

``Sandbox`` emulates the Bot API (a Stars ledger included) and plays the buyer who pays
invoices and whose updates go to the app's webhook; ``attach_sandbox`` wires one to an
app and registers the ``/stars/sandbox/`` pages that play the Telegram client.

``Sandbox`` is a facade over parts that hold each other (none inherits from another), each
in a module with one job; each module uses only those above it:

- ``params``: parameters read and refusals worded as the Bot API server does.
- ``calls``: the calls received, and the faults and delays a test queued.
- ``bot``: the bot served (its token, its ``User``) and the request being answered.
- ``chats``: users, private chats, the bot's messages, Telegram's ids.
- ``queries``: pre-checkout queries, their 10 s, and the bot's answers.
- ``webhook_rules``, ``webhook``: Telegram's webhook rules; the deliverer of updates.
- ``invoices``, ``ledger``: invoice parameters; charges, refunds, subscriptions.
- ``buyer``: the user: texts, button presses, Pay.
- ``api``: the table of Bot API methods, name -> the part that answers it.
- ``server``: the HTTP endpoint ``/bot<token>/<method>``, answering through the table.
- ``emulator``: ``Sandbox``, the facade that builds and holds the parts.
- ``run``, ``web``, ``attach``: what the sandbox keeps on an app
  (``app.extensions["stars_sandbox"]``), the ``stars_sandbox`` pages, and
  ``attach_sandbox`` / ``use_sandbox_token``.
"""

from __future__ import annotations

from .attach import attach_sandbox, use_sandbox_token
from .bot import SANDBOX_TOKEN
from .buyer import TEST_USERS, PaymentAttempt
from .calls import Call, Fault
from .chats import make_user
from .emulator import Sandbox
from .invoices import SUBSCRIPTION_PERIOD, XTR, Invoice
from .params import ApiError
from .queries import PRE_CHECKOUT_DEADLINE
from .server import KeepAliveRequestHandler, QuietRequestHandler
from .web import WEB_APP_VERSION
from .webhook import Delivery

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
    "use_sandbox_token",
]
