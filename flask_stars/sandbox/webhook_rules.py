"""What Telegram's webhook rules are: update types, ``allowed_updates``, URLs, error texts.

The rules ``setWebhook`` and the deliverer follow, ported from the Bot API server
(tdlib/telegram-bot-api ``Client.h``/``Client.cpp``, ``WebhookActor.cpp``) and tdutils
(``HttpUrl.cpp``): which update types exist and which a webhook gets by default, how long an
undelivered update is kept, which URLs are accepted, and how a failed delivery is reported.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import requests

from .params import to_integer_safe

__all__ = [
    "DEFAULT_ALLOWED_UPDATES",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_UPDATE_LIFETIME",
    "MAX_CONNECTIONS_LIMIT",
    "UPDATE_LIFETIME",
    "UPDATE_TYPES",
    "connection_error",
    "parse_allowed_updates",
    "secret_token_error",
    "update_type",
    "webhook_url_error",
]

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


def update_type(update: dict[str, Any]) -> str:
    """The update's type: its one key besides ``update_id``.

    :param update: an update, as posted to the webhook.
    """
    return next((key for key in update if key != "update_id"), "")


def webhook_url_error(url: str) -> str | None:
    """Why ``td::parse_url(url, HttpUrl::Protocol::Https)`` refuses ``url``, or None.

    A port of tdutils/td/utils/HttpUrl.cpp ``parse_url``, which setWebhook runs first
    (Client.cpp ``do_set_webhook``).

    :param url: setWebhook's ``url`` parameter.
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

    :param text: setWebhook's ``allowed_updates`` parameter, as sent.
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


def secret_token_error(secret: str) -> str | None:
    """Why setWebhook refuses ``secret_token`` (Client.cpp ``do_set_webhook``), or None.

    :param secret: the ``secret_token`` parameter.
    """
    if len(secret) > 256:
        return "Bad Request: secret token is too long"
    if not all(c.isascii() and (c.isalnum() or c in "_-") for c in secret):
        return "Bad Request: secret token contains unallowed characters"
    return None


def connection_error(exc: requests.RequestException) -> str | None:
    """A failed webhook request as Telegram reports it in ``last_error_message`` (None: not
    reported).

    The Bot API server reports the socket's own error text (WebhookActor.cpp
    ``on_connection_error``); these are the texts Telegram shows for them. A connection
    closed without an answer is retried but not reported (WebhookActor.cpp ``handle``:
    "Webhook connection closed" goes to ``on_update_error`` only).

    :param exc: what ``requests`` raised for the POST.
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
