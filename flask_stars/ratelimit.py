"""Per-user limits on invoice creation, with ``limits`` (the engine under Flask-Limiter).

Not Flask-Limiter itself: it hooks every request of the app and reads app-wide
``RATELIMIT_*`` keys, which would meddle with a host's own limiter and could throttle
Telegram's webhook. Here one limit applies to one thing, keyed by the Telegram user id
from initData (not the IP, which many users share behind Telegram's clients).

When the storage cannot be reached (Redis down), a request is refused with
``RateLimitUnavailable``, never let through uncounted: a limit that silently stops
counting is no limit, and the invoice path is the one a flood would use.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from limits import RateLimitItem, parse, storage, strategies
from limits.errors import StorageError

from .errors import RateLimited, RateLimitUnavailable, StarsConfigError

log = logging.getLogger(__name__)

#: Seconds a client is asked to wait when the storage could not be reached.
STORAGE_RETRY_AFTER = 10
#: Seconds to connect to (and hear from) Redis before the request is refused: a host that
#: drops packets must not hold a request thread for the kernel's two-minute connect timeout.
#: Options in the URL (``?socket_timeout=5``) win.
REDIS_TIMEOUT = 2.0
_REDIS_SCHEMES = ("redis://", "rediss://", "redis+unix://")


def _storage_options(storage_uri: str) -> dict[str, Any]:
    options: dict[str, Any] = {"wrap_exceptions": True}  # any backend's failure: StorageError
    if storage_uri.startswith(_REDIS_SCHEMES):
        options.update(socket_connect_timeout=REDIS_TIMEOUT, socket_timeout=REDIS_TIMEOUT)
    return options


class UserRateLimit:
    """One rate (such as ``STARS_INVOICE_RATE_LIMIT``) per user, stored per ``STARS_RATE_LIMIT_STORAGE``."""

    def __init__(self, rate: str | None, storage_uri: str, key: str = "STARS_INVOICE_RATE_LIMIT") -> None:
        self.name = key.removeprefix("STARS_").removesuffix("_RATE_LIMIT").lower()
        self.item: RateLimitItem | None = None
        self.limiter: strategies.RateLimiter | None = None
        if not rate:
            return
        try:
            self.item = parse(rate)
        except ValueError as exc:
            raise StarsConfigError(f"{key}={rate!r} is not a rate such as '20/minute'") from exc
        try:
            backend = storage.storage_from_string(storage_uri, **_storage_options(storage_uri))
        except Exception as exc:
            # Never the URI itself, here or in ``limits``' words: it may hold a password.
            shown = f"{storage_uri.partition('://')[0]}://..."
            raise StarsConfigError(
                f"STARS_RATE_LIMIT_STORAGE ({shown}): {str(exc).replace(storage_uri, shown)}"
            ) from None
        self.limiter = strategies.MovingWindowRateLimiter(backend)

    def hit(self, user_id: int) -> None:
        """Count one request of ``user_id``.

        Raises ``RateLimited`` (with ``retry_after``) past the limit, and
        ``RateLimitUnavailable`` when the storage could not be reached (logged here).
        """
        if self.limiter is None or self.item is None:
            return
        key = f"flask_stars:{self.name}:{user_id}"
        try:
            if self.limiter.hit(self.item, key):
                return
            reset_at = self.limiter.get_window_stats(self.item, key).reset_time
        except StorageError as exc:
            # The storage's own words ("Error 111 connecting to 127.0.0.1:6379. Connection
            # refused."), never the URI: it may hold a password.
            log.error(
                "rate-limit storage unreachable, %s request of user %s refused (503): %s",
                self.name,
                user_id,
                exc.storage_error,
            )
            raise RateLimitUnavailable(limit=self.name, retry_after=STORAGE_RETRY_AFTER) from None
        retry_after = max(1, math.ceil(reset_at - time.time()))
        raise RateLimited("Too many requests; wait a little.", retry_after=retry_after)
