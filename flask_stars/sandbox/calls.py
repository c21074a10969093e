"""The sandbox's record of Bot API calls, and the faults and delays a test queued for them.

``CallLog`` keeps every call the sandbox received (over HTTP, or in the app's webhook
reply), lets a test wait for one, and hands the server the fault or delay queued for the
next call to a method.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .params import ApiError, Params

__all__ = ["Call", "CallLog", "Fault"]


@dataclass
class Call:
    """One Bot API request the sandbox received."""

    method: str
    params: dict[str, Any]
    token: str
    http_method: str
    at: float = field(default_factory=time.time)
    #: True for ``/bot<token>/test/<method>``: Telegram's test environment.
    test_environment: bool = False


@dataclass
class Fault:
    """A failure or delay queued for the next ``times`` calls to a method."""

    error_code: int | None = 500
    description: str = "Internal Server Error"
    retry_after: int | None = None
    delay: float = 0.0
    times: int = 1


class CallLog:
    """The calls received, oldest first, and the faults queued per method."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._faults: dict[str, list[Fault]] = {}
        self._cond = threading.Condition()

    def record(self, call: Call) -> None:
        """Keep ``call`` and wake whoever waits for calls.

        :param call: the call received.
        """
        with self._cond:
            self.calls.append(call)
            self._cond.notify_all()

    def calls_to(self, method: str) -> list[Params]:
        """The parameters of every call to ``method``, oldest first.

        :param method: a Bot API method's name.
        """
        with self._cond:
            return [c.params for c in self.calls if c.method == method]

    def fail(
        self,
        method: str,
        error_code: int = 500,
        description: str = "Internal Server Error",
        *,
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        """Make the next ``times`` calls to ``method`` fail as Telegram would.

        :param method: a Bot API method's name.
        :param error_code: the HTTP status and ``error_code`` answered.
        :param description: the ``description`` answered.
        :param retry_after: ``parameters.retry_after``, for a 429.
        :param times: how many calls fail.
        """
        self._faults.setdefault(method, []).append(
            Fault(error_code, description, retry_after=retry_after, times=times)
        )

    def delay(self, method: str, seconds: float, *, times: int = 1) -> None:
        """Make the next ``times`` calls to ``method`` answer only after ``seconds``.

        :param method: a Bot API method's name.
        :param seconds: how long each call waits before it is answered.
        :param times: how many calls wait.
        """
        self._faults.setdefault(method, []).append(Fault(None, "", delay=seconds, times=times))

    def wait_for_call(self, method: str, count: int = 1, timeout: float = 5.0) -> list[Params]:
        """Block until ``method`` was called ``count`` times; return the calls.

        :param method: a Bot API method's name.
        :param count: how many calls to wait for.
        :param timeout: seconds to wait before ``TimeoutError``.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while len([c for c in self.calls if c.method == method]) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{method} was not called {count} time(s) within {timeout} s")
                self._cond.wait(left)
            return [c.params for c in self.calls if c.method == method]

    def apply_faults(self, method: str) -> None:
        """Carry out the fault queued for this call to ``method``: wait its delay, then raise
        its ``ApiError`` (a delay alone raises nothing).

        :param method: the method being called.
        """
        with self._cond:
            queue = self._faults.get(method) or []
            fault = queue[0] if queue else None
            if fault is not None:
                fault.times -= 1
                if fault.times <= 0:
                    queue.pop(0)
        if fault is None:
            return
        if fault.delay:
            time.sleep(fault.delay)
        if fault.error_code is not None:
            raise ApiError(fault.error_code, fault.description, fault.retry_after)
