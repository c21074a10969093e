"""Alembic environment for ``flask stars migrate``: only flask_stars' tables, own version table."""

from __future__ import annotations

from typing import Any

from alembic import context

from flask_stars.migrations import VERSION_TABLE
from flask_stars.models import StarsModel

config = context.config
connection = config.attributes.get("connection")


def _configure(**kwargs: Any) -> None:
    context.configure(
        target_metadata=StarsModel.metadata,
        version_table=VERSION_TABLE,
        render_as_batch=True,
        compare_type=True,
        **kwargs,
    )


if context.is_offline_mode():
    _configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif connection is not None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()
else:
    from sqlalchemy import create_engine

    url = config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("flask_stars migrations need a connection or sqlalchemy.url")
    engine = create_engine(url)
    with engine.connect() as conn:
        _configure(connection=conn)
        with context.begin_transaction():
            context.run_migrations()
