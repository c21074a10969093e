"""flask_stars: sell in-app currency for Telegram Stars from a Flask app.

Mount ``stars_bp`` (or use ``FlaskStars``), give a credit callback, and the app gains
``/stars/invoice``, ``/stars/webhook`` and the rest; see the README.
"""

from .blueprint import stars_bp
from .errors import (
    BotApiError,
    MissingCallbackError,
    NotInitialisedError,
    StarsConfigError,
    StarsError,
    StarsHTTPError,
)
from .extension import FlaskStars, get_state
from .models import Order, Payment, UpdateLog, include_object
from .packs import Pack
from .signals import (
    order_created,
    payment_duplicated,
    payment_refunded,
    payment_succeeded,
    payment_unmatched,
    pre_checkout_rejected,
)

__version__ = "0.1.0"

__all__ = [
    "BotApiError",
    "FlaskStars",
    "MissingCallbackError",
    "NotInitialisedError",
    "Order",
    "Pack",
    "Payment",
    "StarsConfigError",
    "StarsError",
    "StarsHTTPError",
    "UpdateLog",
    "get_state",
    "include_object",
    "order_created",
    "payment_duplicated",
    "payment_refunded",
    "payment_succeeded",
    "payment_unmatched",
    "pre_checkout_rejected",
    "stars_bp",
]
