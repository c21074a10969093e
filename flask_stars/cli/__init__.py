"""``flask stars ...``: the operator's commands, one module per topic.

``webhook`` (set-webhook, webhook-info, delete-webhook), ``ledger`` (refund, replay,
archive, updates, payments, orders), ``reconcile``, ``reports`` (balance, stats,
subscriptions, subscription) and ``admin`` (migrate, prune, hand-over, sandbox); ``base``
holds what they share: the error edge (a domain error is one line and exit code 1, never a
traceback) and tables or JSON. The setup code (``wiring.mount_blueprint``) calls
``register_cli`` when ``stars_bp`` is registered, so the HTTP blueprint never imports this.
"""

from __future__ import annotations

import click

from . import admin, ledger, reconcile, reports, webhook

COMMANDS: tuple[click.Command, ...] = (
    *webhook.COMMANDS,
    *ledger.COMMANDS,
    *reconcile.COMMANDS,
    *reports.COMMANDS,
    *admin.COMMANDS,
)


def register_cli(group: click.Group) -> None:
    """Add the commands to ``group``: ``stars_bp.cli``, which Flask mounts as ``flask stars``."""
    for command in COMMANDS:
        group.add_command(command)
