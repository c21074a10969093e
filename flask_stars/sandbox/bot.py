"""The bot the sandbox plays Telegram for: its token, its ``User``, and the request being answered.

A sandbox made with a token serves only that bot (others get 401, as on Telegram); one made
without serves any. Which bot a message comes from, and when the request being answered
arrived, are per request: ``Bot.answering`` keeps them for the thread answering it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .params import Params, bot_id_of

__all__ = ["BOT_FIRST_NAME", "BOT_USERNAME", "SANDBOX_TOKEN", "Bot"]

#: A token for sandbox runs: no real bot has it.
SANDBOX_TOKEN = "100000001:SANDBOX-flask-stars-no-real-bot"
#: The sandbox bot's names, in getMe and as the sender of the messages the bot sends.
BOT_FIRST_NAME = "Sandbox Bot"
BOT_USERNAME = "sandbox_stars_bot"


class Bot:
    """The bot being served. ``token`` restricts the sandbox to one bot; None serves any."""

    def __init__(self, token: str | None = None) -> None:
        """:param token: the one bot token accepted, or None for any."""
        self.token = token
        # What the request being answered in this thread came with: its token and arrival.
        self._local = threading.local()
        self._last_token: str | None = None

    @contextmanager
    def answering(self, token: str, arrived: float) -> Iterator[None]:
        """While a request of ``token`` that arrived at ``arrived`` (``time.monotonic()``) is
        answered in this thread.

        :param token: the token in the request's path.
        :param arrived: when the request reached the sandbox.
        """
        self._local.token, self._local.arrived = token, arrived
        try:
            yield
        finally:
            self._local.token = self._local.arrived = None

    def accepts(self, token: str) -> bool:
        """Whether a request with ``token`` is answered (else 401); remembers the last one that is.

        :param token: the token in the request's path.
        """
        if self.token is not None and token != self.token:
            return False
        self._last_token = token
        return True

    def current_token(self) -> str:
        """The token of the bot being served: the current request's, else the sandbox's own,
        else the last one that called, else ``SANDBOX_TOKEN``."""
        token: str | None = getattr(self._local, "token", None)
        return token or self.token or self._last_token or SANDBOX_TOKEN

    def user(self, token: str | None = None) -> dict[str, Any]:
        """The bot's ``User``, as Telegram puts it in ``from`` of the messages the bot sends.

        :param token: the bot's token; the one being served when None.
        """
        return {
            "id": bot_id_of(token or self.current_token()),
            "is_bot": True,
            "first_name": BOT_FIRST_NAME,
            "username": BOT_USERNAME,
        }

    def arrived(self) -> float:
        """When the request being answered reached the sandbox (``time.monotonic()``; now,
        outside a request)."""
        arrived: float | None = getattr(self._local, "arrived", None)
        return time.monotonic() if arrived is None else arrived

    def get_me(self, params: Params) -> dict[str, Any]:
        """``getMe``: the bot's full ``User`` (Client.cpp ``process_get_me_query``).

        :param params: the request's parameters (none are read).
        """
        return {
            **self.user(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }
