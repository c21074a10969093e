"""blinker signals flask_stars sends; the sender is always the Flask app.

Receivers run after the database transaction has committed, so what they see is final.
They must not raise: an error in a receiver is logged and does not undo the payment.
"""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

#: A new order was stored and its invoice made. Keyword: ``order``.
order_created = _signals.signal("order-created")

#: A payment was recorded and credited. Keywords: ``payment``, ``order``.
payment_succeeded = _signals.signal("payment-succeeded")

#: A payment was refunded (debit callback already called). Keywords: ``payment``, ``reason``
#: (what ``stars.refund`` was given; None for a refund Telegram reported).
payment_refunded = _signals.signal("payment-refunded")

#: A pre-checkout query was answered ``ok=False``. Keywords: ``query_id``, ``user_id``,
#: ``reason`` (a code such as ``"order_not_found"``), ``order`` (or None).
pre_checkout_rejected = _signals.signal("pre-checkout-rejected")

#: A payment was recorded but not credited as its pack: its payload names no order, or
#: its amount or currency differs from the order. Keywords: ``payment``, ``reason``.
payment_unmatched = _signals.signal("payment-unmatched")

#: A second payment arrived for an order that was already paid. Keywords: ``payment``,
#: ``order``, ``policy`` (``"refund"`` or ``"credit"``).
payment_duplicated = _signals.signal("payment-duplicated")
