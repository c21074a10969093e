"""Alembic migrations give exactly the schema that create_all gives."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from flask_stars.migrations import HEAD, VERSION_TABLE, ensure_current, upgrade
from flask_stars.models import StarsModel


def _ours(obj, name, type_, *args):
    """Only flask_stars' own tables (not its version table, nor a host's left by other tests)."""
    table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", "")
    return table != VERSION_TABLE and (table or "").startswith("stars_")


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
                    "include_object": _ours,
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
            "stars_reconcile_runs",
            "stars_audit",
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
    from tests.support.hostapp import PACKS

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

    from flask_stars.migrations import alembic_config

    assert ScriptDirectory.from_config(alembic_config()).get_heads() == [HEAD] == ["stars_0005"]


# --- stars_0003 -> stars_0004, on a database that already holds money ------------------------

NEW_INDEXES = [
    ("stars_payments", "ix_stars_payments_paid_at_pack_id_status_stars"),
    ("stars_payments", "ix_stars_payments_problem"),
    ("stars_orders", "ix_stars_orders_created_at_status"),
    ("stars_updates", "ix_stars_updates_unprocessed"),
]
ROWS_0003 = {
    "stars_orders": [
        "INSERT INTO stars_orders (id, user_id, pack_id, stars, status, invoice_url, created_at, expires_at, "
        "paid_at, pack_title, pack_credits, pack_subscription) VALUES ('o1', 42, 'stars_pack_1', 10, 'paid', "
        "'https://t.me/$a', '2026-11-01 10:00:00', '2026-11-01 11:00:00', '2026-11-01 10:01:00', 'Starter', "
        "'{\"coins\": 1000}', false)",
        "INSERT INTO stars_orders (id, user_id, pack_id, stars, status, created_at, expires_at) "
        "VALUES ('o2', 43, 'stars_pack_2', 40, 'pending', '2026-11-02 09:00:00', '2026-11-02 10:00:00')",
    ],
    "stars_payments": [
        "INSERT INTO stars_payments (telegram_payment_charge_id, user_id, payer_id, order_id, pack_id, "
        "stars, currency, invoice_payload, status, credited, paid_at, update_id, raw) VALUES ('ch1', 42, "
        "42, 'o1', 'stars_pack_1', 10, 'XTR', 'order:o1', 'paid', true, '2026-11-01 10:01:00', 7, "
        "'{\"a\": 1}')",
        "INSERT INTO stars_payments (telegram_payment_charge_id, user_id, payer_id, pack_id, stars, "
        "currency, invoice_payload, status, credited, problem, paid_at, refunded_at) VALUES ('ch2', 44, "
        "44, NULL, 5, 'XTR', 'legacy:1', 'refunded', false, 'unknown_order', '2026-11-03 10:00:00', "
        "'2026-11-04 10:00:00')",
    ],
    "stars_updates": [
        "INSERT INTO stars_updates (update_id, digest, kind, received_at, body, processed, processed_at, "
        "attempts) VALUES (7, 'd7', 'successful_payment', '2026-11-01 10:01:00', '{}', true, "
        "'2026-11-01 10:01:00', 1)",
        "INSERT INTO stars_updates (update_id, digest, kind, received_at, body, processed, attempts, error) "
        "VALUES (8, 'd8', 'successful_payment', '2026-11-05 10:00:00', '{}', false, 2, 'boom')",
    ],
    "stars_meta": ["INSERT INTO stars_meta (key, value) VALUES ('reconcile_offset', '2')"],
}


def _made_by(conn, revision):
    """The tables as ``revision`` made them, holding ``ROWS_0003``'s orders, payments and updates."""
    upgrade(conn, revision)
    for statements in ROWS_0003.values():
        for sql in statements:
            conn.execute(sa.text(sql))


def _schema_drift(conn):
    """What differs between flask_stars' tables in ``conn`` and the models (nothing, at head)."""
    context = MigrationContext.configure(conn, opts={"compare_type": True, "include_object": _ours})
    return compare_metadata(context, StarsModel.metadata)


def _contents(conn, columns=None):
    """Every row of the tables ``ROWS_0003`` fills, as strings (of ``columns`` per table, if given:
    a later revision adds columns, NULL on old rows)."""
    out = {}
    for table in ROWS_0003:
        names = ", ".join(columns[table]) if columns else "*"
        out[table] = sorted(
            tuple(str(v) for v in row) for row in conn.execute(sa.text(f"SELECT {names} FROM {table}"))
        )
    return out


def _columns(conn):
    inspector = sa.inspect(conn)
    return {table: [c["name"] for c in inspector.get_columns(table)] for table in ROWS_0003}


@pytest.mark.parametrize("versioned", [True, False], ids=["versioned", "unversioned-create_all"])
def test_a_database_at_0003_holding_money_upgrades_to_0004_intact(database_url, versioned):
    """Made by stars_0003 (with its version row, or as 0003's create_all left it, without one),
    with orders, payments, update rows and reconcile's offset: the first use upgrades it."""
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as conn:
            _made_by(conn, "stars_0003")
            if not versioned:
                conn.execute(sa.text(f"DROP TABLE {VERSION_TABLE}"))
        with engine.connect() as conn:
            columns = _columns(conn)
            before = _contents(conn, columns)
            assert "stars_reconcile_runs" not in sa.inspect(conn).get_table_names()
        assert sum(len(rows) for rows in before.values()) == 7

        with engine.begin() as conn:
            ensure_current(conn)  # what the first request of a new release does

        with engine.connect() as conn:
            assert conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all() == [HEAD]
            assert _contents(conn, columns) == before  # every row as it was
            inspector = sa.inspect(conn)
            assert "stars_reconcile_runs" in inspector.get_table_names()
            for table, index in NEW_INDEXES:
                assert index in {i["name"] for i in inspector.get_indexes(table)}, (table, index)
            assert _schema_drift(conn) == []
            # The new table takes rows; the partial index serves the failed-updates count.
            conn.execute(
                sa.text(
                    "INSERT INTO stars_reconcile_runs (started_at, ok) VALUES ('2026-11-06 10:00:00', true)"
                )
            )
            unprocessed = conn.execute(
                sa.select(sa.func.count())
                .select_from(sa.table("stars_updates", sa.column("processed", sa.Boolean)))
                .where(sa.column("processed", sa.Boolean) == sa.false())
            ).scalar()
            assert unprocessed == 1
            if conn.dialect.name == "sqlite":
                plan = conn.exec_driver_sql(
                    "EXPLAIN QUERY PLAN SELECT count(*) FROM stars_updates WHERE processed = 0"
                ).all()
                assert "ix_stars_updates_unprocessed" in str(plan)
            conn.rollback()
    finally:
        with engine.begin() as conn:
            StarsModel.metadata.drop_all(conn)
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {VERSION_TABLE}"))
        engine.dispose()


def test_unversioned_tables_of_this_release_are_stamped_at_head(database_url):
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as conn:
            StarsModel.metadata.create_all(conn)
        with engine.begin() as conn:
            ensure_current(conn)
        with engine.connect() as conn:
            assert conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all() == [HEAD]
    finally:
        with engine.begin() as conn:
            StarsModel.metadata.drop_all(conn)
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {VERSION_TABLE}"))
        engine.dispose()


# --- stars_0004 -> stars_0005, on a database that already holds money ------------------------

BIG_ID = 2**31 + 5  # past what a 32-bit INTEGER id holds
DAY = "2026-12-01 00:00:00"


@pytest.mark.parametrize("versioned", [True, False], ids=["versioned", "unversioned-create_all"])
def test_a_database_at_0004_holding_money_upgrades_to_0005_intact(database_url, versioned):
    """Made by stars_0004 with orders, payments, failed and handled updates and a reconcile run:
    the first use of this release upgrades it, every row intact, and the growing tables then
    take ids past 2^31 (64-bit on PostgreSQL)."""
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as conn:
            _made_by(conn, "stars_0004")
            conn.execute(
                sa.text(
                    "INSERT INTO stars_reconcile_runs (started_at, ok) VALUES ('2026-11-06 10:00:00', true)"
                )
            )
            if not versioned:
                conn.execute(sa.text(f"DROP TABLE {VERSION_TABLE}"))
        with engine.connect() as conn:
            columns = _columns(conn)
            before = _contents(conn, columns)
            assert "stars_audit" not in sa.inspect(conn).get_table_names()

        with engine.begin() as conn:
            ensure_current(conn)

        with engine.connect() as conn:
            assert conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all() == [HEAD]
            assert _contents(conn, columns) == before
            # The new columns are empty on old rows: nothing was archived or found by reconcile.
            assert (
                conn.execute(sa.text("SELECT count(*) FROM stars_updates WHERE archived_at IS NULL")).scalar()
                == 2
            )
            assert (
                conn.execute(sa.text("SELECT count(*) FROM stars_payments WHERE found_at IS NULL")).scalar()
                == 2
            )
            assert _schema_drift(conn) == []
            for table, extra in [
                (
                    "stars_payments",
                    "telegram_payment_charge_id, user_id, payer_id, stars, currency, "
                    "invoice_payload, status, credited, paid_at",
                ),
                ("stars_updates", "digest, kind, received_at, body, processed, attempts"),
            ]:
                values = {
                    "stars_payments": f"{BIG_ID}, 'big', 1, 1, 1, 'XTR', 'p', 'paid', true, '{DAY}'",
                    "stars_updates": f"{BIG_ID}, 'dbig', 'successful_payment', '{DAY}', '{{}}', true, 1",
                }[table]
                conn.execute(sa.text(f"INSERT INTO {table} (id, {extra}) VALUES ({values})"))
            if conn.dialect.name == "postgresql":
                # The sequence goes past 2^31 too: the next id after a jump is handed out.
                conn.execute(sa.text(f"SELECT setval('stars_updates_id_seq', {BIG_ID + 10})"))
                next_id = conn.execute(
                    sa.text(
                        "INSERT INTO stars_updates (digest, kind, received_at, body, processed, attempts) "
                        f"VALUES ('dn', 'successful_payment', '{DAY}', '{{}}', true, 1) RETURNING id"
                    )
                ).scalar()
                assert next_id == BIG_ID + 11
            conn.execute(
                sa.text(
                    "INSERT INTO stars_audit (at, actor, source, action, target, outcome) "
                    "VALUES ('2026-12-01 00:00:00', 'ops', 'cli', 'refund', 'ch1', 'ok')"
                )
            )
            conn.rollback()
    finally:
        with engine.begin() as conn:
            StarsModel.metadata.drop_all(conn)
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {VERSION_TABLE}"))
        engine.dispose()
