"""flask_stars: sell in-app currency for Telegram Stars from a Flask app.

Mount ``stars_bp`` (or use ``FlaskStars``), give a credit callback, and the app gains
``/stars/invoice``, ``/stars/webhook`` and the rest; see the docs (docs/, built with Sphinx).
"""

from .auth import request_init_data
from .blueprint import stars_bp
from .errors import (
    BotApiError,
    InvalidInitData,
    MissingCallbackError,
    NotInitialisedError,
    OrderConflict,
    OrderNotFound,
    PackNotFound,
    PaymentNotFound,
    RateLimited,
    ReconcileBusy,
    StarsConfigError,
    StarsError,
    SubscriptionConflict,
    SubscriptionNotFound,
)
from .extension import FlaskStars
from .http_errors import StarsHTTPError
from .metrics import make_metrics_app, render_metrics
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
from .state import StarsState, get_state

__version__ = "0.1.0"

__all__ = [
    "BotApiError",
    "FlaskStars",
    "InvalidInitData",
    "MissingCallbackError",
    "NotInitialisedError",
    "Order",
    "OrderConflict",
    "OrderNotFound",
    "Pack",
    "PackNotFound",
    "Payment",
    "PaymentNotFound",
    "RateLimited",
    "ReconcileBusy",
    "StarsConfigError",
    "StarsError",
    "StarsHTTPError",
    "StarsState",
    "SubscriptionConflict",
    "SubscriptionNotFound",
    "UpdateLog",
    "get_state",
    "include_object",
    "make_metrics_app",
    "order_created",
    "payment_duplicated",
    "payment_refunded",
    "payment_succeeded",
    "payment_unmatched",
    "pre_checkout_rejected",
    "render_metrics",
    "request_init_data",
    "stars_bp",
]
