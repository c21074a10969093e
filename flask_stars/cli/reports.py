"""What the operator reads: ``balance``, ``stats``, ``subscriptions``; and ``subscription``
to stop or resume one."""

from __future__ import annotations

from typing import Any

import click
import sqlalchemy as sa
from flask.cli import with_appcontext

from .. import reports
from ..models import Subscription
from ..operations.subscription import set_canceled
from ..state import get_state
from ..subscriptions import get_subscription
from .base import print_rows, stars_errors

NO_ORDER = "(no order)"  # the pack column of payments that matched no order


@click.command("balance")
@with_appcontext
@stars_errors
def balance() -> None:
    """The bot's Stars balance (getMyStarBalance)."""
    stars = get_state().gateway.star_balance()
    click.echo(f"{stars} Stars")


@click.command("stats")
@with_appcontext
@stars_errors
@click.option("--days", type=int, default=30, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
def stats(days: int, as_json: bool) -> None:
    """Revenue in Stars by day and pack, with refunds, over the last DAYS days."""
    revenue = reports.revenue(get_state().session, days)
    rows = [_stats_row(cell.day.isoformat(), cell.pack or NO_ORDER, cell) for cell in revenue.cells.values()]
    rows.sort(key=lambda row: (row["day"], row["pack"]))
    if rows and not as_json:
        rows.append(_stats_row("total", "", revenue.total))
    print_rows(rows, as_json)


def _stats_row(day: str, pack: str, cell: reports.DayPack) -> dict[str, Any]:
    return {
        "day": day,
        "pack": pack,
        "payments": cell.payments,
        "stars": cell.stars,
        "refunded": cell.refunded,
        "net": cell.net,
    }


@click.command("subscriptions")
@with_appcontext
@stars_errors
@click.option("--user", "user_id", type=int, help="Only this user's subscriptions.")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
def subscriptions_cmd(user_id: int | None, as_json: bool) -> None:
    """Subscriptions (monthly plans) and their state."""
    stmt = sa.select(Subscription).order_by(Subscription.id.desc())
    if user_id is not None:
        stmt = stmt.where(Subscription.user_id == user_id)
    rows = [
        {
            "id": sub.id,
            "user": sub.user_id,
            "pack": sub.pack_id,
            "state": sub.state,
            "payments": sub.payments,
            "expires_at": sub.expires_at.isoformat(timespec="seconds") if sub.expires_at else "",
        }
        for sub in get_state().session.scalars(stmt)
    ]
    print_rows(rows, as_json)


@click.command("subscription")
@with_appcontext
@stars_errors
@click.argument("action", type=click.Choice(["cancel", "enable"]))
@click.argument("subscription_id", type=int)
def subscription_cmd(action: str, subscription_id: int) -> None:
    """Stop (cancel) or resume (enable) renewing a subscription (editUserStarSubscription)."""
    state = get_state()
    sub = set_canceled(state, get_subscription(state, subscription_id), action == "cancel")
    click.echo(f"subscription {sub.id}: {sub.state}")


COMMANDS = (balance, stats, subscriptions_cmd, subscription_cmd)
