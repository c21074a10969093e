"""The HTTP side of the sandbox: a WSGI server on 127.0.0.1 that answers ``/bot<token>/<method>``.

``ApiServer`` starts and stops the server, checks the token, records every call, applies
the faults and delays a test asked for, and dispatches each method to the ``_api_<method>``
handler a subclass defines, answering as Telegram's Bot API server does: telebot sends every
parameter in the query string, for GET and POST alike, and reads
``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code", "description"}`` back.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Self

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

__all__ = [
    "SANDBOX_TOKEN",
    "ApiError",
    "ApiServer",
    "Call",
    "Fault",
    "KeepAliveRequestHandler",
    "QuietRequestHandler",
    "int_param",
    "truthy",
]

#: A token for sandbox runs: no real bot has it.
SANDBOX_TOKEN = "100000001:SANDBOX-flask-stars-no-real-bot"


class QuietRequestHandler(WSGIRequestHandler):
    """werkzeug's handler without a log line per request."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        """Log nothing."""


class KeepAliveRequestHandler(QuietRequestHandler):
    """HTTP/1.1 with keep-alive, as Telegram's Bot API server speaks it."""

    protocol_version = "HTTP/1.1"


class ApiError(Exception):
    """Answered as ``{"ok": false, "error_code", "description"}``."""

    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after


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


def truthy(value: Any) -> bool:
    """A Bot API boolean parameter, read as the server's ``to_bool`` does.

    ``"true"``, ``"yes"`` or ``"1"``, in any case (telebot sends ``"True"``).
    """
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("true", "yes", "1")


def int_param(value: Any, name: str, error: str | None = None) -> int:
    """A Bot API integer parameter; ``ApiError`` 400 (``error``, if given) when it is not one."""
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ApiError(400, error or f'Bad Request: parameter "{name}" is required') from None


class ApiServer:
    """The Bot API endpoint. ``token`` restricts it to one bot (others get 401, as on Telegram).

    A method ``m`` is answered by ``self._api_m(params)``; methods without one answer 404.
    """

    def __init__(self, token: str | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.token = token
        self.host = host
        self.port = port
        self.calls: list[Call] = []
        self._faults: dict[str, list[Fault]] = {}
        self._cond = threading.Condition()
        # Microseconds since the epoch: ids keep growing across restarts, as Telegram's do.
        self._ids = itertools.count(time.time_ns() // 1000)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    # --- life -------------------------------------------------------------------------------

    def start(self) -> Self:
        """Serve on ``host:port`` (a free port when 0) in a daemon thread; returns ``self``."""
        self._server = make_server(
            self.host, self.port, self._wsgi, threaded=True, request_handler=KeepAliveRequestHandler
        )
        self.port = self._server.server_port
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="stars-sandbox",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and free the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base URL to give as ``STARS_API_URL``."""
        return f"http://{self.host}:{self.port}"

    def next_id(self) -> int:
        """A fresh id (for updates, messages, queries), larger than any before it."""
        return next(self._ids)

    # --- inspection and faults ---------------------------------------------------------

    def calls_to(self, method: str) -> list[dict[str, Any]]:
        """The parameters of every call to ``method``, oldest first."""
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
        """Make the next ``times`` calls to ``method`` fail as Telegram would."""
        self._faults.setdefault(method, []).append(
            Fault(error_code, description, retry_after=retry_after, times=times)
        )

    def delay(self, method: str, seconds: float, *, times: int = 1) -> None:
        """Make the next ``times`` calls to ``method`` answer only after ``seconds``."""
        self._faults.setdefault(method, []).append(Fault(None, "", delay=seconds, times=times))

    def wait_for_call(self, method: str, count: int = 1, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Block until ``method`` was called ``count`` times; return the calls."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len([c for c in self.calls if c.method == method]) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{method} was not called {count} time(s) within {timeout} s")
                self._cond.wait(left)
            return [c.params for c in self.calls if c.method == method]

    # --- the Bot API -------------------------------------------------------------------

    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        parts = request.path.strip("/").split("/")
        # /bot<token>/<method>, or /bot<token>/test/<method> for Telegram's test environment
        # (the same API; the sandbox answers both and records which was used).
        test_environment = len(parts) == 3 and parts[1] == "test"
        if test_environment:
            parts = [parts[0], parts[2]]
        if len(parts) != 2 or not parts[0].startswith("bot"):
            return Response("not found", 404)(environ, start_response)
        token, method = parts[0][3:], parts[1]
        params: dict[str, Any] = dict(request.args)
        params.update(request.form)
        if request.is_json:
            params.update(request.get_json(silent=True) or {})
        call = Call(method, params, token, request.method, test_environment=test_environment)
        try:
            if self.token is not None and token != self.token:
                raise ApiError(401, "Unauthorized")
            self._record(call)
            self._apply_faults(method)
            handler: Callable[[dict[str, Any]], Any] | None = getattr(self, "_api_" + method, None)
            if handler is None:
                raise ApiError(404, "Not Found: method not found")
            result = handler({**params, "__token__": token} if method == "getMe" else params)
            body: dict[str, Any] = {"ok": True, "result": result}
            status = 200
        except ApiError as exc:
            body = {"ok": False, "error_code": exc.code, "description": exc.description}
            if exc.retry_after is not None:
                body["parameters"] = {"retry_after": exc.retry_after}
            status = exc.code
        response: Iterable[bytes] = Response(json.dumps(body), status, mimetype="application/json")(
            environ, start_response
        )
        return response

    def _record(self, call: Call) -> None:
        with self._cond:
            self.calls.append(call)
            self._cond.notify_all()

    def _apply_faults(self, method: str) -> None:
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

    def _api_getMe(self, p: dict[str, Any]) -> dict[str, Any]:
        bot_id = int(str(p.get("__token__") or "1:x").split(":")[0])
        return {"id": bot_id, "is_bot": True, "first_name": "Sandbox Bot", "username": "sandbox_stars_bot"}
