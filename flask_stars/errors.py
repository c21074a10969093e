"""The flask_stars error hierarchy: domain errors, raised where the rule is broken.

``StarsError`` is the root. Nothing here knows about HTTP: each error carries a short
machine ``error`` code and a human ``message``; the edges turn them into answers (the
blueprint's table in ``http_errors`` into status codes, the CLI into
``click.ClickException``).
"""

from __future__ import annotations

from typing import Any


class StarsError(Exception):
    """Base class of every error flask_stars raises on purpose.

    ``error`` is a stable machine code (``"order_not_found"``), ``message`` the text.
    """

    error = "stars_error"
    default_message = "flask_stars could not do that."

    def __init__(self, message: str | None = None, *, error: str | None = None) -> None:
        super().__init__(message or self.default_message)
        if error:
            self.error = error

    @property
    def message(self) -> str:
        """The human-readable text."""
        return str(self.args[0]) if self.args else self.default_message


class StarsConfigError(StarsError):
    """The app's flask_stars configuration is missing something or breaks a rule."""

    error = "config_error"


class MissingCallbackError(StarsConfigError):
    """No credit callback: set ``STARS_CREDIT_CALLBACK`` or decorate one with ``@stars.credit``."""

    error = "not_configured"


class NotInitialisedError(StarsError, RuntimeError):
    """flask_stars is used on an app it was never set up on."""

    error = "not_initialised"


class InvalidRequest(StarsError):
    """Input that fails validation; ``fields`` holds marshmallow's messages per field."""

    error = "validation_error"
    default_message = "The request is not valid."

    def __init__(self, message: str | None = None, *, error: str | None = None, fields: Any = None) -> None:
        super().__init__(message, error=error)
        self.fields = fields


class InvalidInitData(StarsError):
    """The Mini App's initData is missing, forged or expired."""

    error = "invalid_init_data"
    default_message = "Telegram initData is missing or invalid."


class PackNotFound(StarsError):
    """No pack with that id in the catalogue."""

    error = "pack_not_found"
    default_message = "No such pack."


class OrderNotFound(StarsError):
    """No such order, or it is someone else's (the same answer, so ids are not probed)."""

    error = "order_not_found"
    default_message = "No such order."


class PaymentNotFound(StarsError):
    """No payment with that charge id in the ledger."""

    error = "payment_not_found"
    default_message = "No such payment."


class SubscriptionNotFound(StarsError):
    """No such subscription, or it is someone else's."""

    error = "subscription_not_found"
    default_message = "No such subscription."


class SubscriptionConflict(StarsError):
    """The subscription cannot be changed that way (Telegram refused, or only the user may)."""

    error = "subscription_conflict"
    default_message = "The subscription cannot be changed that way."


class OrderConflict(StarsError):
    """The order could not be made or changed because of concurrent requests; retry."""

    error = "order_conflict"
    default_message = "Could not create the order; please retry."


class RateLimited(StarsError):
    """Too many requests of one kind from one user; ``retry_after`` is in seconds."""

    error = "rate_limited"
    default_message = "Too many requests; try again later."

    def __init__(self, message: str | None = None, *, retry_after: int = 1, error: str | None = None) -> None:
        super().__init__(message, error=error)
        self.retry_after = retry_after


class BotApiError(StarsError):
    """A Bot API call failed.

    ``retry_after`` is Telegram's ``parameters.retry_after`` (seconds) when it sent one;
    ``description`` is Telegram's text (``"Bad Request: CHARGE_ALREADY_REFUNDED"``) or the
    transport error; ``error_code`` is Telegram's code, or None when no answer came.
    """

    error = "bot_api_error"

    def __init__(
        self,
        method: str,
        description: str,
        *,
        error_code: int | None = None,
        retry_after: int | None = None,
        timeout: bool = False,
    ) -> None:
        super().__init__(f"{method}: {description}")
        self.method = method
        self.description = description
        self.error_code = error_code
        self.retry_after = retry_after
        self.timeout = timeout
