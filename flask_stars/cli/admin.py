"""Looking after the tables and the app: ``migrate``, ``prune``, ``hand-over``, ``sandbox``."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext

from .. import audit, binding
from ..migrations import upgrade
from ..retention import prune_updates
from ..state import get_state
from .base import stars_errors


@click.command("migrate")
@with_appcontext
@stars_errors
@click.option("--revision", default="heads", show_default=True)
def migrate(revision: str) -> None:
    """Create or upgrade the stars_* tables with Alembic (history in stars_alembic_version).

    Use it with STARS_CREATE_TABLES = False, or wire flask_stars.migrations.VERSIONS_DIR
    into your own Flask-Migrate env instead (see the docs: Upgrading).
    """
    engine = get_state().database.engine
    with engine.begin() as conn:
        upgrade(conn, revision)
    click.echo(f"flask_stars tables are at {revision}")


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
        click.echo(_what_hand_over_would_do(recorded, new))
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


def _what_hand_over_would_do(recorded: str | None, new: str) -> str:
    """What ``hand-over`` without ``--yes`` says: the tables' bot (``recorded``) and the app's (``new``)."""
    if recorded is None:
        return (
            f"No bot is recorded for these stars_* tables yet: their first use records {new} "
            "(--yes records it now). Nothing changed."
        )
    return (
        f"The stars_* tables belong to {binding.describe(recorded)}; this app speaks for "
        f"{new}. `flask stars hand-over --yes` hands them to {new}: every row stays "
        "(payments, orders, updates, the audit trail), and apps of the old bot are "
        "refused on them from then on (stop them first). Nothing changed."
    )


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
    from ..initdata import ed25519_public_key_hex, new_ed25519_key
    from ..sandbox import SANDBOX_TOKEN, Sandbox, attach_sandbox, use_sandbox_token

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    state = get_state(app)
    # The sandbox's own token, never STARS_BOT_TOKEN (which may be the production bot's),
    # and its own Ed25519 key, never Telegram's: initData the sandbox page signs must be
    # worthless to the real bot, in HMAC and in ed25519 mode alike.
    init_data_key = new_ed25519_key()
    use_sandbox_token(app, SANDBOX_TOKEN, init_data_public_key=ed25519_public_key_hex(init_data_key))
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


COMMANDS = (migrate, prune, hand_over, sandbox)
