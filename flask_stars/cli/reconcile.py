"""``flask stars reconcile``: match Telegram's Stars transactions against the ledger."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from flask.cli import with_appcontext

from ..audit import cli_actor
from ..reconcile import ReconcileReport
from ..reconcile import reconcile as run_reconcile
from ..state import StarsState, get_state
from .base import print_rows, stars_errors


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
        click.echo(json.dumps(_as_json(report, dry_run), indent=2))
    else:
        _summary(state, report, dry_run)


def _as_json(report: ReconcileReport, dry_run: bool) -> dict[str, Any]:
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
    return body


def _summary(state: StarsState, report: ReconcileReport, dry_run: bool) -> None:
    title = "reconcile (dry run: nothing changed)" if dry_run else "reconcile"
    print_rows([{title: label, "count": value} for label, value in report.rows()], False)
    for example in report.examples:
        click.echo(f"  unmatched {example['id']}: {example['amount']} Stars, {example['why']}")
    run = "dry run" if dry_run else f"run {report.run_id}"
    click.echo(f"{run}: positions {report.start_offset} to {report.end_offset} of {state.bot_identity}")
    if report.warning:
        click.echo(f"Warning: {report.warning}")
    if report.note:
        click.echo(f"Note: {report.note}")


COMMANDS = (reconcile,)
