"""The engine flask_stars makes itself works behind PgBouncer in transaction mode: with
psycopg 3, no server-side prepared statements (their names would clash across the server
connections PgBouncer hands out)."""

from __future__ import annotations

import os

import pytest

from flask_stars import stars_bp
from flask_stars.db import private_engine_options
from flask_stars.state import get_state
from tests.support import hostapp


def test_psycopg_gets_no_prepared_statements_and_a_pre_ping() -> None:
    options = private_engine_options("postgresql+psycopg://u@db.example/shop")
    assert options == {"pool_pre_ping": True, "connect_args": {"prepare_threshold": None}}


def test_another_postgresql_driver_keeps_its_own_connect_args() -> None:
    assert private_engine_options("postgresql+psycopg2://u@db.example/shop") == {"pool_pre_ping": True}


def test_sqlite_waits_for_a_writer() -> None:
    assert private_engine_options("sqlite:///stars.db") == {"connect_args": {"timeout": 5}}


@pytest.mark.skipif(
    not (os.environ.get("STARS_TEST_DATABASE_URL") or "").startswith("postgresql+psycopg"),
    reason="needs PostgreSQL with psycopg 3",
)
def test_the_private_engines_connections_prepare_nothing(database_url: str) -> None:
    app = hostapp.bare_app(SQLALCHEMY_DATABASE_URI=database_url)
    app.register_blueprint(stars_bp)
    with app.app_context():
        engine = get_state().database.engine
        try:
            with engine.connect() as conn:
                raw = conn.connection.dbapi_connection
                assert raw is not None
                assert raw.prepare_threshold is None  # type: ignore[attr-defined]
        finally:
            engine.dispose()
