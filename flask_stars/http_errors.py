"""The HTTP edge of the error hierarchy: JSON error answers, and the one table that maps
domain errors to status codes.

Only the blueprint and ``auth`` (which host views call) use this module; the money path
raises the domain errors of ``errors`` and never an HTTP exception.
"""

from __future__ import annotations

import logging
from typing import Any

from werkzeug.exceptions import HTTPException

from .errors import (
    BotApiError,
    InvalidInitData,
    InvalidRequest,
    MissingCallbackError,
    OrderConflict,
    OrderNotFound,
    PackNotFound,
    PaymentNotFound,
    RateLimited,
    RateLimitUnavailable,
    StarsError,
    SubscriptionConflict,
    SubscriptionNotFound,
)

log = logging.getLogger(__name__)


class StarsHTTPError(StarsError, HTTPException):
    """An error answered to an HTTP client as JSON ``{"error", "message"}`` (+ ``fields``).

    ``code`` is the HTTP status (400 unless given), ``headers`` extra response headers
    (``Retry-After``), ``fields`` the per-field messages of a body that did not validate.
    """

    code = 400
    error = "bad_request"
    description = "The request is not valid."

    def __init__(
        self,
        message: str | None = None,
        *,
        error: str | None = None,
        fields: Any = None,
        headers: dict[str, str] | None = None,
        code: int | None = None,
    ) -> None:
        HTTPException.__init__(self, description=message or self.description)
        if error:
            self.error = error
        if code is not None:
            self.code = code
        self.fields = fields
        self.extra_headers = headers or {}

    @property
    def message(self) -> str:
        """The human-readable text."""
        return str(self.description)

    def to_dict(self) -> dict[str, Any]:
        """The JSON body: ``{"error", "message"}`` and ``"fields"`` when there are any."""
        body: dict[str, Any] = {"error": self.error, "message": self.message}
        if self.fields:
            body["fields"] = self.fields
        return body


class InitDataRejected(StarsHTTPError, InvalidInitData):
    """401 from ``request_init_data()``: both an HTTP error and an ``InvalidInitData``."""

    code = 401
    error = "invalid_init_data"
    description = "Telegram initData is missing or invalid."


#: Domain error -> HTTP status. The first class in this order that matches wins.
STATUS_OF: dict[type[StarsError], int] = {
    InvalidRequest: 400,
    InvalidInitData: 401,
    PackNotFound: 404,
    OrderNotFound: 404,
    PaymentNotFound: 404,
    SubscriptionNotFound: 404,
    SubscriptionConflict: 409,
    RateLimited: 429,
    MissingCallbackError: 500,
    OrderConflict: 503,
    RateLimitUnavailable: 503,
}


def http_exception_body(exc: HTTPException) -> tuple[dict[str, Any], int]:
    """``({"error", "message"}, status)`` for one of werkzeug's own HTTP errors."""
    code = exc.code or 500
    error = {413: "payload_too_large", 405: "method_not_allowed", 404: "not_found"}.get(
        code, (exc.name or "error").lower().replace(" ", "_")
    )
    return {"error": error, "message": exc.description or exc.name}, code


INTERNAL_ERROR_BODY = {"error": "internal_error", "message": "The server could not handle this request."}


def to_http(exc: StarsError) -> StarsHTTPError:
    """The HTTP answer for a domain error (500 ``internal_error`` for one not in the table)."""
    if isinstance(exc, StarsHTTPError):
        return exc
    if isinstance(exc, BotApiError):
        return _bot_api_failure(exc)
    for cls, status in STATUS_OF.items():
        if isinstance(exc, cls):
            headers = None
            if isinstance(exc, (RateLimited, RateLimitUnavailable)):
                headers = {"Retry-After": str(exc.retry_after)}
            if isinstance(exc, OrderConflict):
                headers = {"Retry-After": "1"}
            return StarsHTTPError(
                exc.message,
                error=exc.error,
                code=status,
                fields=getattr(exc, "fields", None),
                headers=headers,
            )
    return StarsHTTPError("The server could not handle this request.", error="internal_error", code=500)


def _bot_api_failure(exc: BotApiError) -> StarsHTTPError:
    log.warning("%s", exc)
    if exc.retry_after is not None:
        return StarsHTTPError(
            "Telegram asked us to wait; try again shortly.",
            error="bot_api_unavailable",
            code=503,
            headers={"Retry-After": str(exc.retry_after)},
        )
    if exc.timeout:
        return StarsHTTPError(
            "Telegram did not answer in time; try again.", error="bot_api_timeout", code=502
        )
    if not exc.answered:
        return StarsHTTPError("Telegram could not be reached; try again.", error="bot_api_error", code=502)
    return StarsHTTPError("Telegram's Bot API failed; try again.", error="bot_api_error", code=502)
