"""Subscriptions: monthly plans, newest first, a keyset page at a time."""

from __future__ import annotations

from typing import Any

from flask import request

from ...models import Subscription
from ..queries.paging import keyset_page, parse_int64
from .base import BadArgument, dashboard_bp, end_read, int_arg, language, pack_names, page, state


@dashboard_bp.get("/subscriptions")
def subscriptions() -> tuple[str, int]:
    """Monthly plans, newest first, a keyset page at a time (``?user=`` for one user)."""
    stars = state()
    where: list[Any] = []
    user = request.args.get("user", "").strip()
    if user:
        user_id = parse_int64(user)
        if user_id is None:
            raise BadArgument("user")
        where.append(Subscription.user_id == user_id)
    found = keyset_page(stars.session, Subscription, where, before=int_arg("before"), after=int_arg("after"))
    end_read(stars)
    return page(
        "subscriptions.html",
        page=found,
        user=user,
        pack_names=pack_names(stars, language()),
    )
