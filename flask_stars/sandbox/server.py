"""The HTTP side of the sandbox: a WSGI server on 127.0.0.1 that answers ``/bot<token>/<method>``.

``ApiServer`` starts and stops the server, checks the token, records every call, applies
the faults and delays a test asked for, and dispatches each method to the ``_api_<method>``
handler a subclass defines, answering as Telegram's Bot API server does: telebot sends every
parameter in the query string, for GET and POST alike, and reads
``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code", "description"}`` back.

Parameters are read the way the Bot API server (tdlib/telegram-bot-api, ``Client.cpp``)
reads them: every parameter is a string (``arg``), integers go through ``td::to_integer``
and are clamped (``get_integer_arg``), and a 400's text gets the server's "Bad Request: "
prefix with its first letter lowered (``bad_request``, as ``fail_query_with_error`` does).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Self

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

__all__ = [
    "BOT_FIRST_NAME",
    "BOT_USERNAME",
    "INT32_MAX",
    "SANDBOX_TOKEN",
    "ApiError",
    "ApiServer",
    "Call",
    "Described",
    "Fault",
    "KeepAliveRequestHandler",
    "QuietRequestHandler",
    "arg",
    "bad_request",
    "get_integer_arg",
    "get_user_id",
    "int_param",
    "to_integer",
    "to_integer_safe",
    "truthy",
]

#: A token for sandbox runs: no real bot has it.
SANDBOX_TOKEN = "100000001:SANDBOX-flask-stars-no-real-bot"
#: The sandbox bot's names, in getMe and as the sender of the messages the bot sends.
BOT_FIRST_NAME = "Sandbox Bot"
BOT_USERNAME = "sandbox_stars_bot"
#: Telegram's update and message ids are signed 32-bit integers (the Bot API server's
#: ``as_client_message_id`` is an int32; its update queue's ids are int32 too).
INT32_MAX = 2**31 - 1


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
class Described:
    """A result answered with a ``description`` too, as setWebhook's "Webhook was set"."""

    result: Any
    description: str


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


# --- parameters, as the Bot API server reads them ----------------------------------------------


def arg(params: dict[str, Any], name: str) -> str:
    """A parameter as the server sees it (``Query::arg``): a string, empty when absent.

    A JSON request body's non-string values become their JSON text (``10`` is ``"10"``,
    ``true`` is ``"true"``, a list is its JSON), as the server turns them into arguments.
    """
    value = params.get(name)
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def truthy(value: Any) -> bool:
    """A Bot API boolean parameter, read as the server's ``to_bool`` does.

    ``"true"``, ``"yes"`` or ``"1"``, in any case (telebot sends ``"True"``).
    """
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("true", "yes", "1")


def to_integer(text: str, bits: int = 32) -> int:
    """``td::to_integer<int32/int64>`` (tdutils/td/utils/misc.h): never fails.

    An optional ``-``, then the leading ASCII digits (the rest is ignored: ``"abc"`` is 0,
    ``"12abc"`` is 12); the value wraps around as the C++ unsigned arithmetic does.
    """
    mask = (1 << bits) - 1
    largest = (1 << (bits - 1)) - 1
    value, i, negative = 0, 0, False
    if text[:1] == "-":
        negative, i = True, 1
    while i < len(text) and "0" <= text[i] <= "9":
        value = (value * 10 + ord(text[i]) - 48) & mask
        i += 1
    if value > largest:
        value = (~value + 1) & mask
        negative = not negative
        if value > largest:
            return -largest - 1
    return -value if negative else value


def to_integer_safe(text: str, bits: int = 64) -> int | None:
    """``td::to_integer_safe``: the integer only if ``text`` is exactly its decimal form."""
    value = to_integer(text, bits)
    return value if str(value) == text else None


def get_integer_arg(
    params: dict[str, Any], name: str, default: int, min_value: int = -(2**31), max_value: int = INT32_MAX
) -> int:
    """``Client::get_integer_arg`` (Client.cpp): absent is ``default``; anything else goes
    through ``td::to_integer<int32>`` (so ``"abc"`` reads 0) and is clamped to the range."""
    text = arg(params, name)
    value = default if text == "" else to_integer(text, 32)
    return max(min_value, min(value, max_value))


def bad_request(message: str) -> ApiError:
    """A 400 worded as ``Client::fail_query_with_error`` (Client.cpp) words it.

    "Bad Request: " before the message, whose first letter is lowered unless it is an
    upper-case constant such as ``STARS_INVOICE_INVALID`` (second letter ``_`` or upper-case).
    """
    if len(message) >= 2 and (message[1] == "_" or "A" <= message[1] <= "Z"):
        text = message
    else:
        text = message[:1].lower() + message[1:]
    return ApiError(400, f"Bad Request: {text}")


def get_user_id(params: dict[str, Any], name: str = "user_id") -> int:
    """``Client::get_user_id`` (Client.cpp): ``td::to_integer<int64>``, at least 0; 0 is
    refused with "Bad Request: invalid user_id specified"."""
    user_id = max(to_integer(arg(params, name), 64), 0)
    if user_id == 0:
        raise bad_request(f"Invalid {name} specified")
    return user_id


def int_param(value: Any, name: str, error: str | None = None) -> int:
    """A strict integer parameter; ``ApiError`` 400 (``error``, if given) when it is not one.

    The Bot API server itself never refuses an integer this way (see ``get_integer_arg``
    and ``to_integer``); this is kept for callers that want a strict check.
    """
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ApiError(400, error or f'Bad Request: parameter "{name}" is required') from None


def bot_id_of(token: str) -> int:
    """The bot's user id: the part of its token before the colon."""
    bot_id = to_integer_safe(token.split(":", 1)[0])
    return bot_id if bot_id is not None and bot_id > 0 else 1


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
        # Ids for updates and messages: one counter from a random start well below 2**31, so
        # they are unique for this sandbox's life and fit Telegram's signed 32 bits (about
        # 1.6 billion ids of headroom). Telegram's own update ids restart at random too.
        self._id_lock = threading.Lock()
        self._next_id = (1 << 20) + secrets.randbelow(1 << 29)
        # What the request being answered in this thread came with: its token and arrival.
        self._local = threading.local()
        self._last_token: str | None = None
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
        """A fresh id (for updates and messages): unique in this sandbox, below 2**31."""
        with self._id_lock:
            value = self._next_id
            if value > INT32_MAX:  # after ~1.6 billion ids: start again low rather than overflow
                value = 1 << 20
            self._next_id = value + 1
        return value

    # --- the bot ------------------------------------------------------------------------------

    def bot_token(self) -> str:
        """The token of the bot being served: the current request's, else the sandbox's own,
        else the last one that called, else ``SANDBOX_TOKEN``."""
        token: str | None = getattr(self._local, "token", None)
        return token or self.token or self._last_token or SANDBOX_TOKEN

    def bot_user(self, token: str | None = None) -> dict[str, Any]:
        """The bot's ``User``, as Telegram puts it in ``from`` of the messages the bot sends."""
        return {
            "id": bot_id_of(token or self.bot_token()),
            "is_bot": True,
            "first_name": BOT_FIRST_NAME,
            "username": BOT_USERNAME,
        }

    def _arrived(self) -> float:
        """When the request being answered reached the sandbox (``time.monotonic()``)."""
        arrived: float | None = getattr(self._local, "arrived", None)
        return time.monotonic() if arrived is None else arrived

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
        arrived = time.monotonic()
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
            body = request.get_json(silent=True)
            if isinstance(body, dict):
                params.update(body)
        call = Call(method, params, token, request.method, test_environment=test_environment)
        self._local.token, self._local.arrived = token, arrived
        try:
            if self.token is not None and token != self.token:
                raise ApiError(401, "Unauthorized")
            self._last_token = token
            self._record(call)
            self._apply_faults(method)
            handler: Callable[[dict[str, Any]], Any] | None = getattr(self, "_api_" + method, None)
            if handler is None:
                raise ApiError(404, "Not Found: method not found")
            result = handler(params)
            body_out: dict[str, Any] = {"ok": True, "result": result}
            if isinstance(result, Described):
                body_out = {"ok": True, "result": result.result, "description": result.description}
            status = 200
        except ApiError as exc:
            body_out = {"ok": False, "error_code": exc.code, "description": exc.description}
            if exc.retry_after is not None:
                body_out["parameters"] = {"retry_after": exc.retry_after}
            status = exc.code
        finally:
            self._local.token = self._local.arrived = None
        response: Iterable[bytes] = Response(json.dumps(body_out), status, mimetype="application/json")(
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
        # JsonUser with the bot's full info, as getMe answers it (Client.cpp process_get_me_query).
        return {
            **self.bot_user(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }
