"""`flask stars` is added by the setup code, whichever way the app mounts flask_stars, and
the edges stay edges: the HTTP blueprint does not import the CLI, the CLI and the dashboard
do not import each other, and the reads they share sit below both (issue 19, point 5)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.setup.test_structure import import_graph
from tests.support import hostapp

COMMANDS = {
    "archive",
    "balance",
    "delete-webhook",
    "hand-over",
    "migrate",
    "orders",
    "payments",
    "prune",
    "reconcile",
    "refund",
    "replay",
    "sandbox",
    "set-webhook",
    "stats",
    "subscription",
    "subscriptions",
    "updates",
    "webhook-info",
}


@pytest.mark.parametrize("mount", ["blueprint", "extension"])
def test_flask_stars_has_every_command_however_the_app_mounts_it(tmp_path: Path, mount: str) -> None:
    app = hostapp.create_app(f"sqlite:///{tmp_path / 'cli.db'}", mount=mount)
    runner = app.test_cli_runner()
    listed = runner.invoke(args=["stars", "--help"])
    assert listed.exit_code == 0, listed.output
    assert set(app.cli.commands["stars"].commands) == COMMANDS
    for name in COMMANDS:
        assert name in listed.output
    payments = runner.invoke(args=["stars", "payments", "--json"])
    assert payments.exit_code == 0 and payments.output.strip() == "[]"


def test_the_http_blueprint_does_not_import_the_cli() -> None:
    graph = import_graph()
    cli = {m for m in graph if m == "flask_stars.cli" or m.startswith("flask_stars.cli.")}
    assert cli
    assert not graph["flask_stars.blueprint"] & cli
    assert "flask_stars.cli" in graph["flask_stars.wiring"]  # the setup code adds it


def test_the_cli_and_the_dashboard_share_reads_from_below_and_not_each_other() -> None:
    graph = import_graph()
    edges = {m for m in graph if m.startswith(("flask_stars.cli", "flask_stars.dashboard"))}
    cli = {m for m in edges if m.startswith("flask_stars.cli")}
    dashboard = edges - cli
    for module in cli:
        assert not graph[module] & dashboard, module
    for module in dashboard:
        assert not graph[module] & cli, module
    assert not graph["flask_stars.reports"] & edges
    assert "flask_stars.reports" in graph["flask_stars.cli.reports"]
    assert "flask_stars.reports" in graph["flask_stars.dashboard.views.overview"]
