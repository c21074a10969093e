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

SCRIPT_DIR = os.path.dirname(os.path.abspath(__file__))
VERSIONS_DIR = os.path.join(SCRIPT_DIR, "versions")
VERSION_TABLE = "stars_alembic_version"


def alembic_config(connection: object = None, url: str | None = None) -> object:
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


def upgrade(connection: object, revision: str = "heads") -> None:
    """Bring flask_stars' tables up to ``revision`` on an open SQLAlchemy connection."""
    from alembic import command

    command.upgrade(alembic_config(connection), revision)  # type: ignore[arg-type]


def _revision_of_unversioned(connection: object) -> str | None:
    """The revision an unversioned schema matches (tables made by ``create_all`` of an
    earlier release), or None when there are no flask_stars tables yet."""
    import sqlalchemy as sa

    inspector = sa.inspect(connection)
    tables = set(inspector.get_table_names())
    if "stars_orders" not in tables:
        return None
    if "pack_title" in {c["name"] for c in inspector.get_columns("stars_orders")}:
        return "stars_0003"
    return "stars_0002" if "stars_meta" in tables else "stars_0001"


def ensure_current(connection: object) -> None:
    """Create flask_stars' tables, or bring existing ones up to the head revision.

    Tables made by ``create_all`` of an earlier release have no version row: their
    revision is read off the schema and stamped first, so an upgrade of the package
    upgrades the tables that already hold money instead of failing on a missing column.
    """
    import sqlalchemy as sa
    from alembic import command

    inspector = sa.inspect(connection)
    if VERSION_TABLE not in inspector.get_table_names():
        found = _revision_of_unversioned(connection)
        if found is not None:
            command.stamp(alembic_config(connection), found)  # type: ignore[arg-type]
    upgrade(connection)
