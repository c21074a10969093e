"""Alembic migrations give exactly the schema that create_all gives."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from flask_stars.migrations import VERSION_TABLE, upgrade
from flask_stars.models import StarsModel


def _schema(engine):
    inspector = sa.inspect(engine)
    out = {}
    for table in sorted(
        t for t in inspector.get_table_names() if t.startswith("stars_") and t != VERSION_TABLE
    ):
        out[table] = {
            "columns": {
                c["name"]: (str(c["type"]).split("(")[0], c["nullable"]) for c in inspector.get_columns(table)
            },
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in inspector.get_indexes(table)
            ),
            "uniques": sorted(tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)),
            "fks": sorted(
                (tuple(f["constrained_columns"]), f["referred_table"])
                for f in inspector.get_foreign_keys(table)
            ),
        }
    return out


def test_upgrade_of_an_empty_database_matches_create_all(database_url):
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as conn:
            upgrade(conn)
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn,
                opts={
                    "compare_type": True,
                    "include_object": lambda obj, name, type_, *a: name != VERSION_TABLE,
                },
            )
            diff = compare_metadata(context, StarsModel.metadata)
        assert diff == [], diff
        migrated = _schema(engine)
        assert set(migrated) == {
            "stars_orders",
            "stars_payments",
            "stars_refunds",
            "stars_updates",
            "stars_subscriptions",
            "stars_meta",
        }

        with engine.begin() as conn:
            StarsModel.metadata.drop_all(conn)
            conn.execute(sa.text(f"DROP TABLE {VERSION_TABLE}"))
            StarsModel.metadata.create_all(conn)
        assert _schema(engine) == migrated
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {VERSION_TABLE}"))
        engine.dispose()


def test_flask_stars_migrate_command(tmp_path):
    from flask import Flask

    from flask_stars import stars_bp
    from flask_stars.testing import TEST_TOKEN
    from tests.hostapp import PACKS

    app = Flask(__name__)
    url = f"sqlite:///{tmp_path / 'm.db'}"
    app.config.update(
        SQLALCHEMY_DATABASE_URI=url,
        STARS_BOT_TOKEN=TEST_TOKEN,
        STARS_PACKS=PACKS,
        STARS_CREDIT_CALLBACK=lambda p: None,
        STARS_CREATE_TABLES=False,
    )
    app.register_blueprint(stars_bp)
    result = app.test_cli_runner().invoke(args=["stars", "migrate"])
    assert result.exit_code == 0, result.output
    tables = sa.inspect(sa.create_engine(url)).get_table_names()
    assert {"stars_orders", "stars_payments", "stars_updates", "stars_refunds", VERSION_TABLE} <= set(tables)


def test_head_names_the_newest_revision():
    from alembic.script import ScriptDirectory

    from flask_stars.migrations import HEAD, alembic_config

    assert ScriptDirectory.from_config(alembic_config()).get_heads() == [HEAD]
