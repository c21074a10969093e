"""The dashboard's blueprint and what its pages share.

Every request: the host's access check first, then the page's language and the security
headers. Errors become pages here: a bad argument, a CSRF failure, a missing row, a
server error, and the host's callback failing in an action (the page its view names with
``shows_failure`` says why). The helpers the page modules use (a keyset bound, a row or
404, the confirmation of a POST that moves money, ending a page's read) are here too.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from flask import Blueprint, Response, abort, render_template, request, url_for
from flask.sansio.app import App
from werkzeug.exceptions import BadRequest, HTTPException

from ...errors import HostCallbackFailed, PaymentNotFound, StarsConfigError
from ...models import INT64_MAX, Payment, ReconcileRun, UpdateLog
from ...reconcile import LEGACY, MOVED, PAST_END, UNREADABLE
from ...reports import NO_PACK
from ...state import StarsState, get_state
from ...transaction import UnitOfWork, abandon
from ..charts import swatch
from ..queries.paging import parse_int64
from ..queries.reconcile import run_warning
from ..security import (
    EXTENSION_KEY,
    FIELD,
    CSRFError,
    DashboardOptions,
    check_access,
    check_csrf,
    csrf_token,
    options,
)
from ..texts import TEXTS, choose_language, count, number, text, when, word

log = logging.getLogger(__name__)
Row = TypeVar("Row", Payment, UpdateLog)
View = TypeVar("View", bound=Callable[..., Any])
#: An action's page showing its own failure: ``render(status, why, **view_args)``.
FailurePage = Callable[..., tuple[str, int]]

CONFIRM_FIELD = "confirm"
CONFIRM_VALUE = "yes"


class BadArgument(BadRequest):
    """A query-string argument that is not valid (answered 400 with its name)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"not a valid value for {name}")
        self.argument = name


class DashboardBlueprint(Blueprint):
    """A blueprint that will not register on an app without the host's access check."""

    def register(self, app: App, options: dict[str, Any]) -> None:
        """Flask's hook, run by ``app.register_blueprint(dashboard_bp, ...)``.

        :param app: the host's app.
        :param options: the keyword arguments of ``register_blueprint``: ``access=`` or
            ``decorator=`` (one is required), ``language=``, ``actor=``, ``url_prefix=``.
        """
        opts = DashboardOptions.from_registration(options)
        if EXTENSION_KEY in app.extensions:
            raise StarsConfigError("the Stars dashboard is already registered on this app")
        app.extensions[EXTENSION_KEY] = opts
        super().register(app, options)


dashboard_bp = DashboardBlueprint(
    "stars_dashboard",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
    root_path=str(Path(__file__).parent.parent),  # flask_stars/dashboard: its templates and static
)


@dashboard_bp.route("/<path:_anything>", methods=["GET", "POST"])
def _no_such_page(_anything: str) -> Any:
    """Any other path under the dashboard: its own 404 page, not the app's bare one (the
    routing tries every real page first; the access check still runs before this)."""
    abort(404)


# --- every request: access first, then the page's language and headers ----------------------


@dashboard_bp.before_request
def _access() -> Any:
    return check_access()


@dashboard_bp.after_request
def _headers(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    )
    response.vary.add("Accept-Language")
    response.vary.add("Cookie")
    return response


def language() -> str:
    """The language of this request's page (the host's choice, or the browser's)."""
    return choose_language(options().language)


@dashboard_bp.context_processor
def _context() -> dict[str, Any]:
    lang = language()

    def t(key: str, **values: object) -> str:
        return text(key, lang, **values)

    def t_or(key: str, fallback: str) -> str:
        """The text ``key``, or ``fallback`` when there is none (a value recorded by a newer version)."""
        return text(key, lang) if key in TEXTS else fallback

    return {
        "t": t,
        "t_or": t_or,
        "word": lambda code: word(code, lang),
        "num": lambda value, digits=0: number(value, lang, digits),
        "when": lambda moment: when(moment, lang),
        "count": lambda noun, n: count(noun, n, lang),
        "pretty": pretty_json,
        "sign_out_url": _sign_out_url(),
        "lang": lang,
        "csrf_token": csrf_token,
        "csrf_field": FIELD,
        "swatch": swatch,
        "run_message": functools.partial(run_message, lang=lang),
    }


def _sign_out_url() -> str | None:
    """Where the header's "Sign out" posts (``sign_out=`` at registration), or None."""
    target = options().sign_out
    if target is None or target.startswith(("/", "http://", "https://")):
        return target
    return url_for(target)


def pretty_json(body: Any) -> str:
    """A JSON text (an update's body, a payment's raw) indented for a reader; as it is when it
    does not parse (a body kept because it was malformed)."""
    try:
        value = json.loads(body) if isinstance(body, str) else body
    except ValueError:
        return str(body)
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)


def page(template: str, status: int = 200, **context: Any) -> tuple[str, int]:
    """The page ``template`` rendered with ``context``, and its status."""
    return render_template(f"stars_dashboard/{template}", **context), status


def end_read(stars: StarsState) -> None:
    """End a page's read transaction, its rows kept loaded for the template (no reload query)."""
    UnitOfWork(stars, keep_loaded=True).commit()


# --- errors become pages ---------------------------------------------------------------------


@dashboard_bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> tuple[str, int]:
    code = exc.code or 500
    lang = language()
    if isinstance(exc, BadArgument):
        return page("error.html", code, message=text("bad_argument", lang, name=exc.argument))
    if code >= 500:
        # An unhandled exception reaches here as an InternalServerError with its
        # original_exception (Flask has logged it, traceback and all); an abort(5xx) has not.
        if getattr(exc, "original_exception", None) is None:
            log.error("dashboard request %s %s answered %s: %s", request.method, request.path, code, exc)
        return page("error.html", code, message=text("server_error", lang))
    key = {403: "forbidden", 404: "not_found"}.get(code, "bad_request")
    return page("error.html", code, message=text(key, lang))


@dashboard_bp.errorhandler(CSRFError)
def _csrf_error(exc: CSRFError) -> tuple[str, int]:
    return page("error.html", 400, message=text("csrf_failed", language()))


@dashboard_bp.errorhandler(PaymentNotFound)
def _not_found(exc: PaymentNotFound) -> tuple[str, int]:
    return page("error.html", 404, message=text("not_found", language()))


_failure_pages: dict[str, FailurePage] = {}


def shows_failure(render: FailurePage) -> Callable[[View], View]:
    """Decorator of an action's view: when the host's callback fails in it, ``render(status,
    why, **view_args)`` is the answer (e.g. the payment's page saying the refund failed)."""

    def decorate(view: View) -> View:
        _failure_pages[view.__name__] = render
        return view

    return decorate


@dashboard_bp.errorhandler(HostCallbackFailed)
def _callback_failed(exc: HostCallbackFailed) -> tuple[str, int]:
    """The host's credit or debit callback raised in an action: nothing of it was kept (its
    transaction is rolled back), and the action's page says what the callback raised (500)."""
    abandon(state())
    log.error("%s %s: %s", request.method, request.path, exc.message, exc_info=exc.original)
    render = _failure_pages.get((request.endpoint or "").rpartition(".")[2])
    if render is None:
        return page("error.html", 500, message=text("server_error", language()))
    return render(500, exc.reason, **(request.view_args or {}))


# --- what the pages share ------------------------------------------------------------------


def state() -> StarsState:
    """flask_stars' state on the current app."""
    return get_state()


def pack_names(stars: StarsState, lang: str) -> dict[str, str]:
    """Each pack's title by its id, and what to call payments that matched no order."""
    names = {pack.id: pack.title_in(lang) for pack in stars.packs.values()}
    names[NO_PACK] = text("no_order", lang)
    return names


def int_arg(name: str) -> int | None:
    """A keyset bound (``?before=``/``?after=``): None when absent; anything but an id a row
    can have (1 to 2^63-1, ASCII digits) is a 400."""
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    value = parse_int64(raw)
    if value is None or value < 1:
        raise BadArgument(name)
    return value


def get_or_404(model: type[Row], row_id: int) -> Row:
    """The row of ``model`` with id ``row_id``; 404 if there is none, or none can be (an id
    past a signed 64-bit integer, which the database cannot even bind)."""
    if not 1 <= row_id <= INT64_MAX:
        abort(404)
    row = state().session.get(model, row_id)
    if row is None:
        abort(404)
    return row


def unconfirmed() -> tuple[str, int] | None:
    """On a POST that moves money: raise ``CSRFError`` without the session's token, and
    answer the 400 page unless the form confirms (None: go on)."""
    check_csrf()
    if request.form.get(CONFIRM_FIELD) != CONFIRM_VALUE:
        return page("error.html", 400, message=text("confirm_missing", language()))
    return None


def run_message(run: ReconcileRun, lang: str) -> str | None:
    """What a run's report says about its position, in the page's language: its warning (the
    saved position did not hold) or its note (nothing new since position N), or None.
    The overview and the Reconcile page show it."""
    report = run.report if isinstance(run.report, dict) else {}
    problem, saved = report.get("position_problem"), report.get("saved_offset")
    key = {MOVED: "position_moved", PAST_END: "position_past_end", UNREADABLE: "position_unreadable"}.get(
        problem if isinstance(problem, str) else ""
    )
    if key is not None:
        return text(key, lang, saved=saved if saved is not None else "?")
    if problem == LEGACY:
        return text("position_legacy", lang)
    note = report.get("note")
    if isinstance(note, str) and note.startswith("no new transactions since position "):
        return text("no_new_since", lang, offset=report.get("end_offset", "?"))
    warning = run_warning(run)
    return warning or (note if isinstance(note, str) and note else None)
