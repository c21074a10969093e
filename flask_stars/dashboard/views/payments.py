"""The payments: the ledger a keyset page at a time, filtered, and the same rows as CSV."""

from __future__ import annotations

from flask import Response, request, stream_with_context

from ...models import Payment
from .. import export
from ..queries.paging import Page, keyset_page
from ..queries.payments import PaymentFilter, payment_rows
from .base import BadArgument, dashboard_bp, end_read, int_arg, language, pack_names, page, state


@dashboard_bp.get("/payments")
def payments() -> tuple[str, int]:
    """The ledger, newest first, filtered, a keyset page at a time.

    A filter that is not valid answers 400: the page names it and lists no rows (rows
    without that filter would not be what was asked for).
    """
    stars = state()
    filters = PaymentFilter.parse(request.args)
    before, after = int_arg("before"), int_arg("after")
    status = 400 if filters.errors else 200
    found = Page([], None, None)
    if not filters.errors:
        found = keyset_page(stars.session, Payment, filters.where(), before=before, after=after)
        end_read(stars)
    return page(
        "payments.html",
        status,
        page=found,
        filters=filters,
        args=filters.query_args(),
        packs=sorted(p.id for p in stars.packs.values()),
        pack_names=pack_names(stars, language()),
    )


@dashboard_bp.get("/payments.csv")
def payments_csv() -> Response:
    """The filtered payments as CSV, streamed a chunk of rows at a time (never all in memory)."""
    stars = state()
    filters = PaymentFilter.parse(request.args)
    if filters.errors:  # before the 200 starts: a filter dropped would export other rows
        raise BadArgument(", ".join(filters.errors))
    # Each chunk is read and its transaction ended before any of it is sent.
    chunks = payment_rows(stars, filters.where(), export.COLUMNS)
    return Response(
        stream_with_context(export.write(chunks)),
        mimetype="text/csv",
        headers={"Content-Disposition": 'attachment; filename="stars-payments.csv"'},
    )
