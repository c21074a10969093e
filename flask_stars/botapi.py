"""The Bot API calls flask_stars makes, through the host's (or its own) ``TeleBot``.

Each method turns telebot's and requests' failures into one ``BotApiError`` carrying
Telegram's ``error_code``, its ``retry_after`` when it sent one, whether an answer came at
all (``answered``: False when the server could not be reached or the call timed out) and
whether the call timed out, so callers decide about retries, and say what happened, from
facts and not from exception types.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import requests
from telebot import apihelper, types

from .config import DEFAULT_API_URL
from .errors import BotApiError
from .packs import XTR

if TYPE_CHECKING:
    from telebot import TeleBot

    from .models import Order
    from .packs import Pack

T = TypeVar("T")
SUBSCRIPTION_PERIOD = 2_592_000  # Telegram allows exactly 30 days
#: Update types a payments bot must receive; allowed_updates is sticky, so set-webhook
#: always sends this list (plus what the host asks for).
PAYMENT_UPDATES = ("message", "callback_query", "pre_checkout_query", "subscription")


def configure_transport(api_url: str | None, timeout: float | None, test_environment: bool = False) -> None:
    """Point telebot at ``api_url`` and set its timeouts (process-wide, as telebot keeps them).

    With ``test_environment`` every call goes to ``<api_url>/bot<token>/test/<method>``
    (Telegram's server when ``api_url`` is None): Telegram's test environment
    (core.telegram.org/bots/features, "Creating a bot in the test environment"), the same
    API with bots and users of its own; a local Bot API server takes the same path.
    With neither, telebot's own setting is left as the host made it.
    """
    if api_url or test_environment:
        base = (api_url or DEFAULT_API_URL).rstrip("/")
        env = "/test" if test_environment else ""
        # telebot declares these None/int; it reads them as a format string and seconds.
        apihelper.API_URL = base + "/bot{0}" + env + "/{1}"  # type: ignore[assignment]
        apihelper.FILE_URL = base + "/file/bot{0}" + env + "/{1}"  # type: ignore[assignment]
    if timeout:
        apihelper.CONNECT_TIMEOUT = timeout  # type: ignore[assignment]
        apihelper.READ_TIMEOUT = timeout  # type: ignore[assignment]


def _call(method: str, fn: Callable[[], T]) -> T:
    try:
        return fn()
    except apihelper.ApiTelegramException as exc:
        params = (exc.result_json or {}).get("parameters") or {}
        retry_after = params.get("retry_after")
        raise BotApiError(
            method,
            exc.description or str(exc),
            error_code=exc.error_code,
            retry_after=int(retry_after) if isinstance(retry_after, (int, float)) else None,
        ) from exc
    except apihelper.ApiHTTPException as exc:
        code = getattr(exc.result, "status_code", None)
        retry_after = _header_retry_after(getattr(exc.result, "headers", None))
        raise BotApiError(method, str(exc), error_code=code, retry_after=retry_after) from exc
    except apihelper.ApiException as exc:
        raise BotApiError(method, str(exc)) from exc
    except requests.Timeout as exc:
        raise BotApiError(method, _no_answer(exc, "timed out"), timeout=True, answered=False) from exc
    except requests.RequestException as exc:
        raise BotApiError(method, _no_answer(exc, exc.__class__.__name__), answered=False) from exc


def _no_answer(exc: requests.RequestException, fallback: str) -> str:
    """Why no answer came, in a few words: the server and the system's reason.

    Never the URL itself: it holds the bot token (``/bot<token>/<method>``).
    """
    reason = fallback
    if not isinstance(exc, requests.Timeout):
        seen: set[int] = set()
        todo: list[BaseException] = [exc]
        while todo:  # requests -> urllib3's MaxRetryError -> NewConnectionError -> the OSError
            current = todo.pop(0)
            if id(current) in seen:
                continue
            seen.add(id(current))
            if isinstance(current, OSError):
                # "Connection refused", "Name or service not known", or http.client's
                # "Remote end closed connection without response": none holds the URL.
                told = current.strerror or (str(current) if type(current).__module__ == "http.client" else "")
                if told:
                    reason = told
                    break
            linked = [*current.args, getattr(current, "reason", None), current.__cause__, current.__context__]
            todo.extend(e for e in linked if isinstance(e, BaseException))
    url = exc.request.url if exc.request is not None else None
    host = urlsplit(url).netloc.rpartition("@")[2] if isinstance(url, str) else ""
    return f"{host}: {reason}" if host else reason


def _header_retry_after(headers: Any) -> int | None:
    try:
        return int(headers["Retry-After"]) if headers and "Retry-After" in headers else None
    except (TypeError, ValueError):
        return None


class BotGateway:
    """The Bot API as payments need it. ``bot`` is a ``telebot.TeleBot``."""

    def __init__(self, bot: TeleBot) -> None:
        self.bot = bot

    @staticmethod
    def _invoice(pack: Pack, language: str | None) -> dict[str, Any]:
        """What every Stars invoice carries: XTR, exactly one price, no provider token; its
        texts in the buyer's ``language``."""
        title = pack.title_in(language)
        return {
            "title": title,
            "description": pack.description_in(language),
            "provider_token": None,  # telebot then omits it, as Telegram asks for XTR
            "currency": XTR,
            # XTR amounts are whole Stars: 10 Stars is amount=10, never 1000.
            "prices": [types.LabeledPrice(label=title, amount=pack.stars)],  # type: ignore[no-untyped-call]
            "photo_url": pack.photo_url,
        }

    def create_invoice_link(self, order: Order, pack: Pack, language: str | None = None) -> str:
        """createInvoiceLink for ``order`` (subscriptions get Telegram's only period, 30 days),
        titled in the buyer's ``language`` (Telegram's ``language_code``; None: English)."""
        period = SUBSCRIPTION_PERIOD if pack.subscription else None
        return _call(
            "createInvoiceLink",
            lambda: self.bot.create_invoice_link(
                payload=order.payload, subscription_period=period, **self._invoice(pack, language)
            ),
        )

    def send_invoice(
        self, chat_id: int, order: Order, pack: Pack, language: str | None = None
    ) -> types.Message:
        """sendInvoice in the chat for ``order`` (one-time packs only: Telegram's rule), in the
        buyer's ``language``."""
        invoice = self._invoice(pack, language)
        return _call(
            "sendInvoice",
            lambda: self.bot.send_invoice(chat_id, invoice_payload=order.payload, **invoice),
        )

    def answer_pre_checkout(self, query_id: str, ok: bool, error_message: str | None = None) -> bool:
        return _call(
            "answerPreCheckoutQuery",
            lambda: self.bot.answer_pre_checkout_query(query_id, ok, error_message=error_message),
        )

    def refund(self, user_id: int, charge_id: str) -> bool:
        return _call("refundStarPayment", lambda: self.bot.refund_star_payment(user_id, charge_id))

    def edit_subscription(self, user_id: int, charge_id: str, is_canceled: bool) -> bool:
        return _call(
            "editUserStarSubscription",
            lambda: self.bot.edit_user_star_subscription(user_id, charge_id, is_canceled),
        )

    def star_transactions(self, offset: int, limit: int = 100) -> list[dict[str, Any]]:
        """One page of getStarTransactions, oldest first, as plain dicts."""
        params: dict[str, Any] = {"limit": limit}
        if offset:
            params["offset"] = offset
        result = _call(
            "getStarTransactions",
            lambda: apihelper._make_request(  # type: ignore[no-untyped-call]
                self.bot.token, "getStarTransactions", params=params
            ),
        )
        return list(result.get("transactions") or [])

    def star_balance(self) -> int:
        return _call("getMyStarBalance", self.bot.get_my_star_balance).amount

    def send_message(self, chat_id: int, text: str, reply_markup: Any = None) -> types.Message:
        return _call("sendMessage", lambda: self.bot.send_message(chat_id, text, reply_markup=reply_markup))

    def set_webhook(
        self, url: str, secret: str, allowed_updates: Iterable[str], max_connections: int | None = None
    ) -> bool:
        return _call(
            "setWebhook",
            lambda: self.bot.set_webhook(
                url=url,
                secret_token=secret,
                allowed_updates=list(allowed_updates),
                max_connections=max_connections,
            ),
        )

    def delete_webhook(self, drop_pending_updates: bool = False) -> bool:
        return _call(
            "deleteWebhook",
            lambda: self.bot.delete_webhook(drop_pending_updates=drop_pending_updates or None),
        )

    def webhook_info(self) -> dict[str, Any]:
        info = _call("getWebhookInfo", self.bot.get_webhook_info)
        return {k: v for k, v in vars(info).items() if v is not None and not k.startswith("_")}
