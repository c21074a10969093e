"""Helpers for testing a host app's flask_stars integration, with no Telegram.

In a host app's ``conftest.py``::

    pytest_plugins = ["flask_stars.testing"]

    @pytest.fixture
    def app(stars_sandbox):
        app = create_app({"STARS_API_URL": stars_sandbox.url, ...})
        return app

    def test_buy(app, stars_sandbox):
        with serve(app) as base_url:
            connect(app, stars_sandbox, base_url)
            ...  # POST /stars/invoice with init_data_header(...), then stars_sandbox.pay(...)

pytest is needed only for the ``stars_sandbox`` fixture: without it (a host app's own test
runner) the module still imports, with the other helpers and no fixture.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from flask import Flask
from werkzeug.serving import make_server

from .initdata import sign_init_data
from .sandbox import QuietRequestHandler, Sandbox, make_user
from .state import get_state

try:
    import pytest
except ImportError:  # a host app's own test runner: everything but the fixture
    pytest = None  # type: ignore[assignment]

__all__ = ["Sandbox", "connect", "init_data_header", "make_user", "serve", "sign_init_data"]

TEST_TOKEN = "123456789:TEST-sandbox-token_for-flask-stars"


@contextmanager
def serve(app: Flask, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve ``app`` on a real port in a thread (threaded, as a WSGI server would); yields its URL."""
    server = make_server(host, port, app, threaded=True, request_handler=QuietRequestHandler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="stars-live-app", daemon=True
    )
    thread.start()
    try:
        yield f"http://{host}:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def connect(app: Flask, sandbox: Sandbox, base_url: str) -> str:
    """Point the sandbox's webhook at ``app``'s ``/stars/webhook``, with its secret; returns the URL.

    The app becomes a sandbox run (``StarsState.sandbox_run``): its tables belong to the
    sandbox's bot (``"<id>:sandbox"``, see ``flask_stars.binding``), so connect it before
    its first request, and give apps of one database the same token.
    """
    state = get_state(app)
    state.sandbox_run = True
    url = base_url.rstrip("/") + state.url_prefix.rstrip("/") + "/webhook"
    sandbox.set_webhook_target(url, state.settings.webhook_secrets[0])
    return url


def init_data_header(bot_token: str, user: int | Mapping[str, Any], **kwargs: Any) -> dict[str, str]:
    """``{"Authorization": "tma <initData>"}`` signed for ``user`` with ``bot_token``."""
    user_obj = make_user(user) if isinstance(user, int) else dict(user)
    return {"Authorization": "tma " + sign_init_data(bot_token, user_obj, **kwargs)}


if pytest is not None:
    __all__ += ["stars_sandbox"]

    @pytest.fixture
    def stars_sandbox() -> Iterator[Sandbox]:
        """A running Bot API emulator for ``TEST_TOKEN``; give ``stars_sandbox.url`` as STARS_API_URL."""
        with Sandbox(token=TEST_TOKEN) as sandbox:
            yield sandbox
