"""Fixtures: a host app served on 127.0.0.1, the Bot API sandbox, and a database.

The database is SQLite in a temporary folder, or PostgreSQL when
``STARS_TEST_DATABASE_URL`` is set (``.ci/run`` runs the suite both ways).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from example_app import models as example_models
from flask_stars.migrations import VERSION_TABLE
from flask_stars.models import StarsModel
from flask_stars.sandbox import Sandbox
from flask_stars.testing import TEST_TOKEN, connect, serve
from tests.support import figures, hostapp
from tests.support.shop import Shop


@pytest.fixture
def figure() -> Callable[[str], None]:
    """Record a figure (deliveries, duplicates, kills, inputs tried) for the end-of-run summary."""
    return figures.record


def pytest_configure(config: Any) -> None:
    if os.environ.get("STARS_TEST_PGBOUNCER"):
        # Behind PgBouncer in transaction mode every engine of this process (the tests' own
        # and the apps' they serve in-process) prepares no statements, as the guide says a
        # host's must: a name prepared on one server connection clashes on another.
        sa.event.listen(sa.engine.Engine, "connect", _no_prepared_statements)


def _no_prepared_statements(dbapi_connection: Any, _record: Any) -> None:
    if hasattr(dbapi_connection, "prepare_threshold"):
        dbapi_connection.prepare_threshold = None


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if figures.FIGURES:
        terminalreporter.section("flask_stars figures")
        for line in figures.FIGURES:
            terminalreporter.write_line(line)


def _reset_database(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        hostapp.HostBase.metadata.drop_all(conn)
        example_models.Base.metadata.drop_all(conn)  # the example app's, for tests that run it
        StarsModel.metadata.drop_all(conn)
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {VERSION_TABLE}"))
    engine.dispose()


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    url = os.environ.get("STARS_TEST_DATABASE_URL")
    if url:
        _reset_database(url)
        return url
    return f"sqlite:///{tmp_path / 'host.db'}"


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(token=TEST_TOKEN) as tg:
        yield tg


def _dispose_engines(app: Any) -> None:
    with app.app_context():
        for engine in hostapp.db.engines.values():
            engine.dispose()


@pytest.fixture
def make_shop(database_url: str, sandbox: Sandbox) -> Iterator[Callable[..., Shop]]:
    """Build and serve a host app: ``make_shop(mount="extension", STARS_ORDER_TTL=60, ...)``."""
    with ExitStack() as stack:

        def factory(**config: Any) -> Shop:
            config.setdefault("STARS_API_URL", sandbox.url)
            app = hostapp.create_app(database_url, **config)
            stack.callback(_dispose_engines, app)
            base = stack.enter_context(serve(app))
            connect(app, sandbox, base)
            return Shop(app, base, sandbox)

        yield factory


@pytest.fixture
def shop(make_shop: Callable[..., Shop]) -> Shop:
    return make_shop()
