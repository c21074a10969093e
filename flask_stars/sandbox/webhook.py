"""The sandbox's webhook deliverer: where updates go, and posting them there as Telegram does.

``WebhookDeliverer`` keeps the target (``set_target`` or the app's ``setWebhook``) with its
``allowed_updates`` and ``max_connections``, POSTs updates with the secret header (retrying
non-2xx, or later in a background thread), records each ``Delivery`` and what
``getWebhookInfo`` reports (pending updates, the last error), and carries out a Bot API call
the app puts in its webhook reply, as Telegram does.

It behaves as the Bot API server (tdlib/telegram-bot-api) run with ``--local`` does: plain
``http://`` webhooks on any port are accepted, which 127.0.0.1 needs.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import requests

from .calls import Call, CallLog
from .params import ApiError, Described, Params, arg, get_integer_arg, truthy
from .queries import PreCheckoutQueries
from .webhook_rules import (
    DEFAULT_ALLOWED_UPDATES,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_UPDATE_LIFETIME,
    MAX_CONNECTIONS_LIMIT,
    UPDATE_LIFETIME,
    UPDATE_TYPES,
    connection_error,
    parse_allowed_updates,
    secret_token_error,
    update_type,
    webhook_url_error,
)

__all__ = ["REPLY_METHODS", "Delivery", "WebhookDeliverer"]

#: Methods the sandbox carries out when the app answers with them in its webhook reply
#: (others are only recorded).
REPLY_METHODS = frozenset({"answerPreCheckoutQuery"})


@dataclass
class Delivery:
    """One webhook POST: the update and how the app answered.

    ``dropped`` says why an update was not posted at all (its type is not in the webhook's
    ``allowed_updates``, as Telegram skips it); such a delivery has ``status`` 0.
    """

    update: dict[str, Any]
    status: int
    body: Any
    at: float = field(default_factory=time.time)
    dropped: str | None = None


class WebhookDeliverer:
    """Delivers updates to the app's webhook, as Telegram does."""

    def __init__(
        self,
        call_log: CallLog,
        queries: PreCheckoutQueries,
        carry_out: Callable[[str, Params], Any],
        token: str | None = None,
    ) -> None:
        """:param call_log: where a method in the webhook's reply is recorded.
        :param queries: the pre-checkout queries, opened as they are posted.
        :param carry_out: answers a method in the webhook's reply (one of ``REPLY_METHODS``).
        :param token: the sandbox's bot token, recorded with a reply's call.
        """
        self.call_log = call_log
        self.queries = queries
        self.carry_out = carry_out
        self.token = token
        self.deliveries: list[Delivery] = []
        #: Updates not posted because their type was not in ``allowed_updates``.
        self.dropped: list[Delivery] = []
        #: The target: ``url``, ``secret_token``, ``max_connections`` (empty: no webhook).
        self.target: dict[str, Any] = {}
        #: The update types the webhook gets (sticky, as Telegram keeps the last list given).
        self.allowed_updates: frozenset[str] = DEFAULT_ALLOWED_UPDATES
        self.answer_in_response = True  # accept a method call in the webhook's reply, as Telegram does
        #: The most webhook requests that were in flight at once.
        self.peak_connections = 0
        self._http = requests.Session()
        self._lock = threading.Lock()
        self._background: list[threading.Thread] = []
        self._slots = threading.Condition()
        self._in_flight = 0
        self._pending: dict[int, float] = {}  # update_id -> when Telegram would stop trying (monotonic)
        self._last_error: tuple[int, str] | None = None  # (unix time, message) for getWebhookInfo

    def set_target(self, url: str, secret: str | None, *, max_connections: int | None = None) -> None:
        """Where updates go (what setWebhook would set), without a Bot API call.

        ``allowed_updates`` stays as it was, as a setWebhook without it leaves it.

        :param url: the webhook's URL.
        :param secret: the ``X-Telegram-Bot-Api-Secret-Token`` header's value (None: none).
        :param max_connections: the most POSTs in flight at once (Telegram's 40 when None).
        """
        if url != self.target.get("url"):
            self._last_error = None
        self.target = {
            "url": url,
            "secret_token": secret,
            "max_connections": max_connections or DEFAULT_MAX_CONNECTIONS,
        }

    def close(self) -> None:
        """Close the HTTP session (after ``join_background``)."""
        self._http.close()

    def join_background(self) -> None:
        """Wait (at most 5 s each) for the deliveries running in the background."""
        for t in list(self._background):
            t.join(timeout=5)

    # --- updates out -------------------------------------------------------------------------

    def deliver(self, update: dict[str, Any], *, retries: int = 0, timeout: float = 30.0) -> Delivery:
        """POST ``update`` to the webhook with the secret; resend up to ``retries`` times on non-2xx.

        An update whose type is not in ``allowed_updates`` is not posted (Telegram never queues
        it): the ``Delivery`` returned has ``status`` 0 and says why in ``dropped``. At most
        ``max_connections`` POSTs are in flight at once; the others wait their turn. A failed
        POST is what ``getWebhookInfo`` reports as the last error.

        :param update: the update to post.
        :param retries: how many times a non-2xx answer or a failed connection is retried.
        :param timeout: seconds to wait for each answer.
        """
        target = self.target  # replaced whole by setWebhook: one target for all attempts
        if not target.get("url"):
            raise RuntimeError("no webhook: call set_webhook_target() or setWebhook first")
        kind = update_type(update)
        if kind not in self.allowed_updates:
            dropped = Delivery(update, 0, None, dropped=f"{kind} is not in the webhook's allowed_updates")
            with self._lock:
                self.dropped.append(dropped)
            return dropped
        self.queries.note_sent(update)
        update_id = update.get("update_id")
        if isinstance(update_id, int):
            lifetime = UPDATE_LIFETIME.get(kind, DEFAULT_UPDATE_LIFETIME)
            with self._slots:
                self._pending[update_id] = time.monotonic() + lifetime
        headers = {"Content-Type": "application/json"}
        if target.get("secret_token"):
            headers["X-Telegram-Bot-Api-Secret-Token"] = target["secret_token"]
        for attempt in range(retries + 1):
            try:
                with self._connection():
                    resp = self._http.post(
                        target["url"], data=json.dumps(update), headers=headers, timeout=timeout
                    )
            except requests.RequestException as exc:
                reported = connection_error(exc)
                if reported is not None:
                    self._webhook_error(reported)
                if attempt < retries:
                    time.sleep(0.05)
                    continue
                raise
            delivery = self._answered(update, resp)
            if 200 <= resp.status_code < 300:
                if isinstance(update_id, int):
                    with self._slots:
                        self._pending.pop(update_id, None)
                self._method_in_reply(delivery.body)
                return delivery
            if attempt < retries:
                time.sleep(0.05)
        return delivery

    def _answered(self, update: dict[str, Any], resp: requests.Response) -> Delivery:
        """Record the app's answer to a POST (a non-2xx one as the last error)."""
        try:
            body: Any = resp.json()
        except ValueError:
            body = resp.text
        delivery = Delivery(update, resp.status_code, body)
        with self._lock:
            self.deliveries.append(delivery)
        if not 200 <= resp.status_code < 300:
            # WebhookActor.cpp handle(): "Wrong response from the webhook: " << code << " " << reason
            self._webhook_error(f"Wrong response from the webhook: {resp.status_code} {resp.reason}".rstrip())
        return delivery

    def deliver_later(self, update: dict[str, Any]) -> None:
        """Post ``update`` from a background thread (retried 3 times); an app that is down
        keeps it pending (``getWebhookInfo`` says so), as on Telegram.

        :param update: the update to post.
        """

        def send() -> None:
            with suppress(requests.RequestException):
                self.deliver(update, retries=3)

        self.in_background(threading.Thread(target=send, daemon=True))

    def in_background(self, thread: threading.Thread) -> None:
        """Start ``thread``; ``join_background()`` waits for it (finished ones are forgotten here).

        :param thread: a thread not yet started.
        """
        with self._lock:
            self._background = [t for t in self._background if t.is_alive()]
            self._background.append(thread)
        thread.start()

    @contextmanager
    def _connection(self) -> Iterator[None]:
        """One of the webhook's ``max_connections``: wait for a free one, hold it while posting."""
        with self._slots:
            while self._in_flight >= int(self.target.get("max_connections") or DEFAULT_MAX_CONNECTIONS):
                self._slots.wait()
            self._in_flight += 1
            self.peak_connections = max(self.peak_connections, self._in_flight)
        try:
            yield
        finally:
            with self._slots:
                self._in_flight -= 1
                self._slots.notify_all()

    def _webhook_error(self, message: str) -> None:
        """Note a failed webhook request as ``getWebhookInfo`` reports it (``last_error_*``)."""
        self._last_error = (int(time.time()), message)

    def pending_update_count(self) -> int:
        """Updates Telegram would still be trying to deliver: queued, in flight, or refused
        and not yet expired."""
        now = time.monotonic()
        with self._slots:
            for update_id in [u for u, expires in self._pending.items() if expires <= now]:
                del self._pending[update_id]
            return len(self._pending)

    def _method_in_reply(self, body: Any) -> None:
        if self.answer_in_response and isinstance(body, dict) and isinstance(body.get("method"), str):
            method: str = body["method"]
            params = {k: v for k, v in body.items() if k != "method"}
            self.call_log.record(Call(method, params, self.token or "", "WEBHOOK-REPLY"))
            if method in REPLY_METHODS:
                # "It's not possible to know that such a request was successful" (Bot API docs).
                with suppress(ApiError):
                    self.carry_out(method, params)

    # --- the Bot API: the webhook ------------------------------------------------------------

    def set_webhook(self, params: Params) -> Described:
        """``setWebhook`` (Client.cpp ``do_set_webhook``: ``td::parse_url``, then the secret
        token's checks); an empty ``url`` removes the webhook.

        :param params: the request's parameters.
        """
        url = arg(params, "url")
        if not url:
            return self.delete_webhook(params)
        if webhook_url_error(url) is not None:
            raise ApiError(400, "Bad Request: invalid webhook URL specified")
        secret = arg(params, "secret_token")
        refused = secret_token_error(secret)
        if refused is not None:
            raise ApiError(400, refused)
        max_connections = get_integer_arg(
            params, "max_connections", DEFAULT_MAX_CONNECTIONS, 1, MAX_CONNECTIONS_LIMIT
        )
        if truthy(params.get("drop_pending_updates")):
            with self._slots:
                self._pending.clear()
        new = {"url": url, "secret_token": secret or None, "max_connections": max_connections}
        same = new == self.target
        allowed = parse_allowed_updates(arg(params, "allowed_updates"))
        if allowed is not None:
            self.allowed_updates = allowed
        if not same:
            self._last_error = None  # Client::finish_set_webhook clears the last error
            self.target = new
        return Described(True, "Webhook is already set" if same else "Webhook was set")

    def delete_webhook(self, params: Params) -> Described:
        """``deleteWebhook``: no target; ``allowed_updates`` stay as they are.

        :param params: the request's parameters.
        """
        if truthy(params.get("drop_pending_updates")):
            with self._slots:
                self._pending.clear()
        had = bool(self.target.get("url"))
        self.target = {}
        self._last_error = None  # Client::on_webhook_closed
        return Described(True, "Webhook was deleted" if had else "Webhook is already deleted")

    def get_webhook_info(self, params: Params) -> dict[str, Any]:
        """``getWebhookInfo`` as Client.cpp ``JsonWebhookInfo`` writes it: ``last_error_*`` only
        after an error, ``max_connections`` only with a webhook, ``allowed_updates`` only when
        not the default, in the server's order.

        :param params: the request's parameters (none are read).
        """
        url = self.target.get("url", "")
        info: dict[str, Any] = {
            "url": url,
            "has_custom_certificate": False,
            "pending_update_count": self.pending_update_count(),
        }
        if self._last_error is not None:
            info["last_error_date"], info["last_error_message"] = self._last_error
        if url:
            info["max_connections"] = int(self.target.get("max_connections") or DEFAULT_MAX_CONNECTIONS)
        if self.allowed_updates != DEFAULT_ALLOWED_UPDATES:
            info["allowed_updates"] = [name for name in UPDATE_TYPES if name in self.allowed_updates]
        return info
