"""Activity: what operators did (the audit trail), each entry linked to what it acted on."""

from __future__ import annotations

from flask import request, url_for

from ... import audit
from ...models import AuditEntry
from ..queries.audit import activity as read_activity
from ..queries.paging import parse_int64
from .base import BadArgument, dashboard_bp, end_read, int_arg, page, state


@dashboard_bp.get("/activity")
def activity() -> tuple[str, int]:
    """What operators did (refunds, replays, archives, reconcile runs, hand-overs), newest
    first, a keyset page at a time; ``?action=`` for one kind. Each entry links to its target."""
    action = request.args.get("action", "").strip() or None
    if action is not None and action not in audit.ACTIONS:
        raise BadArgument("action")
    stars = state()
    found = read_activity(stars.session, action, before=int_arg("before"), after=int_arg("after"))
    links = {e.id: _target_url(e, found.payment_ids) for e in found.page.rows}
    end_read(stars)
    return page(
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
    row_id = parse_int64(target)
    if row_id is None or row_id < 1:
        return None
    if entry.action in (audit.REPLAY, audit.ARCHIVE):
        return url_for(".update", row_id=row_id)
    if entry.action == audit.RECONCILE:
        return url_for(".reconcile_runs", _anchor=f"run-{row_id}")
    return None
