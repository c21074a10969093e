"""The sandbox's side of the app's webhook: where updates go, and posting them there.

``Webhook`` keeps the target (``set_webhook_target`` or the app's ``setWebhook``) with its
``allowed_updates`` and ``max_connections``, builds message updates (the users it has seen,
the bot's own messages), POSTs updates with the secret header (retrying non-2xx, or later in
a background thread), records each ``Delivery`` and what ``getWebhookInfo`` reports
(pending updates, the last error), and takes a Bot API call the app puts in its webhook
reply, as Telegram does.

It behaves as the Bot API server (tdlib/telegram-bot-api) run with ``--local`` does: plain
``http://`` webhooks on any port are accepted, which 127.0.0.1 needs.
"""

from __future__ import annotations

import ipaddress
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import requests

from .server import ApiError, ApiServer, Call, Described, arg, get_integer_arg, to_integer_safe, truthy

__all__ = [
    "DEFAULT_ALLOWED_UPDATES",
    "DEFAULT_MAX_CONNECTIONS",
    "UPDATE_TYPES",
    "Delivery",
    "Webhook",
    "make_user",
    "update_type",
    "webhook_url_error",
]

#: Methods the sandbox carries out when the app answers with them in its webhook reply
#: (others are only recorded).
REPLY_METHODS = frozenset({"answerPreCheckoutQuery"})

#: Update types in the Bot API server's order (``enum class UpdateType``, Client.h, "append
#: only"), the order getWebhookInfo lists ``allowed_updates`` in. ``subscription`` (Bot API
#: 10.2's BotSubscriptionUpdated) is newer than the server source read here: placed last.
UPDATE_TYPES: tuple[str, ...] = (
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "inline_query",
    "chosen_inline_result",
    "callback_query",
    "shipping_query",
    "pre_checkout_query",
    "poll",
    "poll_answer",
    "my_chat_member",
    "chat_member",
    "chat_join_request",
    "chat_boost",
    "removed_chat_boost",
    "message_reaction",
    "message_reaction_count",
    "business_connection",
    "business_message",
    "edited_business_message",
    "deleted_business_messages",
    "purchased_paid_media",
    "subscription",
)
#: Client.h ``DEFAULT_ALLOWED_UPDATE_TYPES``: every type but chat_member, message_reaction
#: and message_reaction_count, until a bot asks for others.
DEFAULT_ALLOWED_UPDATES = frozenset(UPDATE_TYPES) - {
    "chat_member",
    "message_reaction",
    "message_reaction_count",
}
#: setWebhook's default ``max_connections`` and its range (Client.cpp get_webhook_max_connections).
DEFAULT_MAX_CONNECTIONS = 40
MAX_CONNECTIONS_LIMIT = 100
#: How long the server keeps an undelivered update (the ``timeout`` of ``add_update`` in
#: Client.cpp): 150 s for a pre-checkout query or a button press, a day for the rest.
UPDATE_LIFETIME = {"pre_checkout_query": 150.0, "callback_query": 150.0, "shipping_query": 150.0}
DEFAULT_UPDATE_LIFETIME = 86400.0


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


def make_user(user: int | dict[str, Any], language_code: str = "en") -> dict[str, Any]:
    """A Telegram ``User`` object for an id (or the dict given)."""
    if isinstance(user, dict):
        return user
    return {"id": user, "is_bot": False, "first_name": f"User {user}", "language_code": language_code}


def update_type(update: dict[str, Any]) -> str:
    """The update's type: its one key besides ``update_id``."""
    return next((key for key in update if key != "update_id"), "")


def webhook_url_error(url: str) -> str | None:
    """Why ``td::parse_url(url, HttpUrl::Protocol::Https)`` refuses ``url``, or None.

    A port of tdutils/td/utils/HttpUrl.cpp ``parse_url``, which setWebhook runs first
    (Client.cpp ``do_set_webhook``).
    """
    i = 0
    while i < len(url) and url[i] not in ":/?#@[]":
        i += 1
    rest = url
    if url.startswith("://", i):
        if url[:i].lower() not in ("http", "https"):
            return "Unsupported URL protocol"
        rest = url[i + 3 :]
    j = 0
    while j < len(rest) and rest[j] not in "/?#":
        j += 1
    userinfo_host_port = rest[:j]
    k = len(userinfo_host_port) - 1
    while k > 0 and userinfo_host_port[k] not in ":]@":
        k -= 1
    port = 0
    userinfo_host = userinfo_host_port
    if k > 0 and userinfo_host_port[k] == ":":
        port_text = userinfo_host_port[k + 1 :]
        while len(port_text) > 1 and port_text[0] == "0":
            port_text = port_text[1:]
        parsed = to_integer_safe(port_text, 32)
        port = -1 if parsed is None or parsed == 0 else parsed
        userinfo_host = userinfo_host_port[:k]
    if port < 0 or port > 65535:
        return "Wrong port number specified in the URL"
    host = userinfo_host[userinfo_host.rfind("@") + 1 :]
    is_ipv6 = False
    if host.startswith("[") and host.endswith("]") and len(host) >= 2:
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return "Wrong IPv6 address specified in the URL"
        is_ipv6 = True
    if not host:
        return "URL host is empty"
    if host == ".":
        return "Host is invalid"
    host = "".join(c.lower() if c < "\x80" else c for c in host)
    n = 0
    while n < len(host):
        c = host[n]
        if is_ipv6:
            if n in (0, len(host) - 1) or c in ":." or "0" <= c <= "9" or "a" <= c <= "f":
                n += 1
                continue
            return "Wrong IPv6 URL host"
        if "a" <= c <= "z" or "0" <= c <= "9" or c in ".-_!$,~*'();&+=":  # RFC 7230 and RFC 3986
            n += 1
            continue
        if c == "%":
            hex_digits = host[n + 1 : n + 3]
            if len(hex_digits) == 2 and all("a" <= h <= "f" or "0" <= h <= "9" for h in hex_digits):
                n += 3
                continue
            return "Wrong percent-encoded symbol in URL host"
        if ord(c) >= 128:  # plain UTF-8 is allowed
            n += 1
            continue
        return "Wrong URL host"
    return None


def parse_allowed_updates(text: str) -> frozenset[str] | None:
    """setWebhook's ``allowed_updates`` as ``Client::get_allowed_update_types`` reads it.

    None (absent, not JSON, not a list, or a non-string in it) keeps the previous list:
    Telegram's rule that the list is sticky. Names are lower-cased and unknown ones
    ignored; a list with no known name (``[]`` included) means the default.
    """
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, list):
        return None
    names: set[str] = set()
    for name in value:
        if not isinstance(name, str):
            return None
        if name.lower() in UPDATE_TYPES:
            names.add(name.lower())
    return frozenset(names) if names else DEFAULT_ALLOWED_UPDATES


class Webhook(ApiServer):
    """Delivers updates to the app's webhook, as Telegram does."""

    def __init__(self, token: str | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(token, host=host, port=port)
        self.deliveries: list[Delivery] = []
        #: Updates not posted because their type was not in ``allowed_updates``.
        self.dropped: list[Delivery] = []
        self.webhook: dict[str, Any] = {}
        #: The update types the webhook gets (sticky, as Telegram keeps the last list given).
        self.allowed_updates: frozenset[str] = DEFAULT_ALLOWED_UPDATES
        #: The users this sandbox has seen (in updates it made), by id: what Telegram knows of them.
        self.users: dict[int, dict[str, Any]] = {}
        #: Messages the bot sent (sendMessage, sendInvoice), oldest first.
        self.bot_messages: list[dict[str, Any]] = []
        self.answer_in_response = True  # accept a method call in the webhook's reply, as Telegram does
        #: The most webhook requests that were in flight at once.
        self.peak_connections = 0
        self._http = requests.Session()
        self._background: list[threading.Thread] = []
        self._slots = threading.Condition()
        self._in_flight = 0
        self._pending: dict[int, float] = {}  # update_id -> when Telegram would stop trying (monotonic)
        self._last_error: tuple[int, str] | None = None  # (unix time, message) for getWebhookInfo

    def stop(self) -> None:
        """Wait for background deliveries, stop serving, and close the HTTP session."""
        for t in list(self._background):
            t.join(timeout=5)
        super().stop()
        self._http.close()

    def set_webhook_target(self, url: str, secret: str | None, *, max_connections: int | None = None) -> None:
        """Where updates go (what setWebhook would set), without a Bot API call.

        ``allowed_updates`` stays as it was, as a setWebhook without it leaves it.
        """
        if url != self.webhook.get("url"):
            self._last_error = None
        self.webhook = {
            "url": url,
            "secret_token": secret,
            "max_connections": max_connections or DEFAULT_MAX_CONNECTIONS,
        }

    # --- users and messages ------------------------------------------------------------

    def user_object(self, user: int | dict[str, Any]) -> dict[str, Any]:
        """The ``User`` for ``user``: the dict given (now known to the sandbox), the one this
        sandbox has seen with that id, or a made-up one for an id it never saw."""
        with self._cond:
            if isinstance(user, dict):
                self.users[user["id"]] = dict(user)
                return dict(user)
            known = self.users.get(user)
            if known is None:
                known = self.users[user] = make_user(user)
            return dict(known)

    def private_chat(self, user: int | dict[str, Any]) -> dict[str, Any]:
        """The private ``Chat`` with ``user``, as Telegram describes it (``JsonChat``: the
        user's id, first_name, last_name and username if they have them, type private)."""
        u = self.user_object(user)
        chat: dict[str, Any] = {"id": u["id"], "first_name": u.get("first_name", "")}
        for key in ("last_name", "username"):
            if u.get(key):
                chat[key] = u[key]
        chat["type"] = "private"
        return chat

    def message_update(self, user: int | dict[str, Any], **content: Any) -> dict[str, Any]:
        """An update carrying a message from ``user`` in their private chat with the bot."""
        u = self.user_object(user)
        message: dict[str, Any] = {
            "message_id": self.next_id(),
            "from": u,
            "chat": self.private_chat(u),
            "date": int(time.time()),
            **content,
        }
        return {"update_id": self.next_id(), "message": message}

    def bot_message(self, chat_id: int, token: str | None = None, **content: Any) -> dict[str, Any]:
        """A message the bot sent in its private chat with ``chat_id``: ``from`` is the bot."""
        return {
            "message_id": self.next_id(),
            "from": self.bot_user(token),
            "chat": self.private_chat(chat_id),
            "date": int(time.time()),
            **content,
        }

    def _sent(self, message: dict[str, Any], reply_markup: str) -> dict[str, Any]:
        """Keep a message the bot sent, with its inline keyboard (the only markup Telegram
        returns in the sent Message), and return it as the method's result."""
        markup = _inline_keyboard(reply_markup)
        if markup is not None:
            message["reply_markup"] = markup
        with self._cond:
            self.bot_messages.append(message)
        return message

    # --- updates out -------------------------------------------------------------------

    def deliver(self, update: dict[str, Any], *, retries: int = 0, timeout: float = 30.0) -> Delivery:
        """POST ``update`` to the webhook with the secret; resend up to ``retries`` times on non-2xx.

        An update whose type is not in ``allowed_updates`` is not posted (Telegram never queues
        it): the ``Delivery`` returned has ``status`` 0 and says why in ``dropped``. At most
        ``max_connections`` POSTs are in flight at once; the others wait their turn. A failed
        POST is what ``getWebhookInfo`` reports as the last error.
        """
        target = self.webhook  # replaced whole by setWebhook: one target for all attempts
        if not target.get("url"):
            raise RuntimeError("no webhook: call set_webhook_target() or setWebhook first")
        kind = update_type(update)
        if kind not in self.allowed_updates:
            dropped = Delivery(update, 0, None, dropped=f"{kind} is not in the webhook's allowed_updates")
            with self._cond:
                self.dropped.append(dropped)
                self._cond.notify_all()
            return dropped
        self._note_outgoing(update)
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
                reported = _connection_error(exc)
                if reported is not None:
                    self._webhook_error(reported)
                if attempt < retries:
                    time.sleep(0.05)
                    continue
                raise
            try:
                body: Any = resp.json()
            except ValueError:
                body = resp.text
            delivery = Delivery(update, resp.status_code, body)
            with self._cond:
                self.deliveries.append(delivery)
            if 200 <= resp.status_code < 300:
                if isinstance(update_id, int):
                    with self._slots:
                        self._pending.pop(update_id, None)
                self._method_in_reply(body)
                return delivery
            # WebhookActor.cpp handle(): "Wrong response from the webhook: " << code << " " << reason
            self._webhook_error(f"Wrong response from the webhook: {resp.status_code} {resp.reason}".rstrip())
            if attempt < retries:
                time.sleep(0.05)
        return delivery

    def _note_outgoing(self, update: dict[str, Any]) -> None:
        """Called for each update about to be posted (the buyer notes its queries here)."""

    @contextmanager
    def _connection(self) -> Iterator[None]:
        """One of the webhook's ``max_connections``: wait for a free one, hold it while posting."""
        with self._slots:
            while self._in_flight >= int(self.webhook.get("max_connections") or DEFAULT_MAX_CONNECTIONS):
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

    def _deliver_later(self, update: dict[str, Any]) -> None:
        def send() -> None:
            # An app that is down keeps the update pending (getWebhookInfo says so), as on Telegram.
            with suppress(requests.RequestException):
                self.deliver(update, retries=3)

        self._in_background(threading.Thread(target=send, daemon=True))

    def _in_background(self, thread: threading.Thread) -> None:
        """Start ``thread``; ``stop()`` waits for it (finished ones are forgotten here)."""
        with self._cond:
            self._background = [t for t in self._background if t.is_alive()]
            self._background.append(thread)
        thread.start()

    def _method_in_reply(self, body: Any) -> None:
        if self.answer_in_response and isinstance(body, dict) and isinstance(body.get("method"), str):
            method: str = body["method"]
            params = {k: v for k, v in body.items() if k != "method"}
            self._record(Call(method, params, self.token or "", "WEBHOOK-REPLY"))
            if method in REPLY_METHODS:
                # "It's not possible to know that such a request was successful" (Bot API docs).
                with suppress(ApiError):
                    getattr(self, "_api_" + method)(params)

    # --- the Bot API: the webhook ------------------------------------------------------

    def _api_setWebhook(self, p: dict[str, Any]) -> bool | Described:
        url = arg(p, "url")
        if not url:  # an empty url removes the webhook (Client.cpp do_set_webhook)
            return self._delete_webhook(p)
        # Client.cpp do_set_webhook: td::parse_url, then the secret token's checks.
        if webhook_url_error(url) is not None:
            raise ApiError(400, "Bad Request: invalid webhook URL specified")
        secret = arg(p, "secret_token")
        if len(secret) > 256:
            raise ApiError(400, "Bad Request: secret token is too long")
        if not all(c.isascii() and (c.isalnum() or c in "_-") for c in secret):
            raise ApiError(400, "Bad Request: secret token contains unallowed characters")
        max_connections = get_integer_arg(
            p, "max_connections", DEFAULT_MAX_CONNECTIONS, 1, MAX_CONNECTIONS_LIMIT
        )
        if truthy(p.get("drop_pending_updates")):
            with self._slots:
                self._pending.clear()
        new = {"url": url, "secret_token": secret or None, "max_connections": max_connections}
        same = new == self.webhook
        allowed = parse_allowed_updates(arg(p, "allowed_updates"))
        if allowed is not None:
            self.allowed_updates = allowed
        if not same:
            self._last_error = None  # Client::finish_set_webhook clears the last error
            self.webhook = new
        return Described(True, "Webhook is already set" if same else "Webhook was set")

    def _api_deleteWebhook(self, p: dict[str, Any]) -> Described:
        return self._delete_webhook(p)

    def _delete_webhook(self, p: dict[str, Any]) -> Described:
        if truthy(p.get("drop_pending_updates")):
            with self._slots:
                self._pending.clear()
        had = bool(self.webhook.get("url"))
        self.webhook = {}
        self._last_error = None  # Client::on_webhook_closed; allowed_updates stay as they are
        return Described(True, "Webhook was deleted" if had else "Webhook is already deleted")

    def _api_getWebhookInfo(self, p: dict[str, Any]) -> dict[str, Any]:
        # Client.cpp JsonWebhookInfo: last_error_* only after an error, max_connections only
        # with a webhook, allowed_updates only when not the default, in the server's order.
        url = self.webhook.get("url", "")
        info: dict[str, Any] = {
            "url": url,
            "has_custom_certificate": False,
            "pending_update_count": self.pending_update_count(),
        }
        if self._last_error is not None:
            info["last_error_date"], info["last_error_message"] = self._last_error
        if url:
            info["max_connections"] = int(self.webhook.get("max_connections") or DEFAULT_MAX_CONNECTIONS)
        if self.allowed_updates != DEFAULT_ALLOWED_UPDATES:
            info["allowed_updates"] = [name for name in UPDATE_TYPES if name in self.allowed_updates]
        return info


def _inline_keyboard(text: str) -> dict[str, Any] | None:
    """The ``reply_markup`` parameter's inline keyboard, or None for any other markup."""
    try:
        markup = json.loads(text) if text else None
    except ValueError:
        return None
    if isinstance(markup, dict) and isinstance(markup.get("inline_keyboard"), list):
        return {"inline_keyboard": markup["inline_keyboard"]}
    return None


def _connection_error(exc: requests.RequestException) -> str | None:
    """A failed webhook request as Telegram reports it in ``last_error_message`` (None: not
    reported).

    The Bot API server reports the socket's own error text (WebhookActor.cpp
    ``on_connection_error``); these are the texts Telegram shows for them. A connection
    closed without an answer is retried but not reported (WebhookActor.cpp ``handle``:
    "Webhook connection closed" goes to ``on_update_error`` only).
    """
    if isinstance(exc, requests.ConnectTimeout):
        return "Connection timed out"
    if isinstance(exc, requests.Timeout):
        return "Read timeout expired"
    text = str(exc).lower()
    if "refused" in text:
        return "Connection refused"
    if "name or service not known" in text or "nameresolution" in text or "getaddrinfo" in text:
        return "Failed to resolve host: Name or service not known"
    return None
