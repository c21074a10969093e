"""Stopping or resuming a subscription, in steps: check, ask Telegram, record.

``set_canceled`` is what ``POST /stars/subscriptions/<id>/<action>``, ``flask stars
subscription`` and ``FlaskStars.set_subscription_canceled`` run. No transaction is open
while Telegram answers ``editUserStarSubscription``.
"""

from __future__ import annotations

from ..errors import BotApiError, SubscriptionConflict
from ..models import Subscription, SubscriptionState, utcnow
from ..state import StarsState
from ..subscriptions import get_subscription
from ..transaction import end_read, unit_of_work

__all__ = ["set_canceled"]


def set_canceled(state: StarsState, sub: Subscription, canceled: bool) -> Subscription:
    """editUserStarSubscription: stop renewing (access lasts to ``expires_at``) or renew again.

    :param state: the extension's state.
    :param sub: the subscription, as read by ``subscriptions.get_subscription``.
    :param canceled: True to stop renewing, False to renew again.
    :returns: the subscription as now recorded, loaded.

    Telegram re-enables only a subscription the bot itself cancelled; one the user
    cancelled in Telegram cannot be (``SubscriptionConflict``, as is Telegram's own 400).
    """
    if not canceled and sub.state == SubscriptionState.CANCELED and not sub.canceled_by_bot:
        raise SubscriptionConflict(
            "The user cancelled this subscription in Telegram; only they can renew it.", error="conflict"
        )
    sub_id, user_id, charge_id = sub.id, sub.user_id, sub.charge_id
    end_read(state)
    try:
        state.gateway.edit_subscription(user_id, charge_id, canceled)
    except BotApiError as exc:
        if exc.error_code == 400:
            raise SubscriptionConflict(f"Telegram refused: {exc.description}") from None
        raise
    with unit_of_work(state, keep_loaded=True):
        sub = get_subscription(state, sub_id)
        sub.state = SubscriptionState.CANCELED if canceled else SubscriptionState.ACTIVE
        sub.canceled_by_bot = canceled
        sub.updated_at = utcnow()
    return sub
