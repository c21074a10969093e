"""``dashboard_bp``: the operator's pages, mounted by the host behind its own authentication.

    app.register_blueprint(dashboard_bp, url_prefix="/admin", access=is_admin)
    app.register_blueprint(dashboard_bp, url_prefix="/admin", decorator=login_required)

Registering without ``access=`` or ``decorator=`` raises ``StarsConfigError``. Reads are
aggregate SQL and keyset pages (``queries``); the actions that move money, refund, replay
and reconcile's Run now, are POSTs with a CSRF token and an explicit confirmation, and go
through the same code as ``flask stars refund`` (``ledger.refund``), ``flask stars replay``
(``updates.replay``) and ``flask stars reconcile`` (``reconcile.reconcile``). Domain errors
become pages here, at the edge.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Iterator
from typing import Any, TypeVar

from flask import (
    Blueprint,
    Response,
    abort,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask.sansio.app import App
from werkzeug.exceptions import BadRequest, HTTPException

from ..db import kept_after_commit
from ..errors import BotApiError, PaymentNotFound, StarsConfigError, StarsError
from ..ledger import refund as refund_payment
from ..models import Payment, PaymentStatus, Subscription, UpdateLog
from ..reconcile import reconcile as run_reconcile
from ..state import StarsState, get_state
from ..updates import replay as replay_updates
from . import queries
from .charts import revenue_chart, swatch
from .security import (
    EXTENSION_KEY,
    FIELD,
    CSRFError,
    DashboardOptions,
    check_access,
    check_csrf,
    csrf_token,
    options,
)
from .texts import choose_language, text

log = logging.getLogger(__name__)
Row = TypeVar("Row", Payment, UpdateLog)

CONFIRM_FIELD = "confirm"
CONFIRM_VALUE = "yes"
CSV_FIELDS = (  # the CSV header, and the column each is read from (``Payment.id`` first)
    ("id", Payment.id),
    ("charge_id", Payment.telegram_payment_charge_id),
    ("user_id", Payment.user_id),
    ("payer_id", Payment.payer_id),
    ("pack_id", Payment.pack_id),
    ("stars", Payment.stars),
    ("currency", Payment.currency),
    ("status", Payment.status),
    ("credited", Payment.credited),
    ("problem", Payment.problem),
    ("paid_at", Payment.paid_at),
    ("refunded_at", Payment.refunded_at),
    ("order_id", Payment.order_id),
    ("update_id", Payment.update_id),
)
CSV_COLUMNS = tuple(name for name, _ in CSV_FIELDS)
CSV_FLUSH = 200  # rows written to the client at a time


class BadArgument(BadRequest):
    """A query-string argument that is not valid (answered 400 with its name)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"not a valid value for {name}")
        self.argument = name


class DashboardBlueprint(Blueprint):
    """A blueprint that will not register on an app without the host's access check."""

    def register(self, app: App, options: dict[str, Any]) -> None:
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
)


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


def _language() -> str:
    return choose_language(options().language)


@dashboard_bp.context_processor
def _context() -> dict[str, Any]:
    lang = _language()

    def t(key: str, **values: object) -> str:
        return text(key, lang, **values)

    return {"t": t, "lang": lang, "csrf_token": csrf_token, "csrf_field": FIELD, "swatch": swatch}


def _page(template: str, status: int = 200, **context: Any) -> tuple[str, int]:
    return render_template(f"stars_dashboard/{template}", **context), status


def _end_read(session: Any) -> None:
    """End a page's read transaction, its rows kept loaded for the template (no reload query)."""
    with kept_after_commit(session):
        session.commit()


@dashboard_bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> tuple[str, int]:
    code = exc.code or 500
    lang = _language()
    if isinstance(exc, BadArgument):
        return _page("error.html", code, message=text("bad_argument", lang, name=exc.argument))
    if code >= 500:
        # An unhandled exception reaches here as an InternalServerError with its
        # original_exception (Flask has logged it, traceback and all); an abort(5xx) has not.
        if getattr(exc, "original_exception", None) is None:
            log.error("dashboard request %s %s answered %s: %s", request.method, request.path, code, exc)
        return _page("error.html", code, message=text("server_error", lang))
    key = {403: "forbidden", 404: "not_found"}.get(code, "bad_request")
    return _page("error.html", code, message=text(key, lang))


@dashboard_bp.errorhandler(CSRFError)
def _csrf_error(exc: CSRFError) -> tuple[str, int]:
    return _page("error.html", 400, message=text("csrf_failed", _language()))


@dashboard_bp.errorhandler(PaymentNotFound)
def _not_found(exc: PaymentNotFound) -> tuple[str, int]:
    return _page("error.html", 404, message=text("not_found", _language()))


def _state() -> StarsState:
    return get_state()


def _pack_names(state: StarsState, lang: str) -> dict[str, str]:
    names = {pack.id: pack.title for pack in state.packs.values()}
    names[queries.NO_PACK] = text("no_order", lang)
    return names


# --- overview ------------------------------------------------------------------------------


@dashboard_bp.get("/")
def overview() -> tuple[str, int]:
    """Stars per day by pack (30 or 90 days), conversion, subscriptions, and warnings."""
    days = 90 if request.args.get("days") == "90" else 30
    state = _state()
    session = state.session
    lang = _language()
    revenue = queries.revenue(session, days)
    names = _pack_names(state, lang)
    chart = revenue_chart(revenue, names, title=text("chart_title", lang), desc=text("chart_note", lang))
    context: dict[str, Any] = {
        "days": days,
        "revenue": revenue,
        "pack_names": names,
        "chart": chart,
        "conversion": queries.conversion(session, days),
        "subs": queries.subscription_counts(session),
        "failed": queries.failed_count(session),
        "due_refunds": queries.due_refund_count(session),
        "reconcile": queries.reconcile_health(session),
        "spooled": len(state.spool.pending()),
    }
    _end_read(session)
    return _page("overview.html", **context)


# --- payments ------------------------------------------------------------------------------


def _int_arg(name: str) -> int | None:
    """A keyset bound (``?before=``/``?after=``): None when absent or not positive; a value that
    is not a signed 64-bit integer is a 400."""
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    value = queries.parse_int64(raw)
    if value is None:
        raise BadArgument(name)
    return value if value > 0 else None


@dashboard_bp.get("/payments")
def payments() -> tuple[str, int]:
    """The ledger, newest first, filtered, a keyset page at a time.

    A filter that is not valid answers 400: the page names it and lists no rows (rows
    without that filter would not be what was asked for).
    """
    state = _state()
    filters = queries.PaymentFilter.parse(request.args)
    before, after = _int_arg("before"), _int_arg("after")
    status = 400 if filters.errors else 200
    page = queries.Page([], None, None)
    if not filters.errors:
        page = queries.keyset_page(state.session, Payment, filters.where(), before=before, after=after)
        _end_read(state.session)
    return _page(
        "payments.html",
        status,
        page=page,
        filters=filters,
        args=filters.query_args(),
        packs=sorted(p.id for p in state.packs.values()),
        pack_names=_pack_names(state, _language()),
    )


def _csv_cell(value: Any) -> str:
    text_value = "" if value is None else value.isoformat() if hasattr(value, "isoformat") else str(value)
    # A spreadsheet must not run a cell as a formula.
    return "'" + text_value if text_value[:1] in ("=", "+", "-", "@", "\t", "\r") else text_value


@dashboard_bp.get("/payments.csv")
def payments_csv() -> Response:
    """The filtered payments as CSV, streamed a chunk of rows at a time (never all in memory)."""
    state = _state()
    filters = queries.PaymentFilter.parse(request.args)
    if filters.errors:  # before the 200 starts: a filter dropped would export other rows
        raise BadArgument(", ".join(filters.errors))
    where = filters.where()
    columns = [column for _, column in CSV_FIELDS]

    def rows() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_COLUMNS)
        # Each chunk is read and its transaction ended before any of it is sent.
        for chunk in queries.payment_rows(state.session, where, columns):
            for n, row in enumerate(chunk, start=1):
                writer.writerow([_csv_cell(v) for v in row])
                if n % CSV_FLUSH == 0:
                    yield buffer.getvalue()
                    buffer.seek(0)
                    buffer.truncate()
        yield buffer.getvalue()

    return Response(
        stream_with_context(rows()),
        mimetype="text/csv",
        headers={"Content-Disposition": 'attachment; filename="stars-payments.csv"'},
    )


def _get_or_404(model: type[Row], row_id: int) -> Row:
    """The row of ``model`` with id ``row_id``; 404 if there is none, or none can be (an id
    past a signed 64-bit integer, which the database cannot even bind)."""
    if not queries.INT64_MIN <= row_id <= queries.INT64_MAX:
        abort(404)
    row = _state().session.get(model, row_id)
    if row is None:
        abort(404)
    return row


def _unconfirmed() -> tuple[str, int] | None:
    """On a POST that moves money: raise ``CSRFError`` without the session's token, and
    answer the 400 page unless the form confirms (None: go on)."""
    check_csrf()
    if request.form.get(CONFIRM_FIELD) != CONFIRM_VALUE:
        return _page("error.html", 400, message=text("confirm_missing", _language()))
    return None


@dashboard_bp.get("/payments/<int:payment_id>")
def payment(payment_id: int) -> tuple[str, int]:
    """One payment: its order, the raw updates behind it, and the Refund button."""
    return _payment_page(payment_id)


def _payment_page(payment_id: int, status: int = 200, error: str | None = None) -> tuple[str, int]:
    state = _state()
    p = _get_or_404(Payment, payment_id)
    context: dict[str, Any] = {
        "p": p,
        "order": p.order,
        "updates": queries.updates_of(state.session, p),
        "raw": json.dumps(p.raw, indent=2, ensure_ascii=False) if p.raw else "",
        "pack_names": _pack_names(state, _language()),
        "done": request.args.get("done") == "refunded",
        "error": error,
        "refundable": p.status == PaymentStatus.PAID,
    }
    _end_read(state.session)
    return _page("payment.html", status, **context)


@dashboard_bp.route("/payments/<int:payment_id>/refund", methods=["GET", "POST"])
def refund(payment_id: int) -> Any:
    """GET: what a refund will do, and the form to confirm it. POST: refund, as ``flask stars refund``."""
    state = _state()
    p = _get_or_404(Payment, payment_id)
    charge_id, stars, payer = p.telegram_payment_charge_id, p.stars, p.payer_id
    if request.method == "GET":
        _end_read(state.session)
        return _page("confirm_refund.html", p=p)
    state.session.rollback()  # the refund reads the payment afresh, under its lock
    refused = _unconfirmed()
    if refused is not None:
        return refused
    reason = (request.form.get("reason") or "").strip()[:200] or "refunded from the dashboard"
    lang = _language()
    try:
        refund_payment(state, charge_id, reason)
    except BotApiError as exc:
        return _payment_page(payment_id, 502, text("refund_failed", lang, why=exc.description))
    except StarsError:
        raise
    except Exception as exc:  # the host's debit callback, or the database: the ledger is unchanged
        state.session.rollback()
        log.exception("refund of %s (%s Stars to %s) failed", charge_id, stars, payer)
        why = f"{exc.__class__.__name__}: {exc}"
        return _payment_page(payment_id, 500, text("refund_failed", lang, why=why))
    return redirect(url_for(".payment", payment_id=payment_id, done="refunded"), 303)


# --- failed updates: replay -----------------------------------------------------------------


@dashboard_bp.get("/updates")
def failed_updates() -> tuple[str, int]:
    """Payment updates kept unprocessed, and the spool, with Replay."""
    state = _state()
    page = queries.keyset_page(
        state.session,
        UpdateLog,
        [queries.failed_filter()],
        before=_int_arg("before"),
        after=_int_arg("after"),
    )
    _end_read(state.session)
    return _page("updates.html", page=page, spooled=[p.name for p in state.spool.pending()])


@dashboard_bp.route("/updates/<int:row_id>/replay", methods=["GET", "POST"])
def replay_one(row_id: int) -> Any:
    """Replay one logged update, as ``flask stars replay UPDATE_ID`` (confirmed, CSRF-checked)."""
    row = _get_or_404(UpdateLog, row_id)
    update_id = row.update_id
    _state().session.rollback()
    if update_id is None:
        return _page("error.html", 400, message=text("no_update_id", _language()))
    what = text("replay_one", _language(), update_id=update_id, row=row_id)
    return _replay(what, (update_id,), failed=False)


@dashboard_bp.route("/updates/replay-failed", methods=["GET", "POST"])
def replay_failed() -> Any:
    """Replay the spool and every failed update, as ``flask stars replay --failed``."""
    count = len(_state().spool.pending()) if request.method == "GET" else 0
    return _replay(text("replay_every", _language(), count=count), (), failed=True)


def _replay(what: str, update_ids: tuple[int, ...], *, failed: bool) -> Any:
    if request.method == "GET":
        return _page("confirm_replay.html", what=what)
    refused = _unconfirmed()
    if refused is not None:
        return refused
    results = []
    for label, outcome in replay_updates(_state(), update_ids, failed=failed):
        if isinstance(outcome, Exception):
            results.append((label, False, f"{outcome.__class__.__name__}: {outcome}"))
        else:
            results.append((label, True, outcome.detail))
    return _page("replayed.html", results=results, ok=sum(1 for r in results if r[1]))


# --- reconcile: the runs, and Run now -----------------------------------------------------


@dashboard_bp.get("/reconcile")
def reconcile_runs() -> tuple[str, int]:
    """The recorded reconcile runs, newest first, and the Run now button."""
    return _reconcile_page()


def _reconcile_page(status: int = 200, error: str | None = None) -> tuple[str, int]:
    session = _state().session
    context: dict[str, Any] = {
        "runs": queries.reconcile_runs(session),
        "offset": queries.reconcile_offset(session),
        "done": request.args.get("done") == "ran",
        "error": error,
    }
    _end_read(session)
    return _page("reconcile.html", status, **context)


@dashboard_bp.route("/reconcile/run", methods=["GET", "POST"])
def reconcile_now() -> Any:
    """GET: what a run does, and the form to confirm it. POST: run it, as ``flask stars reconcile``.

    The run is the CLI's function, so it is recorded the same way (a failed one with its
    error) and holds no transaction open while it asks Telegram.
    """
    if request.method == "GET":
        return _page("confirm_reconcile.html")
    refused = _unconfirmed()
    if refused is not None:
        return refused
    state = _state()
    lang = _language()
    try:
        run_reconcile(state)
    except BotApiError as exc:
        return _reconcile_page(502, text("reconcile_failed", lang, why=exc.description))
    except Exception as exc:  # the host's credit callback, or the database: recorded with its error
        state.session.rollback()
        log.exception("reconcile from the dashboard failed")
        return _reconcile_page(500, text("reconcile_failed", lang, why=f"{exc.__class__.__name__}: {exc}"))
    return redirect(url_for(".reconcile_runs", done="ran"), 303)


# --- subscriptions -------------------------------------------------------------------------


@dashboard_bp.get("/subscriptions")
def subscriptions() -> tuple[str, int]:
    """Monthly plans, newest first, a keyset page at a time (``?user=`` for one user)."""
    state = _state()
    where: list[Any] = []
    user = request.args.get("user", "").strip()
    if user:
        user_id = queries.parse_int64(user)
        if user_id is None:
            raise BadArgument("user")
        where.append(Subscription.user_id == user_id)
    page = queries.keyset_page(
        state.session, Subscription, where, before=_int_arg("before"), after=_int_arg("after")
    )
    _end_read(state.session)
    return _page(
        "subscriptions.html",
        page=page,
        user=user,
        pack_names=_pack_names(state, _language()),
    )
