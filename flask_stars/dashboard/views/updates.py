"""Logged updates: the failed (or archived) ones, Replay, Archive, and one update's page."""

from __future__ import annotations

from typing import Any

from flask import abort, redirect, request, url_for

from ... import reports, transaction
from ...archive import archive_update
from ...archive import refusal as archive_refusal
from ...errors import InvalidRequest, UpdateNotArchivable, UpdateNotFound
from ...models import UpdateKind, UpdateLog
from ...updates import replay as replay_updates
from ..queries.audit import audit_of_update
from ..queries.paging import keyset_page
from ..queries.payments import payment_of_update
from ..security import current_actor
from ..texts import text, when
from .base import BadArgument, dashboard_bp, end_read, get_or_404, int_arg, language, page, state, unconfirmed

UPDATE_LISTS = ("failed", "archived")


@dashboard_bp.get("/updates")
def failed_updates() -> tuple[str, int]:
    """Failed payment updates (each with Replay… and Archive…) and the spool; with
    ``?show=archived``, the archived ones instead, with who archived them, when and why."""
    show = request.args.get("show", "").strip() or "failed"
    if show not in UPDATE_LISTS:
        raise BadArgument("show")
    stars = state()
    where = reports.archived_updates() if show == "archived" else reports.failed_updates()
    found = keyset_page(stars.session, UpdateLog, [where], before=int_arg("before"), after=int_arg("after"))
    end_read(stars)
    return page(
        "updates.html",
        page=found,
        show=show,
        args={"show": show} if show != "failed" else {},
        done=request.args.get("done") == "archived",
        spooled=[p.name for p in stars.spool.pending()],
    )


@dashboard_bp.route("/updates/<int:row_id>/replay", methods=["GET", "POST"])
def replay_one(row_id: int) -> Any:
    """Replay one logged update by its row, as ``flask stars replay --row ROW_ID`` (confirmed,
    CSRF-checked); a polling bot's update (no ``update_id``) too, and an archived one."""
    row = get_or_404(UpdateLog, row_id)
    update_id = "—" if row.update_id is None else row.update_id
    what = text("replay_one", language(), row=row_id, kind=row.kind, update_id=update_id)
    transaction.end_read(state())
    return _replay(what, rows=(row_id,))


@dashboard_bp.route("/updates/replay-failed", methods=["GET", "POST"])
def replay_failed() -> Any:
    """Replay the spool and every failed update, as ``flask stars replay --failed``."""
    count = len(state().spool.pending()) if request.method == "GET" else 0
    return _replay(text("replay_every", language(), count=count), failed=True)


def _replay(what: str, *, rows: tuple[int, ...] = (), failed: bool = False) -> Any:
    if request.method == "GET":
        return page("confirm_replay.html", what=what)
    refused = unconfirmed()
    if refused is not None:
        return refused
    results = list(replay_updates(state(), rows=rows, failed=failed, actor=current_actor()))
    failures = [r for r in results if not r.ok]
    return page("replayed.html", results=results, ok=len(results) - len(failures), failures=failures)


@dashboard_bp.route("/updates/<int:row_id>/archive", methods=["GET", "POST"])
def archive(row_id: int) -> Any:
    """GET: what archiving does, and the form (a reason is required). POST: archive the failed
    update, as ``flask stars archive ROW_ID --reason``; then the archived list."""
    stars = state()
    row = get_or_404(UpdateLog, row_id)
    lang = language()
    if request.method == "GET":
        refusal = _refusal(row, lang)
        end_read(stars)
        if refusal is not None:
            return page("error.html", 400, message=text("archive_refused", lang, why=refusal))
        return page("confirm_archive.html", u=row)
    transaction.end_read(stars)  # the archive checks the row afresh, in its UPDATE
    confirmed = unconfirmed()
    if confirmed is not None:
        return confirmed
    try:
        archive_update(stars, row_id, reason=request.form.get("reason"), actor=current_actor())
    except InvalidRequest:
        return page("confirm_archive.html", 400, u=row, error=text("archive_reason_missing", lang))
    except UpdateNotArchivable as exc:
        return page("error.html", 400, message=text("archive_refused", lang, why=exc.message))
    except UpdateNotFound:
        abort(404)
    return redirect(url_for(".failed_updates", show="archived", done="archived"), 303)


@dashboard_bp.get("/updates/<int:row_id>")
def update(row_id: int) -> tuple[str, int]:
    """One logged update: what Telegram sent, whether it was handled, who replayed or archived
    it, and the payment it recorded."""
    stars = state()
    row = get_or_404(UpdateLog, row_id)
    context: dict[str, Any] = {
        "u": row,
        "payment": payment_of_update(stars.session, row),
        "audit": audit_of_update(stars.session, row),
    }
    end_read(stars)
    return page("update.html", **context)


def _refusal(row: UpdateLog, lang: str) -> str | None:
    """Why ``row`` cannot be archived (``archive.refusal``), in the page's language."""
    if archive_refusal(row) is None:
        return None
    if row.kind == UpdateKind.PRE_CHECKOUT:
        return text("archive_not_payment", lang, row=row.id)
    if row.archived_at is not None:
        return text(
            "archive_already", lang, row=row.id, when=when(row.archived_at, lang), who=row.archived_by or "—"
        )
    return text("archive_processed", lang, row=row.id)
