"""Who may see the dashboard, and the CSRF token of its forms.

Access is the host's: registering the blueprint without an access check fails. The check
is either a callable returning bool (``access=lambda: current_user.is_admin``, as
Flask-Admin's ``is_accessible``) or a view decorator (``decorator=login_required``, as
Flask-Login's), or both. It runs before every dashboard request, static files included;
"no" is a 403 that renders no data, and a decorator may answer instead (a redirect to the
host's login page).

CSRF: with Flask-WTF's ``CSRFProtect`` on the app its token is used and checked
(``csrf_token`` field); otherwise a token of the dashboard's own, kept in the host's
signed session and compared in constant time.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask, abort, current_app, request, session

from ..audit import DASHBOARD, Actor
from ..errors import StarsConfigError
from .texts import LanguageChoice

log = logging.getLogger(__name__)

EXTENSION_KEY = "stars_dashboard"
SESSION_KEY = "_stars_dashboard_csrf"
FIELD = "csrf_token"

AccessCheck = Callable[[], bool]
ActorName = Callable[[], Any]
ViewDecorator = Callable[[Callable[..., Any]], Callable[..., Any]]


class CSRFError(Exception):
    """A dashboard POST without the right CSRF token (answered 400; nothing changes)."""


@dataclass(frozen=True)
class DashboardOptions:
    """What the host gave when it registered the dashboard on an app."""

    #: ``access()`` True lets the request in (the host's check of its operators).
    access: AccessCheck | None
    #: A view decorator of the host's own authentication (``login_required``).
    decorator: ViewDecorator | None
    #: The pages' language: ``"en"``, ``"ru"``, a callable giving one, or None (the browser's).
    language: LanguageChoice
    #: Who is at the dashboard, for the audit trail (``lambda: current_user.email``); None
    #: records "dashboard".
    actor: ActorName | None = None
    #: Where the header's "Sign out" posts: the host's log-out endpoint (``"logout"``) or
    #: path (``"/logout"``); None shows no such button.
    sign_out: str | None = None

    @classmethod
    def from_registration(cls, options: dict[str, Any]) -> DashboardOptions:
        access = options.get("access")
        decorator = options.get("decorator")
        if access is None and decorator is None:
            raise StarsConfigError(
                "the Stars dashboard needs an access check: register it with "
                "app.register_blueprint(dashboard_bp, url_prefix='/admin', access=is_admin) "
                "(a callable returning True for your operators) or decorator=login_required "
                "(a view decorator of your own authentication); it never serves without one"
            )
        actor = options.get("actor")
        for name, value in (("access", access), ("decorator", decorator), ("actor", actor)):
            if value is not None and not callable(value):
                raise StarsConfigError(f"the dashboard's {name}= must be callable, not {value!r}")
        sign_out = options.get("sign_out")
        if sign_out is not None and (not isinstance(sign_out, str) or not sign_out):
            raise StarsConfigError(
                f"the dashboard's sign_out= must be an endpoint or a path, not {sign_out!r}"
            )
        return cls(
            access=access,
            decorator=decorator,
            language=options.get("language"),
            actor=actor,
            sign_out=sign_out,
        )


def options(app: Flask | None = None) -> DashboardOptions:
    """The dashboard's options on ``app`` (the current app by default)."""
    found: DashboardOptions = (app or current_app).extensions[EXTENSION_KEY]
    return found


def current_actor() -> Actor:
    """Who is acting at the dashboard now, for the audit trail: the host's ``actor=`` callable's
    answer (``"dashboard"`` without one, or when it answers nothing or fails)."""
    getter = options().actor
    name: Any = None
    if getter is not None:
        try:
            name = getter()
        except Exception:
            log.exception("the dashboard's actor= callable failed; recording the action as 'dashboard'")
    return Actor(str(name) if name not in (None, "") else "dashboard", DASHBOARD)


def check_access() -> Any:
    """Before every dashboard request: the host's decorator, then its check (403 on "no").

    Returns what the decorator answered instead of the view (a redirect to a login page),
    or None to go on.
    """
    opts = options()
    if opts.decorator is not None:
        answer = opts.decorator(_allowed)()
        if answer is not _ALLOWED:
            return answer if answer is not None else abort(403)
    if opts.access is not None and opts.access() is not True:
        abort(403)
    return None


_ALLOWED = object()


def _allowed() -> Any:
    return _ALLOWED


# --- CSRF --------------------------------------------------------------------------------


def _flask_wtf() -> Any:
    """The app's Flask-WTF ``CSRFProtect``, if it has one."""
    csrf = current_app.extensions.get("csrf")
    return csrf if csrf is not None and hasattr(csrf, "protect") else None


def csrf_token() -> str:
    """The token to put in the dashboard's forms (Flask-WTF's when it is on the app)."""
    if _flask_wtf() is not None:
        from flask_wtf.csrf import generate_csrf

        return str(generate_csrf())
    _need_secret_key()
    kept = session.get(SESSION_KEY)
    if isinstance(kept, str) and len(kept) >= 32:
        return kept
    token = secrets.token_urlsafe(32)
    session[SESSION_KEY] = token
    return token


def check_csrf() -> None:
    """On a dashboard POST: raise ``CSRFError`` unless the form carries this session's token."""
    csrf = _flask_wtf()
    if csrf is not None:
        try:
            csrf.protect()
        except Exception as exc:  # flask_wtf.csrf.CSRFError (a 400 of its own)
            raise CSRFError(str(exc)) from None
        return
    _need_secret_key()
    expected = session.get(SESSION_KEY)
    given = request.form.get(FIELD, "")
    if (
        not isinstance(expected, str)
        or not expected
        or not hmac.compare_digest(expected.encode(), given.encode())
    ):
        raise CSRFError("the CSRF token is missing or wrong")


def _need_secret_key() -> None:
    if not current_app.secret_key:
        raise StarsConfigError(
            "the Stars dashboard keeps its CSRF token in the session: set app.secret_key "
            "(SECRET_KEY), or install Flask-WTF's CSRFProtect on the app"
        )
