"""Bounds on long-polls (``GET /stars/orders/<id>?wait=N``), so they never starve Telegram.

A long-poll holds one of the worker's threads for up to 25 s. ``WaitGate`` counts the
long-polls running in this process, per user and in all, and lets a new one wait only
while both counts are under their limits (``STARS_ORDER_WAITS_PER_USER``,
``STARS_ORDER_WAITS_MAX``); past them the request answers at once with the order's
current status and the client polls again. So the webhook (and every other request)
always finds a free thread, whatever the number of open Mini Apps.

The counts are per process, as the threads are: each gunicorn worker has its own gate.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class WaitGate:
    """A thread-safe count of the long-polls running in this process.

    ``per_user``: how many one user may hold at once; ``total``: how many in all (0: none
    ever waits).
    """

    def __init__(self, per_user: int, total: int) -> None:
        self.per_user = per_user
        self.total = total
        self._lock = threading.Lock()
        self._by_user: dict[int, int] = {}
        self._active = 0

    @property
    def active(self) -> int:
        """How many long-polls hold a slot now."""
        with self._lock:
            return self._active

    def try_acquire(self, user_id: int) -> bool:
        """Take a slot for ``user_id`` if both limits allow it; False (and nothing taken) if not."""
        with self._lock:
            held = self._by_user.get(user_id, 0)
            if self._active >= self.total or held >= self.per_user:
                return False
            self._by_user[user_id] = held + 1
            self._active += 1
            return True

    def release(self, user_id: int) -> None:
        """Give back a slot taken by ``try_acquire`` for ``user_id``."""
        with self._lock:
            held = self._by_user.get(user_id, 0)
            if held <= 0:
                raise RuntimeError(f"user {user_id} holds no long-poll slot")
            if held == 1:
                del self._by_user[user_id]
            else:
                self._by_user[user_id] = held - 1
            self._active -= 1

    @contextmanager
    def slot(self, user_id: int) -> Iterator[bool]:
        """``with gate.slot(user_id) as may_wait:``: True while a slot is held (given back on
        exit, whatever happens); False when the limits are reached (then do not wait)."""
        acquired = self.try_acquire(user_id)
        try:
            yield acquired
        finally:
            if acquired:
                self.release(user_id)
