"""``flask stars ...``: the operator's commands.

Each command is a module-level click command; ``register_cli`` adds them to the
blueprint's ``flask stars`` group. Domain errors end as one line and exit code 1
(``click.ClickException``), never a traceback.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

import click
import sqlalchemy as sa
from flask import Blueprint, current_app
from flask.cli import with_appcontext

from . import audit, binding
from .archive import archive_update
from .audit import cli_actor
from .botapi import PAYMENT_UPDATES
from .errors import BotApiError, StarsError, UpdateNotArchivable, UpdateNotFound
from .ledger import due_refunds
from .ledger import refund as refund_payment
from .migrations import upgrade
from .models import Order, Payment, Subscription, UpdateLog, utcnow
from .reconcile import ReconcileReport
from .reconcile import reconcile as run_reconcile
from .retention import prune_updates
from .state import StarsState, get_state
from .subscriptions import get_subscription, set_canceled
from .updates import replay as replay_updates

F = TypeVar("F", bound=Callable[..., Any])


def stars_errors(fn: F) -> F:
    """Turn a domain error into one clear line and exit code 1.

    A Bot API failure says which it was: "Telegram said: ..." when Telegram answered with
    an error, "Telegram could not be reached (...)" when no answer came.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except BotApiError as exc:
            raise click.ClickException(exc.summary) from None
        except StarsError as exc:
            raise click.ClickException(exc.message) from None

    return wrapper  # type: ignore[return-value]


def _rows(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(rows, default=str, ensure_ascii=False, indent=2))
        return
    if not rows:
        click.echo("(none)")
        return
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    click.echo("  ".join(c.ljust(widths[c]) for c in columns).rstrip())
    for row in rows:
        click.echo("  ".join(str(row[c]).ljust(widths[c]) for c in columns).rstrip())


@click.command("set-webhook")
@with_appcontext
@stars_errors
@click.argument("url")
@click.option(
    "--max-connections",
    type=click.IntRange(1, 100),
    default=None,
    help="Telegram's parallel deliveries (1-100, default 40).",
)
@click.option(
    "--drop-pending",
    is_flag=True,
    help="Drop updates Telegram is holding (never do this with payments pending).",
)
def set_webhook(url: str, max_connections: int | None, drop_pending: bool) -> None:
    """Point Telegram at URL (your public https://.../stars/webhook), with the secret.

    allowed_updates always includes message and pre_checkout_query: Telegram keeps the
    last list it was given, and a list without them silently breaks payments.
    """
    state = get_state()
    if not url.startswith("https://") and not state.settings.api_url:
        click.echo("warning: Telegram only delivers webhooks to https:// URLs", err=True)
    if drop_pending:
        state.gateway.delete_webhook(drop_pending_updates=True)
    state.gateway.set_webhook(url, state.settings.webhook_secrets[0], PAYMENT_UPDATES, max_connections)
    click.echo(f"Webhook set to {url} (allowed updates: {', '.join(PAYMENT_UPDATES)})")


@click.command("webhook-info")
@with_appcontext
@stars_errors
def webhook_info() -> None:
    """Show what Telegram knows of the webhook (URL, pending updates, last error)."""
    info = get_state().gateway.webhook_info()
    for key, value in info.items():
        click.echo(f"{key}: {value}")


@click.command("delete-webhook")
@with_appcontext
@stars_errors
def delete_webhook() -> None:
    """Remove the webhook (Telegram keeps pending updates for 24 h)."""
    get_state().gateway.delete_webhook()
    click.echo("Webhook deleted")


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
    where = UpdateLog.archived_at.is_not(None) if archived else UpdateLog.failed()
    stmt = sa.select(UpdateLog).where(where).order_by(UpdateLog.id.desc()).limit(limit)
    rows = []
    for u in get_state().session.scalars(stmt):
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
        rows.append(row)
    _rows(rows, as_json)


def _refund_one(state: StarsState, charge_id: str, reason: str | None) -> Payment:
    """``ledger.refund`` as the OS user (audit trail), with a failure of the host's code (the
    debit callback) as one line.

    ``ledger.refund`` rolls the ledger back when the debit callback (or the database)
    fails, so the payment stays as it was; Telegram may already have given the Stars back,
    and running the command again then finishes it (``CHARGE_ALREADY_REFUNDED`` is fine).
    """
    try:
        return refund_payment(state, charge_id, reason, actor=cli_actor())
    except StarsError:
        raise
    except Exception as exc:
        state.session.rollback()
        raise click.ClickException(
            f"refund of {charge_id} failed: {exc.__class__.__name__}: {exc} (your debit callback "
            "or the database); the ledger is unchanged. Fix it and run this command again: "
            "a charge Telegram already refunded is then recorded and debited once"
        ) from None


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
    for one in charge_ids:
        payment = _refund_one(state, one, reason or ("second payment for a paid order" if due else None))
        click.echo(f"{one}: {payment.status} ({payment.stars} Stars back to user {payment.payer_id})")
    if due:
        click.echo(f"{len(charge_ids)} due refund(s) finished")


@click.command("reconcile")
@with_appcontext
@stars_errors
@click.option("--dry-run", is_flag=True, help="Show what would change; change nothing.")
@click.option("--full", is_flag=True, help="Read every transaction again, not only new ones.")
@click.option("--json", "as_json", is_flag=True, help="The summary as JSON.")
def reconcile(dry_run: bool, full: bool, as_json: bool) -> None:
    """Match Telegram's Stars transactions (getStarTransactions) against the ledger.

    Credits paid invoices whose webhook never arrived (through the webhook's own code,
    exactly once, dated when Telegram charged them), applies refunds the ledger missed,
    and reports what it cannot match. It resumes at this bot's saved position after
    checking that Telegram still lists the same transaction there; if not, it reads from
    the start and prints a warning. Each run (not --dry-run) is recorded in
    stars_reconcile_runs and the audit trail (as your OS user); the dashboard's Reconcile
    page lists them. While another run is under way it exits 1 and says which.
    """
    tty = sys.stdout.isatty() and not as_json

    def progress(report: ReconcileReport) -> None:
        line = f"read {report.read} transaction(s) (offset {report.end_offset})"
        if tty:
            click.echo("\r" + line, nl=False)
        elif not as_json:
            click.echo(line)

    state = get_state()
    report = run_reconcile(state, dry_run=dry_run, full=full, on_page=progress, actor=cli_actor())
    if tty:
        click.echo()
    if as_json:
        body: dict[str, Any] = {key.replace(" ", "_"): value for key, value in report.rows()}
        body.update(
            dry_run=dry_run,
            run_id=report.run_id,
            outcome=report.outcome,
            warning=report.warning,
            note=report.note,
            saved_offset=report.saved_offset,
            start_offset=report.start_offset,
            end_offset=report.end_offset,
            unmatched_examples=report.examples,
        )
        click.echo(json.dumps(body, indent=2))
        return
    title = "reconcile (dry run: nothing changed)" if dry_run else "reconcile"
    _rows([{title: label, "count": value} for label, value in report.rows()], False)
    for example in report.examples:
        click.echo(f"  unmatched {example['id']}: {example['amount']} Stars, {example['why']}")
    run = "dry run" if dry_run else f"run {report.run_id}"
    click.echo(f"{run}: positions {report.start_offset} to {report.end_offset} of {state.bot_identity}")
    if report.warning:
        click.echo(f"Warning: {report.warning}")
    if report.note:
        click.echo(f"Note: {report.note}")


@click.command("prune")
@with_appcontext
@stars_errors
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@click.option(
    "--days",
    type=click.IntRange(min=1),
    default=None,
    help="Keep this many days instead of STARS_UPDATE_RETENTION_DAYS.",
)
def prune(dry_run: bool, days: int | None) -> None:
    """Delete handled pre-checkout and subscription rows of stars_updates past the retention.

    Money updates (successful_payment, refunded_payment) and rows not processed yet are
    never deleted. Rows go in small batches, so the webhook is never held up for long.
    """
    result = prune_updates(get_state(), days=days, dry_run=dry_run)
    if result.cutoff is None:
        click.echo("STARS_UPDATE_RETENTION_DAYS is None: stars_updates is kept whole, nothing deleted")
        return
    since = result.cutoff.isoformat(timespec="seconds")
    if dry_run:
        click.echo(f"would delete {result.count} update row(s) received before {since} (dry run)")
    else:
        click.echo(f"deleted {result.count} update row(s) received before {since}")


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
    since = utcnow() - timedelta(days=days)
    session = get_state().session
    payments = session.scalars(sa.select(Payment).where(Payment.paid_at >= since)).all()
    table: dict[tuple[str, str], dict[str, Any]] = {}
    for p in payments:
        key = (p.paid_at.date().isoformat(), p.pack_id or "(no order)")
        row = table.setdefault(
            key, {"day": key[0], "pack": key[1], "payments": 0, "stars": 0, "refunded": 0, "net": 0}
        )
        row["payments"] += 1
        row["stars"] += p.stars
        if p.status == "refunded":
            row["refunded"] += p.stars
        row["net"] = row["stars"] - row["refunded"]
    rows = [table[k] for k in sorted(table)]
    if rows and not as_json:
        rows.append(
            {
                "day": "total",
                "pack": "",
                **{k: sum(r[k] for r in rows) for k in ("payments", "stars", "refunded", "net")},
            }
        )
    _rows(rows, as_json)


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
    _rows(rows, as_json)


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


@click.command("migrate")
@with_appcontext
@stars_errors
@click.option("--revision", default="heads", show_default=True)
def migrate(revision: str) -> None:
    """Create or upgrade the stars_* tables with Alembic (history in stars_alembic_version).

    Use it with STARS_CREATE_TABLES = False, or wire flask_stars.migrations.VERSIONS_DIR
    into your own Flask-Migrate env instead (see the README).
    """
    engine = get_state().database.engine
    with engine.begin() as conn:
        upgrade(conn, revision)
    click.echo(f"flask_stars tables are at {revision}")


@click.command("hand-over")
@with_appcontext
@stars_errors
@click.option("--yes", is_flag=True, help="Hand the tables over (without it, only say what would change).")
def hand_over(yes: bool) -> None:
    """Hand this database's stars_* tables over to this app's bot, keeping every row.

    The tables belong to one bot in one environment (production, Telegram's test server or
    the sandbox), recorded on their first use; an app of another bot or environment is
    refused on them. After a deliberate move (the test server's bot goes live, a new bot
    takes over the shop), stop every app of the old bot and run this with the new bot's
    config: it records the new bot, keeps every row, says from which bot to which and
    records it in the audit trail with your OS user name. A new token of the same bot
    (BotFather's revoke) needs no hand-over. Without --yes it explains and changes nothing.
    """
    state = get_state()
    identity = state.bot_identity
    new = binding.describe(identity.key)
    engine = state.database.engine
    state.database.ensure_tables(engine)
    recorded = binding.bound_key(engine)
    if recorded == identity.key:
        click.echo(f"The stars_* tables already belong to {new}: nothing to hand over.")
        return
    if not yes:
        if recorded is None:
            click.echo(
                f"No bot is recorded for these stars_* tables yet: their first use records {new} "
                "(--yes records it now). Nothing changed."
            )
        else:
            click.echo(
                f"The stars_* tables belong to {binding.describe(recorded)}; this app speaks for "
                f"{new}. `flask stars hand-over --yes` hands them to {new}: every row stays "
                "(payments, orders, updates, the audit trail), and apps of the old bot are "
                "refused on them from then on (stop them first). Nothing changed."
            )
        return
    previous = binding.hand_over(engine, identity)
    state.database.check_again()
    old = "no bot" if previous is None else binding.describe(previous)
    audit.record(
        state,
        audit.cli_actor(),
        audit.REBIND,
        target=identity.key,
        detail=f"from {previous or 'none'} to {identity.key}",
    )
    click.echo(f"The stars_* tables were handed over from {old} to {new}; every row is kept.")


@click.command("sandbox")
@with_appcontext
@stars_errors
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=5000, show_default=True)
@click.option("--mini-app", "mini_app", default="/", show_default=True, help="Your Mini App page's path.")
def sandbox(host: str, port: int, mini_app: str) -> None:
    """Run this app with the sandbox playing Telegram: no account, no network.

    The Bot API is emulated on 127.0.0.1 (this process's Bot API calls go there), and
    /stars/sandbox/ plays the Telegram client around your Mini App. The run uses the
    sandbox's own bot token (and the webhook secret derived from it), never
    STARS_BOT_TOKEN, and an Ed25519 key pair made for the run in place of Telegram's (an
    app in ed25519 initData mode trusts its public key for the run), so nothing it signs
    is valid for your real bot. For development only: it serves with Flask's threaded
    development server.
    """
    # Imported here, not at the top: production code never loads the sandbox.
    from .initdata import ed25519_public_key_hex, new_ed25519_key
    from .sandbox import SANDBOX_TOKEN, Sandbox, attach_sandbox

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    state = get_state(app)
    # The sandbox's own token, never STARS_BOT_TOKEN (which may be the production bot's),
    # and its own Ed25519 key, never Telegram's: initData the sandbox page signs must be
    # worthless to the real bot, in HMAC and in ed25519 mode alike.
    init_data_key = new_ed25519_key()
    state.use_sandbox_token(SANDBOX_TOKEN, init_data_public_key=ed25519_public_key_hex(init_data_key))
    # Before anything serves: tables of a real bot refuse the sandbox's (OtherBotsTables).
    state.database.ensure_ready()
    emulator = Sandbox(token=SANDBOX_TOKEN).start()
    state.use_api_url(emulator.url)
    page = attach_sandbox(
        app, emulator, f"http://{host}:{port}", mini_app_url=mini_app, init_data_key=init_data_key
    )
    click.echo(f"Bot API sandbox on {emulator.url}; Telegram never hears of this run.")
    click.echo(f"Open {page} to use your Mini App as a test user.")
    try:
        # app.run() refuses to run inside a `flask` command; werkzeug's server is what it uses.
        from werkzeug.serving import run_simple

        run_simple(host, port, app, threaded=True, use_reloader=False)
    finally:
        emulator.stop()


@click.command("payments")
@with_appcontext
@stars_errors
@click.option("--user", "user_id", type=int, help="Only this user's payments.")
@click.option("--status", type=click.Choice(["paid", "refunded"]))
@click.option("--limit", type=int, default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
def payments(user_id: int | None, status: str | None, limit: int, as_json: bool) -> None:
    """The newest payments in the ledger."""
    stmt = sa.select(Payment).order_by(Payment.id.desc()).limit(limit)
    if user_id is not None:
        stmt = stmt.where(Payment.user_id == user_id)
    if status:
        stmt = stmt.where(Payment.status == status)
    rows = [
        {
            "charge_id": p.telegram_payment_charge_id,
            "user": p.user_id,
            "pack": p.pack_id,
            "stars": p.stars,
            "status": p.status,
            "credited": p.credited,
            "problem": p.problem or "",
            "paid_at": p.paid_at.isoformat(timespec="seconds"),
        }
        for p in get_state().session.scalars(stmt)
    ]
    _rows(rows, as_json)


@click.command("orders")
@with_appcontext
@stars_errors
@click.option("--user", "user_id", type=int, help="Only this user's orders.")
@click.option("--status", type=click.Choice(["pending", "paid", "refunded", "expired", "failed"]))
@click.option("--limit", type=int, default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
def orders(user_id: int | None, status: str | None, limit: int, as_json: bool) -> None:
    """The newest orders."""
    stmt = sa.select(Order).order_by(Order.created_at.desc()).limit(limit)
    if user_id is not None:
        stmt = stmt.where(Order.user_id == user_id)
    if status:
        stmt = stmt.where(Order.status == status)
    rows = [
        {
            "order": o.id,
            "user": o.user_id,
            "pack": o.pack_id,
            "stars": o.stars,
            "status": o.status,
            "created_at": o.created_at.isoformat(timespec="seconds"),
        }
        for o in get_state().session.scalars(stmt)
    ]
    _rows(rows, as_json)


COMMANDS = (
    set_webhook,
    webhook_info,
    delete_webhook,
    replay,
    archive,
    updates_cmd,
    refund,
    reconcile,
    prune,
    balance,
    stats,
    subscriptions_cmd,
    subscription_cmd,
    migrate,
    hand_over,
    sandbox,
    payments,
    orders,
)


def register_cli(bp: Blueprint) -> None:
    """Add the commands to the blueprint's ``flask stars`` group."""
    for command in COMMANDS:
        bp.cli.add_command(command)
