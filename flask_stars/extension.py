"""``FlaskStars``: the extension object, and the per-app state it keeps in ``app.extensions``."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from flask import Flask, current_app

from .botapi import BotGateway, configure_transport
from .config import CONFIG_KEYS, Settings, read_settings, resolve_callable
from .db import StarsDatabase
from .errors import MissingCallbackError, NotInitialisedError, StarsConfigError
from .packs import Catalogue, Pack
from .ratelimit import InvoiceRateLimit
from .spool import Spool

if TYPE_CHECKING:
    from blinker import NamedSignal
    from sqlalchemy.orm import Session
    from telebot import TeleBot

    from .models import Payment, Subscription
    from .reconcile import ReconcileReport

log = logging.getLogger("flask_stars")
EXTENSION_KEY = "stars"
F = TypeVar("F", bound=Callable[..., Any])


class StarsState:
    """What flask_stars knows about one app: settings, catalogue, bot, database, callbacks.

    Kept in ``app.extensions["stars"]``; get it with ``get_state(app)``.
    """

    def __init__(
        self,
        app: Flask,
        extension: FlaskStars,
        settings: Settings,
        packs: Catalogue,
        bot: TeleBot,
        database: StarsDatabase,
        *,
        owns_bot: bool,
    ) -> None:
        self.app = app
        self.extension = extension
        self.settings = settings
        self.packs = packs
        self.bot = bot
        self.owns_bot = owns_bot
        self.gateway = BotGateway(bot)
        self.database = database
        self.invoice_limit = InvoiceRateLimit(settings.invoice_rate_limit, settings.rate_limit_storage)
        self.spool = Spool(settings.spool_dir or os.path.join(app.instance_path, "stars-spool"))
        self.blueprint_registered = False
        self.url_prefix = ""
        self._resolved: dict[str, tuple[Any, Any]] = {}  # config value -> its callable
        # Set only by attach_sandbox() in a process that runs the emulator; it turns on
        # the /stars/sandbox/ pages, which 404 everywhere else.
        self.sandbox: Any = None
        self.sandbox_mini_app_url = "/"

    @property
    def session(self) -> Session:
        """The SQLAlchemy session flask_stars reads and writes with (the host's, if any)."""
        return self.database.session

    def _configured(self, key: str) -> Callable[..., Any] | None:
        value = self.app.config.get(key)
        cached = self._resolved.get(key)
        if cached is None or cached[0] is not value:
            cached = (value, resolve_callable(value, key))
            self._resolved[key] = cached
        return cached[1]

    def credit_callback(self) -> Callable[[Payment], Any]:
        callback = self.extension._credit or self._configured("STARS_CREDIT_CALLBACK")
        if callback is None:
            raise MissingCallbackError(
                "flask_stars has no credit callback: set STARS_CREDIT_CALLBACK or decorate a "
                "function with @stars.credit; payments are not credited until you do "
                "(Telegram redelivers them meanwhile)"
            )
        return callback

    def debit_callback(self) -> Callable[[Payment], Any] | None:
        return self.extension._debit or self._configured("STARS_DEBIT_CALLBACK")

    def credit(self, payment: Payment) -> None:
        self.credit_callback()(payment)

    def debit(self, payment: Payment) -> None:
        callback = self.debit_callback()
        if callback is not None:
            callback(payment)

    def send(self, signal: NamedSignal, **kwargs: Any) -> None:
        """Send a signal; a receiver's error is logged and never undoes a payment."""
        try:
            signal.send(self.app, **kwargs)
        except Exception:
            log.exception("flask_stars: a receiver of %s failed", signal.name)


def get_state(app: Flask | None = None) -> StarsState:
    """The ``StarsState`` of ``app`` (the current app by default)."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    state = app.extensions.get(EXTENSION_KEY)
    if state is None:
        raise NotInitialisedError(
            "flask_stars is not initialised on this app: call FlaskStars(app) or "
            "app.register_blueprint(stars_bp)"
        )
    return state


class FlaskStars:
    """The flask_stars extension.

    ``FlaskStars(app, db=db, bot=bot)`` or ``stars = FlaskStars(); stars.init_app(app)``.
    Keyword options override config (``None`` means "use config"). ``init_app`` registers
    ``stars_bp`` itself; ``url_prefix`` moves it from ``/stars``.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        db: Any = None,
        bot: TeleBot | None = None,
        packs: Iterable[Pack | Mapping[str, Any]] | None = None,
        url_prefix: str | None = None,
    ) -> None:
        self._db = db
        self._bot = bot
        self._packs = packs
        self._url_prefix = url_prefix
        self._credit: Callable[[Payment], Any] | None = None
        self._debit: Callable[[Payment], Any] | None = None
        if app is not None:
            self.init_app(app)

    # --- set-up -------------------------------------------------------------------------

    def init_app(
        self,
        app: Flask,
        *,
        db: Any = None,
        bot: TeleBot | None = None,
        packs: Iterable[Pack | Mapping[str, Any]] | None = None,
        url_prefix: str | None = None,
    ) -> None:
        """Check the config, keep the state in ``app.extensions["stars"]``, mount ``stars_bp``."""
        from .blueprint import stars_bp

        if EXTENSION_KEY in app.extensions:
            raise StarsConfigError("flask_stars is already initialised on this app")
        self.setup_state(app, db=db, bot=bot, packs=packs, require_callback=False)
        prefix = url_prefix or self._url_prefix
        app.register_blueprint(stars_bp, **({"url_prefix": prefix} if prefix else {}))

    def setup_state(
        self,
        app: Flask,
        *,
        db: Any = None,
        bot: TeleBot | None = None,
        packs: Iterable[Pack | Mapping[str, Any]] | None = None,
        require_callback: bool,
    ) -> StarsState:
        """Build and store the app's state (called by ``init_app`` and by ``stars_bp``)."""
        for key, (default, _meaning) in CONFIG_KEYS.items():
            app.config.setdefault(key, default)
        bot = bot or self._bot
        settings = read_settings(app.config, bot.token if bot is not None else None)
        catalogue = Catalogue(packs or self._packs or app.config["STARS_PACKS"])
        for key in ("STARS_CREDIT_CALLBACK", "STARS_DEBIT_CALLBACK"):
            resolve_callable(app.config.get(key), key)  # fail now on a typo, not at payment time
        if require_callback and self._credit is None and app.config.get("STARS_CREDIT_CALLBACK") is None:
            raise MissingCallbackError(
                "STARS_CREDIT_CALLBACK is not set: give a callable or 'module:attr' that "
                "credits payment.user_id with payment.pack.credits"
            )
        configure_transport(settings.api_url, settings.api_timeout)
        owns_bot = bot is None
        if bot is None:
            from telebot import TeleBot

            # Our own bot handles updates synchronously, inside the webhook request.
            bot = TeleBot(settings.bot_token, threaded=False)
        state = StarsState(
            app,
            self,
            settings,
            catalogue,
            bot,
            StarsDatabase(app, settings, db or self._db),
            owns_bot=owns_bot,
        )
        app.extensions[EXTENSION_KEY] = state
        app.teardown_appcontext(state.database.remove)
        if settings.buy_command:
            from .handlers import register_buy_command

            register_buy_command(bot, app)
        return state

    # --- callbacks ----------------------------------------------------------------------

    def credit(self, fn: F) -> F:
        """Decorator: the callback that credits a paid order, exactly once per payment.

        It gets the ledger row (``payment.user_id``, ``payment.pack.credits``), runs inside
        the payment's transaction and must not commit; if it raises, nothing is kept and
        Telegram redelivers the payment.
        """
        self._credit = fn
        return fn

    def debit(self, fn: F) -> F:
        """Decorator: the callback run once, in the refund's transaction, when a payment is refunded."""
        self._debit = fn
        return fn

    # --- operations (in an app context) --------------------------------------------------

    def refund(self, charge_id: str, reason: str | None = None) -> Payment:
        """Refund a payment through Telegram and the ledger (debit callback once).

        ``CHARGE_ALREADY_REFUNDED`` from Telegram still ends with the ledger refunded.
        """
        from .payments import refund

        return refund(get_state(), charge_id, reason)

    def reconcile(self, *, dry_run: bool = False, full: bool = False) -> ReconcileReport:
        """Read new Stars transactions from Telegram and mend the ledger (see ``flask stars reconcile``)."""
        from .reconcile import reconcile

        return reconcile(get_state(), dry_run=dry_run, full=full)

    def cancel_subscription(self, subscription_id: int, *, cancel: bool = True) -> Subscription:
        """Stop (``cancel=True``) or resume renewing a subscription (editUserStarSubscription)."""
        from .subscriptions import get_subscription, set_canceled

        state = get_state()
        return set_canceled(state, get_subscription(state, subscription_id), cancel)

    # --- helpers for host code ---------------------------------------------------------

    def state(self, app: Flask | None = None) -> StarsState:
        """This extension's state on ``app`` (the current app by default)."""
        return get_state(app)

    @property
    def session(self) -> Session:
        """The session flask_stars uses on the current app (the host's ``db.session`` if any)."""
        return get_state().session

    def register_handlers(self, bot: TeleBot, app: Flask | None = None) -> None:
        """Wire flask_stars' payment handlers into a polling ``bot`` (webhook apps need not).

        Each handler runs in an app context of ``app`` and handles the payment before it
        returns, whatever the bot's threading mode.
        """
        from flask import has_app_context

        from .handlers import register_handlers

        if app is None:
            if not has_app_context():
                raise NotInitialisedError(
                    "call stars.register_handlers(bot, app) or call it inside app.app_context()"
                )
            app = current_app._get_current_object()  # type: ignore[attr-defined]
        register_handlers(bot, app)
