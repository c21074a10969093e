"""The flask_stars error hierarchy: domain errors, raised where the rule is broken.

``StarsError`` is the root. Nothing here knows about HTTP: each error carries a short
machine ``error`` code and a human ``message``; the edges turn them into answers (the
blueprint's table in ``http_errors`` into status codes, the CLI into
``click.ClickException``).
"""

from __future__ import annotations

from datetime import datetime
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


class OtherBotsTables(StarsConfigError):
    """The ``stars_*`` tables belong to another bot, or to this bot id in another environment
    (``flask_stars.binding``); the message names both and the way out."""

    error = "other_bots_tables"


class NotInitialisedError(StarsError, RuntimeError):
    """flask_stars is used on an app it was never set up on."""

    error = "not_initialised"


class HostCallbackFailed(StarsError):
    """The host's credit or debit callback raised: ``original`` is what it raised (also the
    ``__cause__``), ``callback`` is ``"credit"`` or ``"debit"``.

    ``StarsState.credit``/``debit`` raise it around the callback's error, so the code that
    must tell the host's failure apart from the database's (the intake, reconcile, the CLI,
    the dashboard) does so by type. The change that called the callback is not committed:
    its caller rolls it back. Its message names the callback and the original error:
    ``"the debit callback (app.coins.debit) failed: RuntimeError: the coins table is locked"``.
    """

    error = "host_callback_failed"

    def __init__(self, callback: str, original: Exception, *, name: str | None = None) -> None:
        self.callback = callback
        self.original = original
        named = f" ({name})" if name else ""
        super().__init__(f"the {callback} callback{named} failed: {self.reason}")

    @property
    def reason(self) -> str:
        """The original error in one line: ``"RuntimeError: the coins table is locked"``."""
        return f"{self.original.__class__.__name__}: {self.original}"


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


class UpdateNotFound(StarsError):
    """No row with that id in the raw update log (``stars_updates``)."""

    error = "update_not_found"
    default_message = "No such update in stars_updates."


class UpdateNotArchivable(StarsError):
    """Only a failed update (a payment update not processed, not archived yet) can be archived."""

    error = "update_not_failed"
    default_message = "Only a failed update can be archived."


class OrderConflict(StarsError):
    """The order could not be made or changed because of concurrent requests; retry."""

    error = "order_conflict"
    default_message = "Could not create the order; please retry."


class ReconcileBusy(StarsError):
    """Another reconcile run is under way: runs take turns (cron and Run now, two CLIs).

    ``run_id``, ``started_at`` (aware UTC) and ``started_by`` name the run under way.
    """

    error = "reconcile_busy"
    default_message = "A reconcile run is under way; try again when it has finished."

    def __init__(
        self,
        message: str | None = None,
        *,
        run_id: int | None = None,
        started_at: datetime | None = None,
        started_by: str | None = None,
        error: str | None = None,
    ) -> None:
        super().__init__(message, error=error)
        self.run_id = run_id
        self.started_at = started_at
        self.started_by = started_by


class RateLimited(StarsError):
    """Too many requests of one kind from one user; ``retry_after`` is in seconds."""

    error = "rate_limited"
    default_message = "Too many requests; try again later."

    def __init__(self, message: str | None = None, *, retry_after: int = 1, error: str | None = None) -> None:
        super().__init__(message, error=error)
        self.retry_after = retry_after


class RateLimitUnavailable(StarsError):
    """The rate-limit storage (``STARS_RATE_LIMIT_STORAGE``) could not be reached.

    Nothing is let through uncounted (fail-closed): the request is refused and may be
    retried after ``retry_after`` seconds. ``limit`` names the limit (``"invoice"``,
    ``"subscription"``).
    """

    error = "rate_limit_unavailable"
    default_message = "Purchases are paused for a moment; try again shortly."

    def __init__(self, message: str | None = None, *, limit: str, retry_after: int) -> None:
        super().__init__(message)
        self.limit = limit
        self.retry_after = retry_after


class BotApiError(StarsError):
    """A Bot API call failed.

    ``answered`` tells the two kinds apart: True when the server answered with an error,
    False when no answer came (it could not be reached, or the call timed out: then
    ``timeout`` is True too). ``description`` is Telegram's text (``"Bad Request:
    CHARGE_ALREADY_REFUNDED"``) or, with no answer, what went wrong (``"127.0.0.1:1:
    Connection refused"``); ``error_code`` is Telegram's code, or None when no answer came;
    ``retry_after`` is Telegram's ``parameters.retry_after`` (seconds) when it sent one.
    ``method`` is the Bot API method that failed (``"refundStarPayment"``).
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
        answered: bool = True,
    ) -> None:
        super().__init__(f"{method}: {description}")
        self.method = method
        self.description = description
        self.error_code = error_code
        self.retry_after = retry_after
        self.timeout = timeout
        self.answered = answered and not timeout

    @property
    def summary(self) -> str:
        """One line for an operator: what Telegram said, or that it could not be reached."""
        if self.answered:
            return f"Telegram said: {self.description}"
        return f"Telegram could not be reached ({self.description})"
