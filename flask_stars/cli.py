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

from .botapi import PAYMENT_UPDATES
from .errors import BotApiError, StarsError
from .ledger import due_refunds
from .ledger import refund as refund_payment
from .migrations import upgrade
from .models import Order, Payment, Subscription, utcnow
from .reconcile import ReconcileReport
from .reconcile import reconcile as run_reconcile
from .retention import prune_updates
from .state import StarsState, get_state
from .subscriptions import get_subscription, set_canceled
from .updates import replay as replay_updates

F = TypeVar("F", bound=Callable[..., Any])


def stars_errors(fn: F) -> F:
    """Turn a domain error into one clear line and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except BotApiError as exc:
            raise click.ClickException(f"Telegram said: {exc.description}") from None
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
    "--failed",
    is_flag=True,
    help="Replay spooled updates and every logged payment update not yet processed.",
)
def replay(update_ids: tuple[int, ...], failed: bool) -> None:
    """Handle logged payment updates again (exactly-once holds: a done charge is skipped)."""
    if not update_ids and not failed:
        raise click.UsageError("give UPDATE_ID... or --failed")
    total = errors = 0
    for label, result in replay_updates(get_state(), update_ids, failed=failed):
        total += 1
        if isinstance(result, Exception):
            errors += 1
            click.echo(f"{label}: failed: {result}", err=True)
        else:
            click.echo(f"{label}: {result.detail}")
    click.echo(f"replayed {total - errors} of {total} update(s)")
    if errors:
        raise SystemExit(1)


def _refund_one(state: StarsState, charge_id: str, reason: str | None) -> Payment:
    """``ledger.refund``, with a failure of the host's code (the debit callback) as one line.

    ``ledger.refund`` rolls the ledger back when the debit callback (or the database)
    fails, so the payment stays as it was; Telegram may already have given the Stars back,
    and running the command again then finishes it (``CHARGE_ALREADY_REFUNDED`` is fine).
    """
    try:
        return refund_payment(state, charge_id, reason)
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
    "--reason", default=None, help="Why (kept in the log and sent with the payment_refunded signal)."
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
    exactly once), applies refunds the ledger missed, and reports what it cannot match.
    Each run (not --dry-run) is recorded in stars_reconcile_runs, a failed one with its
    error; the dashboard's Reconcile page lists them.
    """
    tty = sys.stdout.isatty() and not as_json

    def progress(report: ReconcileReport) -> None:
        line = f"read {report.read} transaction(s) (offset {report.end_offset})"
        if tty:
            click.echo("\r" + line, nl=False)
        elif not as_json:
            click.echo(line)

    report = run_reconcile(get_state(), dry_run=dry_run, full=full, on_page=progress)
    if tty:
        click.echo()
    if as_json:
        body = {key.replace(" ", "_"): value for key, value in report.rows()}
        click.echo(json.dumps({**body, "dry_run": dry_run, "unmatched_examples": report.examples}, indent=2))
        return
    title = "reconcile (dry run: nothing changed)" if dry_run else "reconcile"
    _rows([{title: label, "count": value} for label, value in report.rows()], False)
    for example in report.examples:
        click.echo(f"  unmatched {example['id']}: {example['amount']} Stars, {example['why']}")


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
    refund,
    reconcile,
    prune,
    balance,
    stats,
    subscriptions_cmd,
    subscription_cmd,
    migrate,
    sandbox,
    payments,
    orders,
)


def register_cli(bp: Blueprint) -> None:
    """Add the commands to the blueprint's ``flask stars`` group."""
    for command in COMMANDS:
        bp.cli.add_command(command)
