"""The ledger's commands: ``refund``, ``replay``, ``archive``, ``updates``, ``payments``, ``orders``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import click
import sqlalchemy as sa
from flask.cli import with_appcontext

from .. import reports
from ..archive import archive_update
from ..audit import cli_actor
from ..errors import UpdateNotArchivable, UpdateNotFound
from ..ledger import due_refunds
from ..models import Order, Payment, UpdateLog
from ..operations.refund import refund as refund_payment
from ..state import get_state
from ..transaction import end_read
from ..updates import replay as replay_updates
from .base import print_rows, stars_errors, step


@click.command("replay")
@with_appcontext
@stars_errors
@click.argument("update_ids", nargs=-1, type=int)
@click.option(
    "--row",
    "rows",
    multiple=True,
    type=int,
    help="A stars_updates row id to replay (repeatable): a polling bot's update has no UPDATE_ID.",
)
@click.option(
    "--failed",
    is_flag=True,
    help="Replay spooled updates and every failed update (not processed, not archived).",
)
def replay(update_ids: tuple[int, ...], rows: tuple[int, ...], failed: bool) -> None:
    """Handle logged payment updates again (exactly-once holds: a done charge is skipped).

    Prints each update's outcome. One still not applied afterwards (kept again with its
    error, or its handling raised) is "failed", and the command exits 1. Each replay is
    recorded in the audit trail with your OS user name.
    """
    if not update_ids and not rows and not failed:
        raise click.UsageError("give UPDATE_ID..., --row ROW_ID or --failed")
    total = failures = 0
    for result in replay_updates(get_state(), update_ids, rows=rows, failed=failed, actor=cli_actor()):
        total += 1
        if result.ok:
            click.echo(f"{result.label}: {result.detail}")
        else:
            failures += 1
            click.echo(f"{result.label}: failed: {result.detail}", err=True)
    if not failures:
        click.echo(f"replayed {total} of {total} update(s)")
        return
    click.echo(
        f"replayed {total - failures} of {total} update(s); {failures} failed: fix the cause and "
        "replay again, or archive it (flask stars archive ROW_ID --reason TEXT)",
        err=True,
    )
    raise SystemExit(1)


@click.command("archive")
@with_appcontext
@stars_errors
@click.argument("row_ids", nargs=-1, type=int, required=True)
@click.option(
    "--reason",
    required=True,
    help="Why it needs no replay (kept with the row and in the audit trail with your OS user name).",
)
def archive(row_ids: tuple[int, ...], reason: str) -> None:
    """Archive failed updates (their stars_updates row ids; see flask stars updates).

    An archived update stays in stars_updates with who archived it, when and why, and no
    longer counts as failed: not in replay --failed, the dashboard's warning or the
    flask_stars_failed_updates gauge. `flask stars replay --row ROW_ID` still replays it.
    Only a failed update can be archived; the command exits 1 if any was refused.
    """
    if not reason.strip():
        raise click.BadParameter("give a reason", param_hint="--reason")
    state, actor = get_state(), cli_actor()
    refused = 0
    for row_id in row_ids:
        try:
            row = archive_update(state, row_id, reason=reason, actor=actor)
        except (UpdateNotFound, UpdateNotArchivable) as exc:
            refused += 1
            click.echo(f"row {row_id}: refused: {exc.message}", err=True)
            continue
        update = row.update_id if row.update_id is not None else "(no update_id)"
        click.echo(f"row {row_id}: archived ({row.kind}, update {update})")
    if refused:
        raise SystemExit(1)


@click.command("updates")
@with_appcontext
@stars_errors
@click.option("--archived", is_flag=True, help="Archived updates (who, when, why) instead of failed ones.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
def updates_cmd(archived: bool, limit: int, as_json: bool) -> None:
    """Failed updates (to replay or archive), newest first, with their row ids and errors."""
    where = reports.archived_updates() if archived else reports.failed_updates()
    stmt = sa.select(UpdateLog).where(where).order_by(UpdateLog.id.desc()).limit(limit)
    print_rows([_update_row(u, archived, as_json) for u in get_state().session.scalars(stmt)], as_json)


def _update_row(u: UpdateLog, archived: bool, as_json: bool) -> dict[str, Any]:
    row: dict[str, Any] = {
        "row": u.id,
        "update_id": "" if u.update_id is None else u.update_id,
        "kind": u.kind,
        "received_at": u.received_at.isoformat(timespec="seconds"),
        "attempts": u.attempts,
    }
    if archived:
        row.update(
            processed=u.processed,
            archived_at=u.archived_at.isoformat(timespec="seconds") if u.archived_at else "",
            archived_by=u.archived_by or "",
            reason=u.archived_reason or "",
        )
    else:
        row["error"] = u.error or "" if as_json else (u.error or "")[:80]
    return row


#: What a refund whose debit callback failed leaves: ``operations.refund`` rolled the ledger back,
#: so the payment stays as it was; Telegram may already have given the Stars back, and
#: running the command again then finishes it (``CHARGE_ALREADY_REFUNDED`` is fine).
REFUND_LEFT = (
    "the ledger is unchanged. Fix it and run this command again: "
    "a charge Telegram already refunded is then recorded and debited once"
)


@click.command("refund")
@with_appcontext
@stars_errors
@click.argument("charge_id", required=False)
@click.option(
    "--reason",
    default=None,
    help="Why (kept in the audit trail with your OS user name, sent with the payment_refunded signal).",
)
@click.option("--due", is_flag=True, help="Finish every due refund of a second payment for a paid order.")
def refund(charge_id: str | None, reason: str | None, due: bool) -> None:
    """Refund a payment: refundStarPayment, then the ledger and your debit callback, once."""
    if due == bool(charge_id):
        raise click.UsageError("give CHARGE_ID or --due")
    state = get_state()
    charge_ids = due_refunds(state) if due else [charge_id or ""]
    end_read(state)
    for one in charge_ids:
        step(f"refund of {one}", REFUND_LEFT)
        given = reason or ("second payment for a paid order" if due else None)
        payment = refund_payment(state, one, given, actor=cli_actor())
        click.echo(f"{one}: {payment.status} ({payment.stars} Stars back to user {payment.payer_id})")
    if due:
        click.echo(f"{len(charge_ids)} due refund(s) finished")


# --- payments and orders: one listing, two tables --------------------------------------------


def _listing(
    name: str,
    model: type[Payment] | type[Order],
    *,
    newest_first: Any,
    statuses: Sequence[str],
    row: Callable[[Any], dict[str, Any]],
    doc: str,
) -> click.Command:
    """``flask stars NAME``: the newest rows of ``model`` (ordered by ``newest_first``,
    descending), with ``--user``, ``--status``, ``--limit`` and ``--json``."""

    @click.command(name, help=doc)
    @with_appcontext
    @stars_errors
    @click.option("--user", "user_id", type=int, help=f"Only this user's {name}.")
    @click.option("--status", type=click.Choice(list(statuses)))
    @click.option("--limit", type=int, default=20, show_default=True)
    @click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
    def command(user_id: int | None, status: str | None, limit: int, as_json: bool) -> None:
        stmt = sa.select(model).order_by(newest_first.desc()).limit(limit)
        if user_id is not None:
            stmt = stmt.where(model.user_id == user_id)
        if status:
            stmt = stmt.where(model.status == status)
        print_rows([row(found) for found in get_state().session.scalars(stmt)], as_json)

    return command


def _payment_row(p: Payment) -> dict[str, Any]:
    return {
        "charge_id": p.telegram_payment_charge_id,
        "user": p.user_id,
        "pack": p.pack_id,
        "stars": p.stars,
        "status": p.status,
        "credited": p.credited,
        "problem": p.problem or "",
        "paid_at": p.paid_at.isoformat(timespec="seconds"),
    }


def _order_row(o: Order) -> dict[str, Any]:
    return {
        "order": o.id,
        "user": o.user_id,
        "pack": o.pack_id,
        "stars": o.stars,
        "status": o.status,
        "created_at": o.created_at.isoformat(timespec="seconds"),
    }


payments = _listing(
    "payments",
    Payment,
    newest_first=Payment.id,
    statuses=("paid", "refunded"),
    row=_payment_row,
    doc="The newest payments in the ledger.",
)
orders = _listing(
    "orders",
    Order,
    newest_first=Order.created_at,
    statuses=("pending", "paid", "refunded", "expired", "failed"),
    row=_order_row,
    doc="The newest orders.",
)

COMMANDS = (refund, replay, archive, updates_cmd, payments, orders)
