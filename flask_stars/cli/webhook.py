"""``flask stars set-webhook``, ``webhook-info``, ``delete-webhook``: where Telegram delivers."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from ..botapi import PAYMENT_UPDATES
from ..state import get_state
from .base import stars_errors


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


COMMANDS = (set_webhook, webhook_info, delete_webhook)
