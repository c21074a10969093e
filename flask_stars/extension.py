"""``FlaskStars``: the extension object, a thin facade over the state and the operations."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from flask import Flask, current_app, has_app_context

from . import archive, polling, updates
from . import reconcile as reconciliation
from .audit import python_actor
from .blueprint import stars_bp
from .errors import HostCallbackFailed, NotInitialisedError
from .operations.refund import refund
from .operations.subscription import set_canceled
from .packs import Pack
from .state import Callbacks, StarsState, get_state
from .subscriptions import get_subscription
from .wiring import setup_app

if TYPE_CHECKING:
    from flask_sqlalchemy import SQLAlchemy
    from sqlalchemy.orm import Session
    from telebot import TeleBot

    from .models import Payment, Subscription, UpdateLog
    from .reconcile import ReconcileReport
    from .updates import Replayed

F = TypeVar("F", bound=Callable[..., Any])


class FlaskStars:
    """The flask_stars extension.

    ``FlaskStars(app, db=db, bot=bot)`` or ``stars = FlaskStars(); stars.init_app(app)``.
    Keyword options override config (``None`` means "use config"). ``init_app`` registers
    ``stars_bp`` itself; ``url_prefix`` moves it from ``/stars``.

    :param app: the Flask app to set up now; None to call ``init_app`` later (app factory).
    :param db: the host's Flask-SQLAlchemy ``db``; flask_stars then uses its session and
        engine. None: its own engine on ``STARS_DATABASE_URL`` (or an SQLite file).
    :param bot: the host's ``telebot.TeleBot``; None: one made from ``STARS_BOT_TOKEN``.
    :param packs: the catalogue (``Pack`` objects or mappings); None: ``STARS_PACKS``.
    :param url_prefix: where the endpoints are mounted; None: ``/stars``.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        db: SQLAlchemy | None = None,
        bot: TeleBot | None = None,
        packs: Iterable[Pack | Mapping[str, Any]] | None = None,
        url_prefix: str | None = None,
    ) -> None:
        self._db = db
        self._bot = bot
        self._packs = packs
        self._url_prefix = url_prefix
        self.callbacks = Callbacks()
        if app is not None:
            self.init_app(app)

    def init_app(
        self,
        app: Flask,
        *,
        db: SQLAlchemy | None = None,
        bot: TeleBot | None = None,
        packs: Iterable[Pack | Mapping[str, Any]] | None = None,
        url_prefix: str | None = None,
    ) -> None:
        """Check the config, keep the state in ``app.extensions["stars"]``, mount ``stars_bp``.

        :param app: the Flask app.
        :param db: as the constructor's; given here, it wins over the constructor's.
        :param bot: as the constructor's.
        :param packs: as the constructor's.
        :param url_prefix: as the constructor's.
        """
        setup_app(
            app,
            callbacks=self.callbacks,
            db=db or self._db,
            bot=bot or self._bot,
            packs=packs or self._packs,
            require_callback=False,
        )
        prefix = url_prefix or self._url_prefix
        app.register_blueprint(stars_bp, **({"url_prefix": prefix} if prefix else {}))

    # --- callbacks ----------------------------------------------------------------------

    def credit(self, fn: F) -> F:
        """Decorator: the callback that credits a paid order, exactly once per payment.

        It gets the ledger row (``payment.user_id``, ``payment.pack.credits``), runs inside
        the payment's transaction and must not commit; if it raises, nothing is kept and
        Telegram redelivers the payment.

        :param fn: ``fn(payment)``; returned unchanged.
        """
        self.callbacks.credit = fn
        return fn

    def debit(self, fn: F) -> F:
        """Decorator: the callback run once, in the refund's transaction, when a payment is refunded.

        :param fn: ``fn(payment)``, given the refunded payment; returned unchanged.
        """
        self.callbacks.debit = fn
        return fn

    # --- operations (in an app context) --------------------------------------------------

    def refund(self, charge_id: str, reason: str | None = None, actor: str | None = None) -> Payment:
        """Refund a payment through Telegram and the ledger (debit callback once).

        ``CHARGE_ALREADY_REFUNDED`` from Telegram still ends with the ledger refunded. The
        refund is recorded in the audit trail with ``reason`` and ``actor`` (who asked for
        it, e.g. ``current_user.email``; ``"python"`` when None), failed ones included.
        If the debit callback raises, the ledger is unchanged and its own error is raised.

        :param charge_id: the payment's ``telegram_payment_charge_id``.
        :param reason: why, kept in the audit trail and sent with ``payment_refunded``.
        :param actor: who asked, for the audit trail.
        """
        try:
            return refund(get_state(), charge_id, reason, actor=python_actor(actor))
        except HostCallbackFailed as exc:
            raise exc.original from None  # the host's own error, as the host raised it

    def reconcile(
        self, *, dry_run: bool = False, full: bool = False, actor: str | None = None
    ) -> ReconcileReport:
        """Read new Stars transactions from Telegram and mend the ledger (see ``flask stars reconcile``).

        The run is recorded in the audit trail by ``actor`` (``"python"`` when None; e.g. the
        name of your scheduler's job). ``ReconcileBusy`` while another run is under way; the
        report's ``warning`` says when the saved position did not hold (read from the start).

        :param dry_run: report what would change, change nothing, record no run.
        :param full: read every transaction Telegram lists, not only those after the saved
            position.
        :param actor: who ran it, for the audit trail.
        """
        return reconciliation.reconcile(get_state(), dry_run=dry_run, full=full, actor=python_actor(actor))

    def replay(
        self,
        update_ids: Iterable[int] = (),
        *,
        rows: Iterable[int] = (),
        failed: bool = False,
        actor: str | None = None,
    ) -> list[Replayed]:
        """Handle logged payment updates again (see ``flask stars replay``): a ``Replayed`` per
        update, ``ok`` False for one still not applied afterwards. Each is recorded in the
        audit trail by ``actor`` (``"python"`` when None).

        :param update_ids: Telegram's ``update_id`` of each update to handle again.
        :param rows: row ids in ``stars_updates`` (a polling bot's update has no update_id).
        :param failed: every failed update, and the spool.
        :param actor: who asked, for the audit trail.
        """
        return list(updates.replay(get_state(), update_ids, rows=rows, failed=failed, actor=actor))

    def archive_update(self, row_id: int, *, reason: str, actor: str | None = None) -> UpdateLog:
        """Archive the failed update in row ``row_id`` of ``stars_updates`` (see ``flask stars
        archive``): kept, no longer counted as failed; recorded with ``reason`` and ``actor``."""
        return archive.archive_update(get_state(), row_id, reason=reason, actor=actor)

    def cancel_subscription(self, subscription_id: int, *, cancel: bool = True) -> Subscription:
        """Stop (``cancel=True``) or resume renewing a subscription (editUserStarSubscription).

        :param subscription_id: the row id in ``stars_subscriptions``.
        :param cancel: True to stop renewing (access lasts to ``expires_at``), False to renew.
        """
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
        if app is None:
            if not has_app_context():
                raise NotInitialisedError(
                    "call stars.register_handlers(bot, app) or call it inside app.app_context()"
                )
            app = current_app._get_current_object()  # type: ignore[attr-defined]
        polling.register_handlers(bot, app)
