"""Per-app state at the bottom: what flask_stars knows about one app.

``StarsState`` is kept in ``app.extensions["stars"]`` and every other module reaches it
through ``get_state()`` (as Flask-Login's helpers reach the manager through
``current_app``), so nothing here imports the extension, the blueprint or the money path.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar

from flask import Flask, current_app

from . import messages
from .botapi import BotGateway, configure_transport
from .config import Settings, resolve_callable
from .db import StarsDatabase
from .errors import HostCallbackFailed, MissingCallbackError, NotInitialisedError
from .packs import Catalogue
from .ratelimit import UserRateLimit
from .spool import Spool
from .waits import WaitGate

if TYPE_CHECKING:
    from blinker import NamedSignal
    from sqlalchemy.orm import Session
    from telebot import TeleBot

    from .models import Payment

log = logging.getLogger(__name__)

EXTENSION_KEY = "stars"
PaymentCallback = Callable[["Payment"], Any]
F = TypeVar("F", bound=Callable[..., Any])


class Callbacks:
    """The host's credit and debit callbacks: decorated ones first, then the config's.

    ``FlaskStars`` owns one; an app set up by ``stars_bp`` alone gets an empty one and
    reads ``STARS_CREDIT_CALLBACK``/``STARS_DEBIT_CALLBACK``.
    """

    def __init__(self) -> None:
        self.credit: PaymentCallback | None = None
        self.debit: PaymentCallback | None = None


class StarsState:
    """What flask_stars knows about one app: settings, catalogue, bot, database, callbacks.

    Kept in ``app.extensions["stars"]``; get it with ``get_state(app)``. Made by the set-up
    code (``FlaskStars.init_app`` or mounting ``stars_bp``), not by the host.

    :param app: the Flask app it belongs to.
    :param callbacks: the credit and debit callbacks set by decorator.
    :param settings: the ``STARS_*`` config, read and checked.
    :param packs: the catalogue.
    :param bot: the ``telebot.TeleBot`` that talks to the Bot API.
    :param database: the session and engine flask_stars uses.
    :param owns_bot: whether flask_stars made ``bot`` (and may set its handlers).
    """

    def __init__(
        self,
        app: Flask,
        callbacks: Callbacks,
        settings: Settings,
        packs: Catalogue,
        bot: TeleBot,
        database: StarsDatabase,
        *,
        owns_bot: bool,
    ) -> None:
        self.app = app
        self.callbacks = callbacks
        self.settings = settings
        self.packs = packs
        self.bot = bot
        self.owns_bot = owns_bot
        self.gateway = BotGateway(bot)
        self.database = database
        self.invoice_limit = UserRateLimit(
            settings.invoice_rate_limit, settings.rate_limit_storage, "STARS_INVOICE_RATE_LIMIT"
        )
        # Its own count ("flask_stars:subscription:<user>"), so cancelling never blocks buying.
        self.subscription_limit = UserRateLimit(
            settings.subscription_rate_limit, settings.rate_limit_storage, "STARS_SUBSCRIPTION_RATE_LIMIT"
        )
        self.order_waits = WaitGate(settings.order_waits_per_user, settings.order_waits_max)
        self.spool = Spool(settings.spool_dir or os.path.join(app.instance_path, "stars-spool"))
        # ``flask_stars.metrics.StarsMetrics`` when STARS_METRICS is on; typed loosely because
        # the state sits below the modules that count.
        self.metrics: Any = None
        self.blueprint_registered = False
        self.url_prefix = ""
        self._sandbox_run = False
        self._resolved: dict[str, tuple[Any, PaymentCallback | None]] = {}  # config value -> callable

    @property
    def sandbox_run(self) -> bool:
        """True once a sandbox plays Telegram for this app (set by ``flask_stars.sandbox``'s
        ``use_sandbox_token`` and ``attach_sandbox``, and by ``flask_stars.testing.connect``):
        its bot is then a sandbox bot. A plain flag: the sandbox keeps everything else it
        needs in its own ``app.extensions["stars_sandbox"]``.

        Setting it changes ``bot_identity``, so the tables' binding is checked again on the
        next use (``flask_stars.binding``).
        """
        return self._sandbox_run

    @sandbox_run.setter
    def sandbox_run(self, value: bool) -> None:
        if value != self._sandbox_run:
            self._sandbox_run = value
            self.database.check_again()

    @property
    def bot_identity(self) -> BotIdentity:
        """The bot and environment this app speaks for now (``BotIdentity``)."""
        head = self.settings.bot_token.split(":", 1)[0]
        bot_id = int(head) if head.isascii() and head.isdigit() else 0
        if self.sandbox_run:
            environment = "sandbox"
        else:
            environment = "test" if self.settings.test_environment else "production"
        return BotIdentity(bot_id, environment)

    @property
    def session(self) -> Session:
        """The SQLAlchemy session flask_stars reads and writes with (the host's, if any)."""
        return self.database.session

    def use_api_url(self, api_url: str) -> None:
        """Send this process's Bot API calls to ``api_url`` (a local Bot API server, or the sandbox).

        ``STARS_TEST_ENVIRONMENT`` still holds: with it on, calls go to
        ``<api_url>/bot<token>/test/<method>``, as they would at Telegram's.
        """
        self.settings = replace(self.settings, api_url=api_url)
        configure_transport(api_url, self.settings.api_timeout, self.settings.test_environment)

    def _configured(self, key: str) -> PaymentCallback | None:
        value = self.app.config.get(key)
        cached = self._resolved.get(key)
        if cached is None or cached[0] is not value:
            cached = (value, resolve_callable(value, key))
            self._resolved[key] = cached
        return cached[1]

    def credit_callback(self) -> PaymentCallback:
        """The credit callback; ``MissingCallbackError`` when there is none."""
        callback = self.callbacks.credit or self._configured("STARS_CREDIT_CALLBACK")
        if callback is None:
            raise MissingCallbackError(
                "flask_stars has no credit callback: set STARS_CREDIT_CALLBACK or decorate a "
                "function with @stars.credit; payments are not credited until you do "
                "(Telegram redelivers them meanwhile)"
            )
        return callback

    def debit_callback(self) -> PaymentCallback | None:
        """The debit callback, or None when the host has none."""
        return self.callbacks.debit or self._configured("STARS_DEBIT_CALLBACK")

    def credit(self, payment: Payment) -> None:
        """Run the host's credit callback (inside the caller's transaction).

        ``HostCallbackFailed`` when it raises (the callback's error is its ``original``);
        ``MissingCallbackError`` when there is none.

        :param payment: the ledger row being credited.
        """
        _run_host_callback("credit", self.credit_callback(), payment)

    def debit(self, payment: Payment) -> None:
        """Run the host's debit callback, if any (inside the caller's transaction).

        ``HostCallbackFailed`` when it raises (the callback's error is its ``original``).

        :param payment: the ledger row being refunded.
        """
        callback = self.debit_callback()
        if callback is not None:
            _run_host_callback("debit", callback, payment)

    def message(self, key: str, language_code: str | None, **values: object) -> str:
        """A buyer's text (``messages.MESSAGES``) in their language, the host's catalogues first.

        :param key: a key of ``messages.MESSAGES``.
        :param language_code: the buyer's Telegram ``language_code``, or None.
        :param values: the text's placeholders (``seconds=``, ``stars=``).
        """
        return messages.message(key, language_code, self.settings.translations_dir, **values)

    def send(self, signal: NamedSignal, **kwargs: Any) -> None:
        """Send a signal; a receiver's error is logged and never undoes a payment.

        :param signal: one of ``flask_stars.signals``; the app is its sender.
        :param kwargs: the signal's keyword arguments (``payment=``, ``order=``...).
        """
        try:
            signal.send(self.app, **kwargs)
        except Exception:
            log.exception("a receiver of %s failed", signal.name)


def _run_host_callback(which: str, callback: PaymentCallback, payment: Payment) -> None:
    """Call the host's ``which`` callback; whatever it raises comes out as ``HostCallbackFailed``."""
    try:
        callback(payment)
    except Exception as exc:
        module = getattr(callback, "__module__", None)
        name = getattr(callback, "__qualname__", None) or type(callback).__qualname__
        raise HostCallbackFailed(which, exc, name=f"{module}.{name}" if module else name) from exc


@dataclass(frozen=True)
class BotIdentity:
    """Which bot, in which environment, an app speaks for.

    ``bot_id`` is the part of the token before the colon (BotFather's revoke gives the same
    bot a new token with the same id). ``environment`` is ``production`` (Telegram),
    ``test`` (Telegram's test server, ``STARS_TEST_ENVIRONMENT``) or ``sandbox`` (flask_stars'
    sandbox plays Telegram). Telegram keeps the two real environments apart: the same id
    there is another bot with other transactions.
    """

    bot_id: int
    environment: str

    @property
    def key(self) -> str:
        """``"<bot_id>:<environment>"``: how flask_stars names this bot in ``stars_meta``."""
        return f"{self.bot_id}:{self.environment}"

    def __str__(self) -> str:
        return f"bot {self.bot_id} ({self.environment})"


def get_state(app: Flask | None = None) -> StarsState:
    """The ``StarsState`` of ``app`` (the current app by default)."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    state: StarsState | None = app.extensions.get(EXTENSION_KEY)
    if state is None:
        raise NotInitialisedError(
            "flask_stars is not initialised on this app: call FlaskStars(app) or "
            "app.register_blueprint(stars_bp)"
        )
    return state
