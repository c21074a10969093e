"""Bot API parameters and refusals, as the Bot API server reads and words them.

Parameters are read the way the Bot API server (tdlib/telegram-bot-api, ``Client.cpp``)
reads them: every parameter is a string (``arg``), integers go through ``td::to_integer``
and are clamped (``get_integer_arg``), and a 400's text gets the server's "Bad Request: "
prefix with its first letter lowered (``bad_request``, as ``fail_query_with_error`` does).
A method answers with a result, a ``Described`` result, or raises ``ApiError``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = [
    "INT32_MAX",
    "ApiError",
    "Described",
    "Params",
    "arg",
    "bad_request",
    "bot_id_of",
    "chat_id_arg",
    "get_integer_arg",
    "get_user_id",
    "int_param",
    "to_integer",
    "to_integer_safe",
    "truthy",
]

#: A method's parameters, by name, as the request carried them.
Params = dict[str, Any]

#: Telegram's update and message ids are signed 32-bit integers (the Bot API server's
#: ``as_client_message_id`` is an int32; its update queue's ids are int32 too).
INT32_MAX = 2**31 - 1


class ApiError(Exception):
    """Answered as ``{"ok": false, "error_code", "description"}``."""

    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        """:param code: the HTTP status and ``error_code``.
        :param description: the ``description``, as Telegram words it.
        :param retry_after: ``parameters.retry_after`` (seconds), for a 429.
        """
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after


@dataclass
class Described:
    """A result answered with a ``description`` too, as setWebhook's "Webhook was set"."""

    result: Any
    description: str


def arg(params: Params, name: str) -> str:
    """A parameter as the server sees it (``Query::arg``): a string, empty when absent.

    A JSON request body's non-string values become their JSON text (``10`` is ``"10"``,
    ``true`` is ``"true"``, a list is its JSON), as the server turns them into arguments.

    :param params: the request's parameters.
    :param name: the parameter's name.
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

    :param value: the parameter as sent.
    """
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("true", "yes", "1")


def to_integer(text: str, bits: int = 32) -> int:
    """``td::to_integer<int32/int64>`` (tdutils/td/utils/misc.h): never fails.

    An optional ``-``, then the leading ASCII digits (the rest is ignored: ``"abc"`` is 0,
    ``"12abc"`` is 12); the value wraps around as the C++ unsigned arithmetic does.

    :param text: the parameter's text.
    :param bits: 32 or 64, the C++ type's width.
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
    """``td::to_integer_safe``: the integer only if ``text`` is exactly its decimal form.

    :param text: the parameter's text.
    :param bits: 32 or 64, the C++ type's width.
    """
    value = to_integer(text, bits)
    return value if str(value) == text else None


def get_integer_arg(
    params: Params, name: str, default: int, min_value: int = -(2**31), max_value: int = INT32_MAX
) -> int:
    """``Client::get_integer_arg`` (Client.cpp): absent is ``default``; anything else goes
    through ``td::to_integer<int32>`` (so ``"abc"`` reads 0) and is clamped to the range.

    :param params: the request's parameters.
    :param name: the parameter's name.
    :param default: the value when it is absent.
    :param min_value: the smallest value kept (smaller ones are raised to it).
    :param max_value: the largest value kept (larger ones are lowered to it).
    """
    text = arg(params, name)
    value = default if text == "" else to_integer(text, 32)
    return max(min_value, min(value, max_value))


def bad_request(message: str) -> ApiError:
    """A 400 worded as ``Client::fail_query_with_error`` (Client.cpp) words it.

    "Bad Request: " before the message, whose first letter is lowered unless it is an
    upper-case constant such as ``STARS_INVOICE_INVALID`` (second letter ``_`` or upper-case).

    :param message: the refusal, as the server's source writes it.
    """
    if len(message) >= 2 and (message[1] == "_" or "A" <= message[1] <= "Z"):
        text = message
    else:
        text = message[:1].lower() + message[1:]
    return ApiError(400, f"Bad Request: {text}")


def get_user_id(params: Params, name: str = "user_id") -> int:
    """``Client::get_user_id`` (Client.cpp): ``td::to_integer<int64>``, at least 0; 0 is
    refused with "Bad Request: invalid user_id specified".

    :param params: the request's parameters.
    :param name: the parameter's name.
    """
    user_id = max(to_integer(arg(params, name), 64), 0)
    if user_id == 0:
        raise bad_request(f"Invalid {name} specified")
    return user_id


def int_param(value: Any, name: str, error: str | None = None) -> int:
    """A strict integer parameter; ``ApiError`` 400 (``error``, if given) when it is not one.

    The Bot API server itself never refuses an integer this way (see ``get_integer_arg``
    and ``to_integer``); this is kept for callers that want a strict check.

    :param value: the parameter as sent.
    :param name: the parameter's name, for the refusal.
    :param error: the refusal's words in place of the default.
    """
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ApiError(400, error or f'Bad Request: parameter "{name}" is required') from None


def chat_id_arg(params: Params) -> int:
    """The chat a message goes to, as Client.cpp ``check_chat`` reads ``chat_id``.

    :param params: the request's parameters.
    """
    text = arg(params, "chat_id")
    if not text:
        raise ApiError(400, "Bad Request: chat_id is empty")  # Client.cpp check_chat
    chat_id = to_integer(text, 64)
    if text.startswith("@") or chat_id == 0:
        # TDLib's getChat/searchPublicChat: "Chat not found" (the sandbox knows no public chats).
        raise bad_request("Chat not found")
    return chat_id


def bot_id_of(token: str) -> int:
    """The bot's user id: the part of its token before the colon.

    :param token: a bot token, ``"<id>:<secret>"``.
    """
    bot_id = to_integer_safe(token.split(":", 1)[0])
    return bot_id if bot_id is not None and bot_id > 0 else 1
