"""``dashboard_bp``: the operator's pages, mounted by the host behind its own authentication.

    app.register_blueprint(dashboard_bp, url_prefix="/admin", access=is_admin)
    app.register_blueprint(dashboard_bp, url_prefix="/admin", decorator=login_required,
                           actor=lambda: current_user.email)

Registering without ``access=`` or ``decorator=`` raises ``StarsConfigError``; ``actor=``
names the operator in the audit trail (the Activity page). Reads are
aggregate SQL and keyset pages (``queries``); the actions that move money, refund, replay
and reconcile's Run now, are POSTs with a CSRF token and an explicit confirmation, and go
through the same code as ``flask stars refund`` (``ledger.refund``), ``flask stars replay``
(``updates.replay``) and ``flask stars reconcile`` (``reconcile.reconcile``). Domain errors
become pages here, at the edge.
"""

from __future__ import annotations

import functools
import json
import logging
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

from .. import audit
from ..archive import archive_update
from ..archive import refusal as archive_refusal
from ..db import kept_after_commit
from ..errors import (
    BotApiError,
    InvalidRequest,
    PaymentNotFound,
    ReconcileBusy,
    StarsConfigError,
    StarsError,
    UpdateNotArchivable,
    UpdateNotFound,
)
from ..ledger import refund as refund_payment
from ..models import INT64_MAX, AuditEntry, Payment, PaymentStatus, ReconcileRun, Subscription, UpdateLog
from ..reconcile import LEGACY, MOVED, PAST_END, UNREADABLE, position_key, stale_after
from ..reconcile import reconcile as run_reconcile
from ..state import StarsState, get_state
from ..updates import replay as replay_updates
from . import export, queries
from .charts import revenue_chart, swatch
from .security import (
    EXTENSION_KEY,
    FIELD,
    CSRFError,
    DashboardOptions,
    check_access,
    check_csrf,
    csrf_token,
    current_actor,
    options,
)
from .texts import TEXTS, choose_language, text

log = logging.getLogger(__name__)
Row = TypeVar("Row", Payment, UpdateLog)

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

    def t_or(key: str, fallback: str) -> str:
        """The text ``key``, or ``fallback`` when there is none (a value recorded by a newer version)."""
        return text(key, lang) if key in TEXTS else fallback

    return {
        "t": t,
        "t_or": t_or,
        "lang": lang,
        "csrf_token": csrf_token,
        "csrf_field": FIELD,
        "swatch": swatch,
        "run_message": functools.partial(run_message, lang=lang),
    }


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
    """A keyset bound (``?before=``/``?after=``): None when absent; anything but an id a row
    can have (1 to 2^63-1, ASCII digits) is a 400."""
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    value = queries.parse_int64(raw)
    if value is None or value < 1:
        raise BadArgument(name)
    return value


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


@dashboard_bp.get("/payments.csv")
def payments_csv() -> Response:
    """The filtered payments as CSV, streamed a chunk of rows at a time (never all in memory)."""
    state = _state()
    filters = queries.PaymentFilter.parse(request.args)
    if filters.errors:  # before the 200 starts: a filter dropped would export other rows
        raise BadArgument(", ".join(filters.errors))
    # Each chunk is read and its transaction ended before any of it is sent.
    chunks = queries.payment_rows(state.session, filters.where(), export.COLUMNS)
    return Response(
        stream_with_context(export.write(chunks)),
        mimetype="text/csv",
        headers={"Content-Disposition": 'attachment; filename="stars-payments.csv"'},
    )


def _get_or_404(model: type[Row], row_id: int) -> Row:
    """The row of ``model`` with id ``row_id``; 404 if there is none, or none can be (an id
    past a signed 64-bit integer, which the database cannot even bind)."""
    if not 1 <= row_id <= INT64_MAX:
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
    updates = queries.updates_of(state.session, p)
    context: dict[str, Any] = {
        "p": p,
        "order": p.order,
        "updates": updates,
        "audit": queries.audit_of_payment(state.session, p, updates),
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
    reason = (request.form.get("reason") or "").strip()[:200] or None  # as typed, for the audit trail
    lang = _language()
    try:
        refund_payment(state, charge_id, reason, actor=current_actor())
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


# --- failed updates: replay and archive ----------------------------------------------------

UPDATE_LISTS = ("failed", "archived")


@dashboard_bp.get("/updates")
def failed_updates() -> tuple[str, int]:
    """Failed payment updates (each with Replay… and Archive…) and the spool; with
    ``?show=archived``, the archived ones instead, with who archived them, when and why."""
    show = request.args.get("show", "").strip() or "failed"
    if show not in UPDATE_LISTS:
        raise BadArgument("show")
    state = _state()
    where = queries.archived_filter() if show == "archived" else queries.failed_filter()
    page = queries.keyset_page(
        state.session, UpdateLog, [where], before=_int_arg("before"), after=_int_arg("after")
    )
    _end_read(state.session)
    return _page(
        "updates.html",
        page=page,
        show=show,
        args={"show": show} if show != "failed" else {},
        done=request.args.get("done") == "archived",
        spooled=[p.name for p in state.spool.pending()],
    )


@dashboard_bp.route("/updates/<int:row_id>/replay", methods=["GET", "POST"])
def replay_one(row_id: int) -> Any:
    """Replay one logged update by its row, as ``flask stars replay --row ROW_ID`` (confirmed,
    CSRF-checked); a polling bot's update (no ``update_id``) too, and an archived one."""
    row = _get_or_404(UpdateLog, row_id)
    update_id = "—" if row.update_id is None else row.update_id
    what = text("replay_one", _language(), row=row_id, kind=row.kind, update_id=update_id)
    _state().session.rollback()
    return _replay(what, rows=(row_id,))


@dashboard_bp.route("/updates/replay-failed", methods=["GET", "POST"])
def replay_failed() -> Any:
    """Replay the spool and every failed update, as ``flask stars replay --failed``."""
    count = len(_state().spool.pending()) if request.method == "GET" else 0
    return _replay(text("replay_every", _language(), count=count), failed=True)


def _replay(what: str, *, rows: tuple[int, ...] = (), failed: bool = False) -> Any:
    if request.method == "GET":
        return _page("confirm_replay.html", what=what)
    refused = _unconfirmed()
    if refused is not None:
        return refused
    results = list(replay_updates(_state(), rows=rows, failed=failed, actor=current_actor()))
    failures = [r for r in results if not r.ok]
    return _page("replayed.html", results=results, ok=len(results) - len(failures), failures=failures)


@dashboard_bp.route("/updates/<int:row_id>/archive", methods=["GET", "POST"])
def archive(row_id: int) -> Any:
    """GET: what archiving does, and the form (a reason is required). POST: archive the failed
    update, as ``flask stars archive ROW_ID --reason``; then the archived list."""
    state = _state()
    row = _get_or_404(UpdateLog, row_id)
    lang = _language()
    if request.method == "GET":
        refusal = archive_refusal(row)
        _end_read(state.session)
        if refusal is not None:
            return _page("error.html", 400, message=text("archive_refused", lang, why=refusal))
        return _page("confirm_archive.html", u=row)
    state.session.rollback()  # the archive checks the row afresh, in its UPDATE
    confirmed = _unconfirmed()
    if confirmed is not None:
        return confirmed
    try:
        archive_update(state, row_id, reason=request.form.get("reason"), actor=current_actor())
    except InvalidRequest:
        return _page("confirm_archive.html", 400, u=row, error=text("archive_reason_missing", lang))
    except UpdateNotArchivable as exc:
        return _page("error.html", 400, message=text("archive_refused", lang, why=exc.message))
    except UpdateNotFound:
        abort(404)
    return redirect(url_for(".failed_updates", show="archived", done="archived"), 303)


# --- reconcile: the runs, and Run now -----------------------------------------------------


@dashboard_bp.get("/reconcile")
def reconcile_runs() -> tuple[str, int]:
    """The recorded reconcile runs, newest first, and the Run now button."""
    return _reconcile_page()


def _reconcile_page(status: int = 200, error: str | None = None) -> tuple[str, int]:
    state = _state()
    session = state.session
    runs = queries.reconcile_runs(session)
    done = runs[0] if request.args.get("done") == "ran" and runs else None
    context: dict[str, Any] = {
        "runs": runs,
        "offset": queries.reconcile_offset(session, position_key(state)),
        "bot": str(state.bot_identity),
        "done": done,
        "done_warning": done is not None and bool(queries.run_warning(done)),
        "error": error,
    }
    _end_read(session)
    return _page("reconcile.html", status, **context)


def run_message(run: ReconcileRun, lang: str) -> str | None:
    """What a run's report says about its position, in the page's language: its warning (the
    saved position did not hold) or its note (nothing new since position N), or None."""
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
    warning = queries.run_warning(run)
    return warning or (note if isinstance(note, str) and note else None)


@dashboard_bp.route("/reconcile/run", methods=["GET", "POST"])
def reconcile_now() -> Any:
    """GET: what a run does, and the form to confirm it. POST: run it, as ``flask stars reconcile``.

    The run is the CLI's function with ``--full`` (every transaction from the first, the
    saved position checked on the way), by the dashboard's actor, so it is recorded the
    same way (a failed one with its error) and holds no transaction open while it asks
    Telegram. While another run is under way it is refused (409) and says which.
    """
    if request.method == "GET":
        return _page("confirm_reconcile.html")
    refused = _unconfirmed()
    if refused is not None:
        return refused
    state = _state()
    lang = _language()
    try:
        run_reconcile(state, full=True, actor=current_actor())
    except ReconcileBusy as exc:
        when = exc.started_at.strftime("%Y-%m-%d %H:%M:%S") if exc.started_at else "?"
        busy = text(
            "reconcile_busy",
            lang,
            id=exc.run_id or "?",
            when=when,
            who=exc.started_by or "?",
            minutes=int(stale_after(state).total_seconds() // 60),
        )
        return _reconcile_page(409, busy)
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


# --- the audit trail: Activity, and one logged update ----------------------------------------


@dashboard_bp.get("/activity")
def activity() -> tuple[str, int]:
    """What operators did (refunds, replays, archives, reconcile runs, hand-overs), newest
    first, a keyset page at a time; ``?action=`` for one kind. Each entry links to its target."""
    action = request.args.get("action", "").strip() or None
    if action is not None and action not in audit.ACTIONS:
        raise BadArgument("action")
    state = _state()
    found = queries.activity(state.session, action, before=_int_arg("before"), after=_int_arg("after"))
    links = {e.id: _target_url(e, found.payment_ids) for e in found.page.rows}
    _end_read(state.session)
    return _page(
        "activity.html",
        page=found.page,
        links=links,
        action=action,
        actions=audit.ACTIONS,
        args={"action": action} if action else {},
    )


def _target_url(entry: AuditEntry, payment_ids: dict[str, int]) -> str | None:
    """The dashboard page of what ``entry`` acted on (None when it has none, or it is gone)."""
    target = entry.target or ""
    if entry.action == audit.REFUND and target in payment_ids:
        return url_for(".payment", payment_id=payment_ids[target])
    row_id = queries.parse_int64(target)
    if row_id is None or row_id < 1:
        return None
    if entry.action in (audit.REPLAY, audit.ARCHIVE):
        return url_for(".update", row_id=row_id)
    if entry.action == audit.RECONCILE:
        return url_for(".reconcile_runs", _anchor=f"run-{row_id}")
    return None


@dashboard_bp.get("/updates/<int:row_id>")
def update(row_id: int) -> tuple[str, int]:
    """One logged update: what Telegram sent, whether it was handled, who replayed or archived
    it, and the payment it recorded."""
    state = _state()
    row = _get_or_404(UpdateLog, row_id)
    context: dict[str, Any] = {
        "u": row,
        "payment": queries.payment_of_update(state.session, row),
        "audit": queries.audit_of_update(state.session, row),
    }
    _end_read(state.session)
    return _page("update.html", **context)
