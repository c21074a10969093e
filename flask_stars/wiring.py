"""Setting flask_stars up on an app: check the config, build the state, wire the bot.

Both ways in call ``setup_app``: ``FlaskStars.init_app`` and, when the blueprint is
mounted on its own, ``mount_blueprint`` (``stars_bp``'s registration hook), which also adds
the ``flask stars`` commands.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from flask import Flask
from flask.sansio.blueprints import BlueprintSetupState
from telebot import TeleBot

from . import binding
from .botapi import configure_transport
from .chat import register_buy_command
from .cli import register_cli
from .config import CONFIG_KEYS, read_settings, resolve_callable
from .db import StarsDatabase
from .errors import MissingCallbackError, StarsConfigError
from .metrics import StarsMetrics
from .packs import Catalogue, Pack
from .state import EXTENSION_KEY, Callbacks, StarsState

if TYPE_CHECKING:
    from flask_sqlalchemy import SQLAlchemy


def setup_app(
    app: Flask,
    *,
    callbacks: Callbacks | None = None,
    db: SQLAlchemy | None = None,
    bot: TeleBot | None = None,
    packs: Iterable[Pack | Mapping[str, Any]] | None = None,
    require_callback: bool,
) -> StarsState:
    """Check the ``STARS_*`` config and keep the app's state in ``app.extensions["stars"]``.

    ``require_callback``: the credit callback must be in the config now (the blueprint
    mounted on its own has no decorator that could still come).
    """
    if EXTENSION_KEY in app.extensions:
        raise StarsConfigError("flask_stars is already initialised on this app")
    callbacks = callbacks or Callbacks()
    for key, (default, _meaning) in CONFIG_KEYS.items():
        app.config.setdefault(key, default)
    settings = read_settings(app.config, bot.token if bot is not None else None)
    catalogue = Catalogue(packs or app.config["STARS_PACKS"])
    for key in ("STARS_CREDIT_CALLBACK", "STARS_DEBIT_CALLBACK"):
        resolve_callable(app.config.get(key), key)  # fail now on a typo, not at payment time
    if require_callback and callbacks.credit is None and app.config.get("STARS_CREDIT_CALLBACK") is None:
        raise MissingCallbackError(
            "STARS_CREDIT_CALLBACK is not set: give a callable or 'module:attr' that "
            "credits payment.user_id with payment.pack.credits"
        )
    configure_transport(settings.api_url, settings.api_timeout, settings.test_environment)
    owns_bot = bot is None
    if bot is None:
        # Our own bot handles updates synchronously, inside the webhook request.
        bot = TeleBot(settings.bot_token, threaded=False)
    state = StarsState(
        app, callbacks, settings, catalogue, bot, StarsDatabase(app, settings, db), owns_bot=owns_bot
    )
    if settings.metrics:
        state.metrics = StarsMetrics(state)  # fails here if prometheus_client is missing
    app.extensions[EXTENSION_KEY] = state
    app.teardown_appcontext(state.database.remove)
    binding.watch(state)  # one database, one bot: checked on the tables' first use
    if settings.buy_command:
        register_buy_command(bot, app)
    return state


def mount_blueprint(setup: BlueprintSetupState) -> None:
    """``stars_bp``'s registration hook: set the app up unless ``FlaskStars`` did, keep the
    mount point, exempt the blueprint from CSRF and add the ``flask stars`` commands.

    It runs before Flask looks at the blueprint's command group, so ``flask stars`` exists
    whichever way the app mounted it (``FlaskStars(app)`` or ``register_blueprint``).
    """
    app = setup.app
    assert isinstance(app, Flask)
    state: StarsState | None = app.extensions.get(EXTENSION_KEY)
    if state is None:
        # Mounted on its own (no FlaskStars object, so no decorator can come later):
        # everything, the credit callback included, must be in the config now.
        state = setup_app(app, require_callback=True)
    if state.blueprint_registered:
        raise StarsConfigError("stars_bp is already registered on this app; register it once")
    state.blueprint_registered = True
    state.url_prefix = setup.url_prefix or ""
    csrf = app.extensions.get("csrf")
    if csrf is not None and hasattr(csrf, "exempt"):
        csrf.exempt(setup.blueprint)  # Telegram and initData-signed requests carry no CSRF token
    register_cli(setup.blueprint.cli)
