"""The flask_stars error hierarchy.

``StarsError`` is the root. Configuration mistakes raise ``StarsConfigError`` when the
app is set up; HTTP-facing errors subclass werkzeug's exceptions, so the blueprint's own
error handler can render them as ``{"error": code, "message": text}`` with the right
status, and host code that catches ``HTTPException`` keeps working.
"""

from __future__ import annotations

from typing import Any

from werkzeug.exceptions import HTTPException


class StarsError(Exception):
    """Base class of every error flask_stars raises on purpose."""


class StarsConfigError(StarsError):
    """The app's flask_stars configuration is missing something or breaks a rule."""


class MissingCallbackError(StarsConfigError):
    """No credit callback: set ``STARS_CREDIT_CALLBACK`` or decorate one with ``@stars.credit``."""


class NotInitialisedError(StarsError, RuntimeError):
    """flask_stars is used on an app it was never set up on."""


class BotApiError(StarsError):
    """A Bot API call failed.

    ``retry_after`` is Telegram's ``parameters.retry_after`` (seconds) when it sent one;
    ``description`` is Telegram's text (``"Bad Request: CHARGE_ALREADY_REFUNDED"``) or the
    transport error; ``error_code`` is Telegram's code, or None when no answer came.
    """

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


class StarsHTTPError(StarsError, HTTPException):
    """An error answered to an HTTP client as JSON ``{"error", "message"}``."""

    code = 400
    error = "bad_request"
    description = "The request is not valid."

    def __init__(
        self,
        message: str | None = None,
        *,
        error: str | None = None,
        fields: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        HTTPException.__init__(self, description=message or self.description)
        if error:
            self.error = error
        self.fields = fields
        self.extra_headers = headers or {}

    @property
    def message(self) -> str:
        return str(self.description)

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.error, "message": self.message}
        if self.fields:
            body["fields"] = self.fields
        return body


class BadRequest(StarsHTTPError):
    """400: the body or the query string is malformed or fails validation."""

    code = 400
    error = "bad_request"
    description = "The request body is not valid."


class InvalidInitData(StarsHTTPError):
    """401: the Mini App's initData is missing, forged or expired."""

    code = 401
    error = "invalid_init_data"
    description = "Telegram initData is missing or invalid."


class Forbidden(StarsHTTPError):
    """403: wrong webhook secret, or the order belongs to someone else."""

    code = 403
    error = "forbidden"
    description = "You may not do that."


class NotFound(StarsHTTPError):
    """404: unknown pack or order."""

    code = 404
    error = "not_found"
    description = "Not found."


class Conflict(StarsHTTPError):
    """409: the order can no longer be paid."""

    code = 409
    error = "conflict"
    description = "The order is no longer payable."


class PayloadTooLarge(StarsHTTPError):
    """413: the body is larger than ``STARS_MAX_BODY``."""

    code = 413
    error = "payload_too_large"
    description = "The request body is too large."


class TooManyRequests(StarsHTTPError):
    """429: too many invoices asked for too quickly."""

    code = 429
    error = "too_many_requests"
    description = "Too many requests; try again later."


class ServerError(StarsHTTPError):
    """500: flask_stars cannot do this now (for Telegram: redeliver later)."""

    code = 500
    error = "internal_error"
    description = "The server could not handle this request."


class BadGateway(StarsHTTPError):
    """502: the Bot API failed."""

    code = 502
    error = "bot_api_error"
    description = "Telegram's Bot API failed; try again."


class ServiceUnavailable(StarsHTTPError):
    """503: the Bot API asked us to wait (``Retry-After`` is set)."""

    code = 503
    error = "bot_api_unavailable"
    description = "Telegram's Bot API is busy; try again later."
