"""Alembic migrations for flask_stars' ``stars_*`` tables.

Two ways to use them:

* ``flask stars migrate``: flask_stars keeps its own history in ``stars_alembic_version``,
  apart from the host's (set ``STARS_CREATE_TABLES = False`` then).
* From the host's Flask-Migrate/Alembic env: add ``VERSIONS_DIR`` to ``version_locations``
  in ``migrations/alembic.ini``, pass ``include_object=flask_stars.include_object`` so
  autogenerate leaves ``stars_*`` alone, and run ``flask db upgrade heads`` (the
  revisions carry the branch label ``flask_stars``).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Connection
    from sqlalchemy.engine.reflection import Inspector

SCRIPT_DIR = os.path.dirname(os.path.abspath(__file__))
VERSIONS_DIR = os.path.join(SCRIPT_DIR, "versions")
VERSION_TABLE = "stars_alembic_version"
#: The newest revision (``tests/setup/test_migrations.py`` checks it against the scripts).
HEAD = "stars_0005"


def alembic_config(connection: Connection | None = None, url: str | None = None) -> Any:
    """An Alembic ``Config`` for flask_stars' own history (``stars_alembic_version``)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", SCRIPT_DIR)
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", VERSIONS_DIR)
    if url:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def upgrade(connection: Connection, revision: str = "heads") -> None:
    """Bring flask_stars' tables up to ``revision`` on an open SQLAlchemy connection."""
    from alembic import command

    command.upgrade(alembic_config(connection), revision)


def _revision_of_unversioned(inspector: Inspector, tables: set[str]) -> str:
    """The revision an unversioned schema matches: tables made by ``create_all`` (of this
    release, or of one older than the version table), told apart by what each revision added.

    A new revision that adds a table or column adds its mark here, newest first.
    """
    if "stars_audit" in tables:
        return "stars_0005"
    if "stars_reconcile_runs" in tables:
        return "stars_0004"
    if "pack_title" in {c["name"] for c in inspector.get_columns("stars_orders")}:
        return "stars_0003"
    return "stars_0002" if "stars_meta" in tables else "stars_0001"


def ensure_current(connection: Connection) -> None:
    """Create flask_stars' tables, or bring existing ones up to the head revision.

    Run on first use when ``STARS_CREATE_TABLES`` is on. Tables made by ``create_all`` of
    an earlier release have no version row: their revision is read off the schema and
    stamped first, so upgrading the package upgrades the tables that already hold money
    instead of failing on a missing column. Once at the head it costs one query.
    """
    import sqlalchemy as sa
    from alembic import command

    # Workers starting together take turns (their transactions serialise here), so two
    # never stamp or create the same tables at once.
    if connection.dialect.name == "postgresql":
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('flask_stars:migrations'))"))
    elif connection.dialect.name == "sqlite" and not connection.connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    inspector = sa.inspect(connection)
    tables = set(inspector.get_table_names())
    has_orders = "stars_orders" in tables
    if VERSION_TABLE in tables:
        versions = connection.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
        if has_orders and list(versions) == [HEAD]:
            return
        if not has_orders:
            # A version row left behind by tables someone dropped: start from nothing.
            command.stamp(alembic_config(connection), "base", purge=True)
    elif has_orders:
        command.stamp(alembic_config(connection), _revision_of_unversioned(inspector, tables))
    upgrade(connection)
