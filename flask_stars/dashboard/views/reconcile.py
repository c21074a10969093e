"""Reconcile: the recorded runs, the saved position, and Run now."""

from __future__ import annotations

import logging
from typing import Any

from flask import redirect, request, url_for

from ... import transaction
from ...errors import BotApiError, ReconcileBusy
from ...reconcile import position_key, stale_after
from ...reconcile import reconcile as run_reconcile
from ..queries import reconcile as reads
from ..security import current_actor
from ..texts import text
from .base import dashboard_bp, end_read, language, page, state, unconfirmed

log = logging.getLogger(__name__)


@dashboard_bp.get("/reconcile")
def reconcile_runs() -> tuple[str, int]:
    """The recorded reconcile runs, newest first, and the Run now button."""
    return _reconcile_page()


def _reconcile_page(status: int = 200, error: str | None = None) -> tuple[str, int]:
    stars = state()
    session = stars.session
    runs = reads.reconcile_runs(session)
    done = runs[0] if request.args.get("done") == "ran" and runs else None
    context: dict[str, Any] = {
        "runs": runs,
        "offset": reads.reconcile_offset(session, position_key(stars)),
        "bot": str(stars.bot_identity),
        "done": done,
        "done_warning": done is not None and bool(reads.run_warning(done)),
        "error": error,
    }
    end_read(stars)
    return page("reconcile.html", status, **context)


@dashboard_bp.route("/reconcile/run", methods=["GET", "POST"])
def reconcile_now() -> Any:
    """GET: what a run does, and the form to confirm it. POST: run it, as ``flask stars reconcile``.

    The run is the CLI's function with ``--full`` (every transaction from the first, the
    saved position checked on the way), by the dashboard's actor, so it is recorded the
    same way (a failed one with its error) and holds no transaction open while it asks
    Telegram. While another run is under way it is refused (409) and says which.
    """
    if request.method == "GET":
        return page("confirm_reconcile.html")
    refused = unconfirmed()
    if refused is not None:
        return refused
    stars = state()
    lang = language()
    try:
        run_reconcile(stars, full=True, actor=current_actor())
    except ReconcileBusy as exc:
        return _reconcile_page(409, _busy(exc, lang))
    except BotApiError as exc:
        return _reconcile_page(502, text("reconcile_failed", lang, why=exc.description))
    except Exception as exc:  # the host's credit callback, or the database: recorded with its error
        transaction.abandon(stars)
        log.exception("reconcile from the dashboard failed")
        return _reconcile_page(500, text("reconcile_failed", lang, why=f"{exc.__class__.__name__}: {exc}"))
    return redirect(url_for(".reconcile_runs", done="ran"), 303)


def _busy(exc: ReconcileBusy, lang: str) -> str:
    """What the page says when another run is under way: which, since when, by whom."""
    when = exc.started_at.strftime("%Y-%m-%d %H:%M:%S") if exc.started_at else "?"
    return text(
        "reconcile_busy",
        lang,
        id=exc.run_id or "?",
        when=when,
        who=exc.started_by or "?",
        minutes=int(stale_after(state()).total_seconds() // 60),
    )
