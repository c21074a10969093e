"""The overview: Stars per day by pack (30 or 90 days), conversion, subscriptions, warnings."""

from __future__ import annotations

from typing import Any

from flask import request

from ... import reports
from ..charts import revenue_chart
from ..queries import overview as reads
from ..queries.reconcile import reconcile_health
from ..texts import text
from .base import dashboard_bp, end_read, language, pack_names, page, state


@dashboard_bp.get("/")
def overview() -> tuple[str, int]:
    """Stars per day by pack (30 or 90 days), conversion, subscriptions, and warnings.

    The figures are ``reports.revenue``'s, the query ``flask stars stats`` reads too.
    """
    days = 90 if request.args.get("days") == "90" else 30
    stars = state()
    session = stars.session
    lang = language()
    revenue = reports.revenue(session, days)
    names = pack_names(stars, lang)
    chart = revenue_chart(revenue, names, title=text("chart_title", lang), desc=text("chart_note", lang))
    context: dict[str, Any] = {
        "days": days,
        "revenue": revenue,
        "pack_names": names,
        "chart": chart,
        "conversion": reads.conversion(session, days),
        "subs": reads.subscription_counts(session),
        "failed": reads.failed_count(session),
        "due_refunds": reads.due_refund_count(session),
        "reconcile": reconcile_health(session),
        "spooled": len(stars.spool.pending()),
    }
    end_read(stars)
    return page("overview.html", **context)
