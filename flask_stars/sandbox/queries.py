"""Pre-checkout queries: the ones Telegram sent, until when each may be answered, and the answers.

Telegram gives the bot 10 s to answer a ``pre_checkout_query``; its servers refuse an answer
to a query they never sent, one already answered, or one past its time (QUERY_ID_INVALID,
worded by Client.cpp). ``PreCheckoutQueries`` opens a query when it is sent, takes the bot's
``answerPreCheckoutQuery`` (over HTTP or in the webhook's reply), and lets the buyer wait for
the answer.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from .bot import Bot
from .params import ApiError, Params, arg, bad_request, to_integer, truthy

__all__ = ["PRE_CHECKOUT_DEADLINE", "QUERY_TOO_OLD", "PreCheckoutQueries"]

PRE_CHECKOUT_DEADLINE = 10.0  # Telegram's: answer within 10 s or the payment fails
#: Client.cpp fail_query_with_error's words for QUERY_ID_INVALID, which Telegram's servers
#: return for an answer to a query they never sent, already answered, or answered too late.
QUERY_TOO_OLD = "Bad Request: query is too old and response timeout expired or query ID is invalid"


@dataclass
class _Query:
    """A pre-checkout query sent to the bot: until when it may be answered, and the answer."""

    deadline: float  # time.monotonic()
    answer: dict[str, Any] | None = None
    closed: bool = False
    #: The query never reached the bot (not in ``allowed_updates``, or the webhook could not
    #: be reached): no answer can come.
    undeliverable: bool = False


class PreCheckoutQueries:
    """The pre-checkout queries sent, and the bot's answers to them."""

    def __init__(self, bot: Bot) -> None:
        """:param bot: the bot served (when the request answering a query arrived)."""
        self.bot = bot
        #: Take one answer to a query id never sent, as if it had been sent then (a load
        #: generator posts its own queries to the app); a second answer is still refused.
        self.takes_unsent = False
        self._queries: dict[str, _Query] = {}  # query id -> its deadline and answer
        self._cond = threading.Condition()

    @staticmethod
    def new_id() -> str:
        """A query id as Telegram's look: a 64-bit number, as a string."""
        return str(secrets.randbits(62) + (1 << 62))

    def open(self, query_id: str, answer_timeout: float = PRE_CHECKOUT_DEADLINE) -> None:
        """Take the bot's answer to ``query_id`` for ``answer_timeout`` seconds from now
        (a query already open keeps its own deadline).

        :param query_id: the query's id.
        :param answer_timeout: seconds the bot has to answer.
        """
        deadline = time.monotonic() + answer_timeout
        with self._cond:
            self._queries.setdefault(query_id, _Query(deadline=deadline))

    def note_sent(self, update: dict[str, Any]) -> None:
        """A pre-checkout query Telegram sends (also one a test built and delivers itself) may
        be answered, until its deadline.

        :param update: an update about to be posted to the webhook.
        """
        query = update.get("pre_checkout_query")
        if isinstance(query, dict) and isinstance(query.get("id"), str):
            self.open(query["id"])

    def undeliverable(self, query_id: str) -> None:
        """The query never reached the bot: whoever waits for its answer stops waiting.

        :param query_id: the query's id.
        """
        with self._cond:
            self._queries[query_id].undeliverable = True
            self._cond.notify_all()

    def wait(self, query_id: str) -> dict[str, Any] | None:
        """The bot's answer to the query (``ok``, ``error_message``), or None once its deadline
        passed (the query is then closed: a later answer is refused) or it turned out
        undeliverable.

        :param query_id: the id of a query ``open`` opened.
        """
        with self._cond:
            query = self._queries[query_id]
            while query.answer is None:
                left = query.deadline - time.monotonic()
                if left <= 0 or query.undeliverable:
                    query.closed = True
                    return None
                self._cond.wait(left)
            return query.answer

    def answer(self, params: Params) -> bool:
        """``answerPreCheckoutQuery``: ``error_message`` is required when ``ok`` is false
        (Client.cpp ``process_answer_pre_checkout_query_query``); then Telegram's servers
        refuse a query they never sent, one already answered, or one past its 10 s.

        :param params: the request's parameters.
        """
        if self.takes_unsent:
            self.open(arg(params, "pre_checkout_query_id"))
        ok = truthy(params.get("ok"))
        if not ok and not arg(params, "error_message"):
            raise bad_request('Parameter "error_message" is required')
        raw_id = arg(params, "pre_checkout_query_id")
        with self._cond:
            query = self._queries.get(raw_id) or self._queries.get(str(to_integer(raw_id, 64)))
            if query is None or query.closed or query.answer is not None:
                raise ApiError(400, QUERY_TOO_OLD)
            if self.bot.arrived() > query.deadline:
                query.closed = True
                raise ApiError(400, QUERY_TOO_OLD)
            query.answer = {"ok": ok, "error_message": arg(params, "error_message") or None}
            self._cond.notify_all()
        return True
