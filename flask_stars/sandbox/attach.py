"""Wiring a sandbox to an app: the app plays the sandbox's bot, the pages are registered.

``use_sandbox_token`` makes an app speak for the sandbox's bot (``flask stars sandbox``
calls it first); ``attach_sandbox`` points the sandbox's webhook at the app, registers the
``/stars/sandbox/`` pages and keeps a ``SandboxRun`` in ``app.extensions["stars_sandbox"]``.
Both only set what ``StarsState`` exposes to everyone (settings, bot, gateway,
``sandbox_run``); the production state carries no sandbox code.
"""

from __future__ import annotations

from dataclasses import replace

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask

from ..botapi import BotGateway
from ..config import check_public_key, default_webhook_secret
from ..initdata import ed25519_public_key_hex, new_ed25519_key
from ..state import StarsState, get_state
from .emulator import Sandbox
from .run import EXTENSION_KEY, SandboxRun
from .web import sandbox_bp

__all__ = ["attach_sandbox", "use_sandbox_token"]


def use_sandbox_token(app: Flask, token: str, *, init_data_public_key: str) -> None:
    """Make ``app`` a sandbox run's bot: everything that depends on the token uses ``token``.

    ``flask stars sandbox`` calls it with the sandbox's own token and the public half of
    the Ed25519 key it made for the run, so that nothing the sandbox signs (initData from
    ``/stars/sandbox/init-data``) is valid for the real bot, whatever ``STARS_BOT_TOKEN``
    holds. It switches the bot (the host's own TeleBot too: in a sandbox run its calls go
    to the sandbox, which knows only its own token) and the gateway, the webhook secret
    (derived from ``token``; a configured one belongs to the real bot) and what the
    initData check trusts, in the app's own mode: HMAC with ``token``, or in ``ed25519``
    mode ``init_data_public_key`` (set as ``STARS_INIT_DATA_PUBLIC_KEY`` and checked like
    it) in place of Telegram's key. Telegram's key never signs for the sandbox's bot id,
    and the run's key is worthless anywhere else. The app is then a sandbox run
    (``StarsState.sandbox_run``): its tables must belong to the sandbox's bot, checked on
    the next use.

    :param app: the app, with flask_stars set up.
    :param token: the sandbox's bot token (no real bot's).
    :param init_data_public_key: the hex public key of the run's own Ed25519 key pair.
    """
    from telebot import util

    state = get_state(app)
    key = check_public_key(init_data_public_key)
    if key is None:
        raise ValueError("a sandbox run needs the public key of its own Ed25519 key pair")
    state.settings = replace(
        state.settings,
        bot_token=token,
        webhook_secrets=(default_webhook_secret(token),),
        init_data_public_key=key,
    )
    app.config["STARS_INIT_DATA_PUBLIC_KEY"] = key
    state.bot.token = token
    state.bot.bot_id = util.extract_bot_id(token)
    state.bot._user = None  # telebot's cached getMe of the other bot
    state.gateway = BotGateway(state.bot)
    state.sandbox_run = True
    state.database.check_again()  # another bot id: the tables' binding is checked again


def attach_sandbox(
    app: Flask,
    sandbox: Sandbox,
    base_url: str,
    *,
    mini_app_url: str = "/",
    init_data_key: Ed25519PrivateKey | None = None,
) -> str:
    """Wire a running sandbox to ``app`` served at ``base_url``; returns the sandbox page URL.

    The sandbox's webhook points at the app's ``/stars/webhook`` with the app's secret, the
    app's Bot API calls go to the sandbox (``STARS_API_URL`` must be its URL, and the sandbox
    must be made for the app's own token, which must be no real bot's), and the
    sandbox pages are registered below the stars blueprint (``/stars/sandbox/``). Call it
    before the app serves its first request (Flask registers no blueprint after that);
    attaching again later only swaps the sandbox, the Mini App URL and the key.

    The page's initData carries the HMAC ``hash`` and an Ed25519 ``signature`` made with
    ``init_data_key`` (a fresh key when None). An app in ``ed25519`` mode must trust that
    key: ``STARS_INIT_DATA_PUBLIC_KEY = ed25519_public_key_hex(init_data_key)``
    (``flask stars sandbox`` sets it for its run), or attaching fails, as it would for
    Telegram's key, which the sandbox cannot sign with.

    The app becomes a sandbox run (``StarsState.sandbox_run``): its tables must belong to
    the sandbox's bot (``flask_stars.binding``), which the next use of them checks.

    :param app: the app, with flask_stars set up.
    :param sandbox: a started sandbox made with the app's own token.
    :param base_url: where the app is served (``http://127.0.0.1:5000``).
    :param mini_app_url: the Mini App page's path, shown in the sandbox page's iframe.
    :param init_data_key: the Ed25519 key that signs initData's ``signature``.
    """
    state = get_state(app)
    key = init_data_key if init_data_key is not None else new_ed25519_key()
    _check_attachable(state, sandbox, ed25519_public_key_hex(key))
    state.sandbox_run = True
    prefix = state.url_prefix.rstrip("/")
    if sandbox_bp.name not in app.blueprints:
        app.register_blueprint(sandbox_bp, url_prefix=prefix + "/sandbox")
        csrf = app.extensions.get("csrf")
        if csrf is not None and hasattr(csrf, "exempt"):
            csrf.exempt(sandbox_bp)  # the page's requests carry no CSRF token
    app.extensions[EXTENSION_KEY] = SandboxRun(sandbox, mini_app_url, key)
    sandbox.set_webhook_target(base_url.rstrip("/") + prefix + "/webhook", state.settings.webhook_secrets[0])
    return base_url.rstrip("/") + prefix + "/sandbox/"


def _check_attachable(state: StarsState, sandbox: Sandbox, public_key: str) -> None:
    """``RuntimeError`` unless the app calls this sandbox, as its own bot, with a key it trusts."""
    if state.settings.api_url != sandbox.url:
        raise RuntimeError(f"STARS_API_URL must be the sandbox's URL ({sandbox.url}) to attach it")
    if sandbox.token is None or sandbox.token != state.settings.bot_token:
        # The page signs initData with the app's token: a sandbox made for another bot (or
        # for any) must not turn a real bot's token into initData for any user.
        raise RuntimeError(
            "attach_sandbox needs a sandbox that plays the app's own bot: Sandbox(token=...) with "
            "the app's STARS_BOT_TOKEN, which must be a token no real bot has (SANDBOX_TOKEN, "
            "flask_stars.testing.TEST_TOKEN, or one of your tests' own)"
        )
    if state.settings.init_data_validation == "ed25519" and state.settings.init_data_public_key != public_key:
        raise RuntimeError(
            "the app checks initData in ed25519 mode with the key "
            f"{state.settings.init_data_public_key}, which the sandbox cannot sign with: give "
            "attach_sandbox(init_data_key=KEY) and STARS_INIT_DATA_PUBLIC_KEY = "
            "ed25519_public_key_hex(KEY) (flask_stars.initdata), as flask stars sandbox does"
        )
