"""The HTTP side of the sandbox: a WSGI server on 127.0.0.1 that answers ``/bot<token>/<method>``.

``ApiServer`` starts and stops the server, checks the token (``Bot``), records every call and
applies the faults a test queued (``CallLog``), and hands the method to the function it was
given (the sandbox's method table), answering as Telegram's Bot API server does: telebot
sends every parameter in the query string, for GET and POST alike, and reads
``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code", "description"}`` back.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from .bot import Bot
from .calls import Call, CallLog
from .params import ApiError, Described, Params

__all__ = ["ApiServer", "KeepAliveRequestHandler", "QuietRequestHandler"]


class QuietRequestHandler(WSGIRequestHandler):
    """werkzeug's handler without a log line per request."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        """Log nothing."""


class KeepAliveRequestHandler(QuietRequestHandler):
    """HTTP/1.1 with keep-alive, as Telegram's Bot API server speaks it."""

    protocol_version = "HTTP/1.1"


class ApiServer:
    """The Bot API endpoint: ``answer(method, params)`` gives each method's result."""

    def __init__(
        self,
        bot: Bot,
        call_log: CallLog,
        answer: Callable[[str, Params], Any],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        """:param bot: the bot served (which tokens are answered).
        :param call_log: where calls are recorded and faults found.
        :param answer: answers a method (raising ``ApiError`` to refuse it).
        :param host: the address to listen on.
        :param port: the port to listen on (a free one when 0).
        """
        self.bot = bot
        self.call_log = call_log
        self.answer = answer
        self.host = host
        self.port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Serve on ``host:port`` (a free port when 0) in a daemon thread."""
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

    def stop(self) -> None:
        """Stop serving and free the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        """The base URL to give as ``STARS_API_URL``."""
        return f"http://{self.host}:{self.port}"

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
        call = Call(method, _params(request), token, request.method, test_environment=test_environment)
        with self.bot.answering(token, arrived):
            body, status = self._respond(call)
        response: Iterable[bytes] = Response(json.dumps(body), status, mimetype="application/json")(
            environ, start_response
        )
        return response

    def _respond(self, call: Call) -> tuple[dict[str, Any], int]:
        """The JSON body and status answering ``call``."""
        try:
            if not self.bot.accepts(call.token):
                raise ApiError(401, "Unauthorized")
            self.call_log.record(call)
            self.call_log.apply_faults(call.method)
            result = self.answer(call.method, call.params)
        except ApiError as exc:
            body: dict[str, Any] = {"ok": False, "error_code": exc.code, "description": exc.description}
            if exc.retry_after is not None:
                body["parameters"] = {"retry_after": exc.retry_after}
            return body, exc.code
        if isinstance(result, Described):
            return {"ok": True, "result": result.result, "description": result.description}, 200
        return {"ok": True, "result": result}, 200


def _params(request: Request) -> Params:
    """The request's parameters: query string, then form, then a JSON object body."""
    params: Params = dict(request.args)
    params.update(request.form)
    if request.is_json:
        body = request.get_json(silent=True)
        if isinstance(body, dict):
            params.update(body)
    return params
