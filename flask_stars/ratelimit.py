"""Per-user limits on invoice creation, with ``limits`` (the engine under Flask-Limiter).

Not Flask-Limiter itself: it hooks every request of the app and reads app-wide
``RATELIMIT_*`` keys, which would meddle with a host's own limiter and could throttle
Telegram's webhook. Here one limit applies to one thing, keyed by the Telegram user id
from initData (not the IP, which many users share behind Telegram's clients).
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse, storage, strategies

from .errors import RateLimited, StarsConfigError


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
            raise StarsConfigError(
                f"{key}={rate!r} is not a rate such as '20/minute'"
            ) from exc
        try:
            backend = storage.storage_from_string(storage_uri)
        except Exception as exc:
            raise StarsConfigError(f"STARS_RATE_LIMIT_STORAGE={storage_uri!r}: {exc}") from exc
        self.limiter = strategies.MovingWindowRateLimiter(backend)

    def hit(self, user_id: int) -> None:
        """Count one request of ``user_id``; ``RateLimited`` (with ``retry_after``) past the limit."""
        if self.limiter is None or self.item is None:
            return
        key = f"flask_stars:{self.name}:{user_id}"
        if self.limiter.hit(self.item, key):
            return
        reset_at = self.limiter.get_window_stats(self.item, key).reset_time
        retry_after = max(1, math.ceil(reset_at - time.time()))
        raise RateLimited("Too many requests; wait a little.", retry_after=retry_after)
