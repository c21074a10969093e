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
