"""Private chats as Telegram keeps them: the users it knows, the bot's messages, and ids.

``Chats`` gives out Telegram's ids (updates and messages), knows the users the sandbox has
seen, builds the messages users and the bot send in their private chats (``from`` names the
sender, as Telegram's ``JsonMessage`` does), and keeps what the bot sent (``sendMessage``,
``sendInvoice``) so that a button press can carry the message with that button.
"""

from __future__ import annotations

import copy
import json
import secrets
import threading
import time
from typing import Any

from .bot import Bot
from .params import INT32_MAX, Params, arg, bad_request, chat_id_arg

__all__ = ["Chats", "make_user"]


def make_user(user: int | dict[str, Any], language_code: str = "en") -> dict[str, Any]:
    """A Telegram ``User`` object for an id (or the dict given).

    :param user: a user id, or a ``User`` dict (returned as it is).
    :param language_code: the made-up user's language.
    """
    if isinstance(user, dict):
        return user
    return {"id": user, "is_bot": False, "first_name": f"User {user}", "language_code": language_code}


class Chats:
    """Users, private chats and the bot's messages, with Telegram's ids."""

    def __init__(self, bot: Bot) -> None:
        """:param bot: the bot whose chats these are (the sender of its messages)."""
        self.bot = bot
        #: The users this sandbox has seen (in updates it made), by id: what Telegram knows of them.
        self.users: dict[int, dict[str, Any]] = {}
        #: Messages the bot sent (sendMessage, sendInvoice), oldest first.
        self.bot_messages: list[dict[str, Any]] = []
        self._lock = threading.RLock()
        # Ids for updates and messages: one counter from a random start well below 2**31, so
        # they are unique for this sandbox's life and fit Telegram's signed 32 bits (about
        # 1.6 billion ids of headroom). Telegram's own update ids restart at random too.
        self._id_lock = threading.Lock()
        self._next_id = (1 << 20) + secrets.randbelow(1 << 29)

    def next_id(self) -> int:
        """A fresh id (for updates and messages): unique in this sandbox, below 2**31."""
        with self._id_lock:
            value = self._next_id
            if value > INT32_MAX:  # after ~1.6 billion ids: start again low rather than overflow
                value = 1 << 20
            self._next_id = value + 1
        return value

    def user_object(self, user: int | dict[str, Any]) -> dict[str, Any]:
        """The ``User`` for ``user``: the dict given (now known to the sandbox), the one this
        sandbox has seen with that id, or a made-up one for an id it never saw.

        :param user: a user id or a ``User`` dict.
        """
        with self._lock:
            if isinstance(user, dict):
                self.users[user["id"]] = dict(user)
                return dict(user)
            known = self.users.get(user)
            if known is None:
                known = self.users[user] = make_user(user)
            return dict(known)

    def private_chat(self, user: int | dict[str, Any]) -> dict[str, Any]:
        """The private ``Chat`` with ``user``, as Telegram describes it (``JsonChat``: the
        user's id, first_name, last_name and username if they have them, type private).

        :param user: a user id or a ``User`` dict.
        """
        u = self.user_object(user)
        chat: dict[str, Any] = {"id": u["id"], "first_name": u.get("first_name", "")}
        for key in ("last_name", "username"):
            if u.get(key):
                chat[key] = u[key]
        chat["type"] = "private"
        return chat

    def message_update(self, user: int | dict[str, Any], **content: Any) -> dict[str, Any]:
        """An update carrying a message from ``user`` in their private chat with the bot.

        :param user: the sender, a user id or a ``User`` dict.
        :param content: the message's content (``text=...``, ``successful_payment=...``).
        """
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
        """A message the bot sent in its private chat with ``chat_id``: ``from`` is the bot.

        :param chat_id: the user's id (their private chat's id).
        :param token: the bot's token; the one being served when None.
        :param content: the message's content.
        """
        return {
            "message_id": self.next_id(),
            "from": self.bot.user(token),
            "chat": self.private_chat(chat_id),
            "date": int(time.time()),
            **content,
        }

    def keep_sent(self, message: dict[str, Any], reply_markup: str) -> dict[str, Any]:
        """Keep a message the bot sent, with its inline keyboard (the only markup Telegram
        returns in the sent Message), and return it as the method's result.

        :param message: the message, as ``bot_message`` built it.
        :param reply_markup: the method's ``reply_markup`` parameter, as sent.
        """
        markup = _inline_keyboard(reply_markup)
        if markup is not None:
            message["reply_markup"] = markup
        with self._lock:
            self.bot_messages.append(message)
        return message

    def message_with_button(self, chat_id: int, callback_data: str) -> dict[str, Any] | None:
        """The bot's latest message in the chat with a button carrying ``callback_data``.

        :param chat_id: the user's id (their private chat's id).
        :param callback_data: the button's data.
        """
        with self._lock:
            for message in reversed(self.bot_messages):
                rows = (message.get("reply_markup") or {}).get("inline_keyboard") or []
                buttons = [b for row in rows if isinstance(row, list) for b in row if isinstance(b, dict)]
                if message["chat"]["id"] == chat_id and any(
                    b.get("callback_data") == callback_data for b in buttons
                ):
                    found: dict[str, Any] = copy.deepcopy(message)
                    return found
        return None

    # --- the Bot API: what the bot sends the user --------------------------------------------

    def send_message(self, params: Params) -> dict[str, Any]:
        """``sendMessage``: the text is read first ("Message text is empty"), then the chat
        (``check_chat``: "chat_id is empty"), as Client.cpp ``process_send_message_query`` does.

        :param params: the request's parameters.
        """
        text = arg(params, "text")
        if not text:
            raise bad_request("Message text is empty")
        return self.keep_sent(self.bot_message(chat_id_arg(params), text=text), arg(params, "reply_markup"))

    def answer_callback_query(self, params: Params) -> bool:
        """``answerCallbackQuery``: accepted (callback query ids are not checked).

        :param params: the request's parameters.
        """
        return True


def _inline_keyboard(text: str) -> dict[str, Any] | None:
    """The ``reply_markup`` parameter's inline keyboard, or None for any other markup."""
    try:
        markup = json.loads(text) if text else None
    except ValueError:
        return None
    if isinstance(markup, dict) and isinstance(markup.get("inline_keyboard"), list):
        return {"inline_keyboard": markup["inline_keyboard"]}
    return None
