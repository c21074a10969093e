"""``Sandbox``: a Telegram Bot API emulator for Stars payments, on 127.0.0.1; no account, no network.

This module only assembles the one public class from its layers, each in its own module:
``server`` (the HTTP endpoint, recorded calls, faults), ``webhook`` (updates to the app),
``ledger`` (invoices, charges, refunds, subscriptions) and ``buyer`` (the user who writes,
presses buttons and pays).

It answers the methods flask_stars uses the way Telegram's server does (telebot sends
every parameter in the query string, for GET and POST alike), records each call, keeps
a Stars ledger, and plays the buyer: ``pay()`` posts a ``pre_checkout_query`` to the
webhook with the secret, waits for the answer (Telegram's 10 s; a later one is refused)
and, if approved, posts ``successful_payment``. It delivers only the update types in the
webhook's ``allowed_updates`` (sticky, as on Telegram), at most ``max_connections`` at a
time, and reports pending updates and the last delivery error in ``getWebhookInfo``. It
can also fail or delay a method, redeliver, and drop updates.

    with Sandbox(token=TOKEN) as tg:
        app.config["STARS_API_URL"] = tg.url
        tg.set_webhook_target("http://127.0.0.1:5000/stars/webhook", secret)
        link = ...  # POST /stars/invoice
        tg.pay(link, user=42)
"""

from __future__ import annotations

from .buyer import Buyer

__all__ = ["Sandbox"]


class Sandbox(Buyer):
    """The emulator. ``token`` restricts it to one bot (others get 401, as on Telegram).

    Start it with ``start()`` or ``with``; give ``url`` as ``STARS_API_URL``.
    """
