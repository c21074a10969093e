"""What the sandbox keeps on an app it plays Telegram for: ``app.extensions["stars_sandbox"]``.

The production state (``StarsState``) holds no sandbox hook; it only knows that the app is
a sandbox run (``StarsState.sandbox_run``, which the one-database-one-bot check reads).
Everything else the sandbox pages need is in the ``SandboxRun`` that ``attach_sandbox`` puts
here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask

from ..initdata import new_ed25519_key
from .emulator import Sandbox

__all__ = ["EXTENSION_KEY", "SandboxRun", "sandbox_run_of"]

#: Where the attached sandbox is kept: ``app.extensions[EXTENSION_KEY]``.
EXTENSION_KEY = "stars_sandbox"


@dataclass
class SandboxRun:
    """What the pages of one app need: its attached sandbox, the Mini App's URL, and the
    Ed25519 key that signs initData's third-party ``signature`` in place of Telegram's."""

    sandbox: Sandbox
    mini_app_url: str = "/"
    init_data_key: Ed25519PrivateKey = field(default_factory=new_ed25519_key)


def sandbox_run_of(app: Flask) -> SandboxRun | None:
    """The ``SandboxRun`` attached to ``app``, or None (the pages then answer 404).

    :param app: the Flask app.
    """
    run: SandboxRun | None = app.extensions.get(EXTENSION_KEY)
    return run
