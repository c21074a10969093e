"""The intake: every update Telegram sends, from the webhook, a polling bot or a replay.

One module per job, imported here so ``flask_stars.updates`` names them all:

- ``parse``: an update's payment kind (``classify``) and its fields as the ledger and the
  pre-checkout decision want them, or ``MalformedUpdate``;
- ``rawlog``: the raw log, ``stars_updates`` (``claim_update`` inside the payment's own
  transaction, ``log_update``, ``keep_failed`` after a failure, ``storable_text``);
- ``intake``: ``handle_update`` and a handler per kind, each owning its transaction;
- ``replaying``: ``replay``, which handles logged updates again, and ``Replayed``, what truly
  became of each.

A ``successful_payment`` reads top to bottom in ``intake.handle_charge`` and ``ledger``.
"""

from .intake import (
    Outcome,
    handle_charge,
    handle_pre_checkout,
    handle_subscription_update,
    handle_update,
    pass_to_bot,
)
from .parse import MalformedUpdate, classify, parse_charge, parse_pre_checkout, parse_subscription
from .rawlog import LOG_KEY, claim_update, keep_failed, log_update, storable_text
from .replaying import Replayed, replay

__all__ = [
    "LOG_KEY",
    "MalformedUpdate",
    "Outcome",
    "Replayed",
    "claim_update",
    "classify",
    "handle_charge",
    "handle_pre_checkout",
    "handle_subscription_update",
    "handle_update",
    "keep_failed",
    "log_update",
    "parse_charge",
    "parse_pre_checkout",
    "parse_subscription",
    "pass_to_bot",
    "replay",
    "storable_text",
]
