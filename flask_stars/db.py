"""Where flask_stars' rows live: the host's Flask-SQLAlchemy session, or a private one.

With Flask-SQLAlchemy on the app, every read and write goes through ``db.session`` so
the host's credit callback changes its own rows in the payment's transaction. Without
it, flask_stars keeps one engine and an app-context-scoped session of its own (it never
registers a second ``SQLAlchemy`` on the app).
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from flask import Flask
from sqlalchemy.orm import Session, scoped_session, sessionmaker

from .migrations import ensure_current

if TYPE_CHECKING:
    from .config import Settings

log = logging.getLogger(__name__)


def _app_context_id() -> int:
    from flask import globals as flask_globals

    return id(flask_globals.app_ctx._get_current_object())  # type: ignore[attr-defined]


class StarsDatabase:
    """The session, engine and tables flask_stars uses for one app."""

    def __init__(self, app: Flask, settings: Settings, db: Any = None) -> None:
        self._app = app
        self._settings = settings
        self._explicit_db = db
        self._private_engine: sa.Engine | None = None
        self._private_session: scoped_session[Session] | None = None
        self._ready_engines: set[int] = set()
        self._ready = False  # tables made, SQLite prepared, checks passed: nothing left per request
        self._checks: list[Callable[[sa.Engine], None]] = []
        self._generation = 0  # bumped by check_again: a check that began before is stale
        self._lock = threading.Lock()

    @property
    def flask_sqlalchemy(self) -> Any:
        """The host's ``SQLAlchemy`` object, if it has one (looked up at use)."""
        return self._explicit_db or self._app.extensions.get("sqlalchemy")

    @property
    def session(self) -> Session:
        """The session to use now: the host's ``db.session`` or the private one."""
        fsa = self.flask_sqlalchemy
        session = fsa.session if fsa is not None else self._private()
        self.ensure_ready()
        # The Session itself, not the scoped proxy: callers may set its attributes.
        return session()  # type: ignore[no-any-return,unused-ignore]

    @property
    def engine(self) -> sa.Engine:
        fsa = self.flask_sqlalchemy
        if fsa is not None:
            engine: sa.Engine = fsa.engine
            return engine
        self._private()
        assert self._private_engine is not None
        return self._private_engine

    def _private(self) -> scoped_session[Session]:
        if self._private_session is None:
            with self._lock:
                if self._private_session is None:
                    self._private_engine = self._create_private_engine()
                    self._private_session = scoped_session(
                        sessionmaker(bind=self._private_engine, expire_on_commit=False),
                        scopefunc=_app_context_id,
                    )
        return self._private_session

    def _create_private_engine(self) -> sa.Engine:
        url = self._app.config.get("SQLALCHEMY_DATABASE_URI")
        if not url:
            os.makedirs(self._app.instance_path, exist_ok=True)
            url = "sqlite:///" + os.path.join(self._app.instance_path, "stars.db")
        return sa.create_engine(url, **private_engine_options(url))

    def remove(self, exc: BaseException | None = None) -> None:
        """Teardown: give the private session's connection back to the pool."""
        if self._private_session is not None:
            self._private_session.remove()

    def add_check(self, check: Callable[[sa.Engine], None]) -> None:
        """Run ``check(engine)`` on first use, once the tables are current (and again after
        ``check_again``). A check that raises refuses that use, and the next use runs it again.
        """
        self._checks.append(check)
        self.check_again()

    def check_again(self) -> None:
        """Run the checks again on the next use (what they check has changed)."""
        self._generation += 1
        self._ready = False

    def ensure_ready(self) -> None:
        """Make the tables current and run the checks, once per process: every use after the
        first costs one attribute read. Raises what a check raises (``StarsConfigError``).
        """
        if self._ready:
            return
        engine = self.engine
        with self._lock:
            if self._ready:
                return
            generation = self._generation
            self._make_tables(engine)
            for check in self._checks:
                check(engine)
            self._ready = generation == self._generation

    def ensure_tables(self, engine: sa.Engine | None = None) -> None:
        """Prepare SQLite and, with ``STARS_CREATE_TABLES``, make the tables current (once per
        engine), without the checks: for commands that must reach tables a check refuses.
        """
        engine = engine or self.engine
        with self._lock:
            self._make_tables(engine)

    def _make_tables(self, engine: sa.Engine) -> None:
        if id(engine) in self._ready_engines:
            return
        if engine.dialect.name == "sqlite":
            self._prepare_sqlite(engine)
        if self._settings.create_tables:
            self._create_tables(engine)
        self._ready_engines.add(id(engine))

    @staticmethod
    def _create_tables(engine: sa.Engine) -> None:
        # Another worker creating or upgrading them at the same moment makes this one fail
        # (a table made under it; SQLite's lock held past the busy timeout): look again, a
        # few times, as several processes starting on one SQLite file may each meet one.
        for attempt in range(4):
            try:
                with engine.begin() as conn:
                    ensure_current(conn)
                return
            except sa.exc.DBAPIError:
                if attempt == 3:
                    raise
                time.sleep(0.2 * (attempt + 1))

    def _prepare_sqlite(self, engine: sa.Engine) -> None:
        """WAL lets readers go on while a payment commits (the mode is kept in the file)."""
        database = engine.url.database
        in_memory = not database or database == ":memory:" or "mode=memory" in str(engine.url)
        if self._settings.sqlite_wal and not in_memory:
            with engine.connect() as conn:
                mode = conn.exec_driver_sql("PRAGMA journal_mode = WAL").scalar()
                log.debug("SQLite journal mode is %s", mode)


def private_engine_options(url: str | sa.URL) -> dict[str, Any]:
    """``create_engine``'s options for the engine flask_stars makes itself on ``url``.

    :param url: the database URL.

    SQLite waits up to 5 s for a writer (its busy timeout). PostgreSQL gets a pre-ping, and
    with psycopg 3 no server-side prepared statements (``prepare_threshold=None``): psycopg
    prepares a statement after five runs on a connection, and a pooler in transaction mode
    (PgBouncer before 1.21) hands the next transaction another server connection, where
    the name is taken ("prepared statement "_pg3_0" already exists") or missing. flask_stars'
    statements are few and cheap to plan, so they cost nothing measurable without a pooler.
    A host that passes its own Flask-SQLAlchemy ``db`` sets the same in
    ``SQLALCHEMY_ENGINE_OPTIONS`` (the production guide says how).
    """
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return {"connect_args": {"timeout": 5}}
    options: dict[str, Any] = {"pool_pre_ping": True}
    if parsed.get_driver_name() == "psycopg":
        options["connect_args"] = {"prepare_threshold": None}
    return options


def lock_for_write(session: Session, key: str) -> None:
    """Serialise writers that touch ``key`` (a charge id) until the transaction ends.

    PostgreSQL: a transaction-scoped advisory lock on the key, so a payment and its
    refund, or two deliveries of one charge, never interleave in any worker. SQLite has
    one writer at a time: ``BEGIN IMMEDIATE`` takes the write lock before anything is
    read, so what the transaction reads next is the latest committed state.
    """
    conn = session.connection()
    dialect = conn.dialect.name
    if dialect == "postgresql":
        conn.execute(_LOCK, {"lock_key": key})
    elif dialect == "sqlite":
        raw = conn.connection.dbapi_connection
        if raw is not None and not raw.in_transaction:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


def advisory_lock(key: sa.ColumnElement[str]) -> sa.ColumnElement[Any]:
    """PostgreSQL: SQL that takes ``lock_for_write``'s lock on ``key``, to put in a statement."""
    return sa.func.pg_advisory_xact_lock(sa.func.hashtextextended(key, 0))


_LOCK = sa.select(advisory_lock(sa.bindparam("lock_key", type_=sa.Text)))


def hold_settings() -> sa.ColumnElement[bool]:
    """PostgreSQL: settings for a pre-checkout's transaction, as a condition the hold's UPDATE
    carries (an uncorrelated subquery, run once before any row is locked), so they cost no
    round trip of their own.

    - ``lock_timeout`` (the ``p_wait_ms`` parameter): the answer is due within 10 s, so a
      wait for a row lock past ``STARS_PRE_CHECKOUT_TIMEOUT`` fails the statement and the
      query is refused with "try again" instead of timing out in the buyer's face. (SQLite's
      wait is bounded by its busy timeout, 5 s by default.)
    - ``synchronous_commit = off``: the hold is an optimisation, not money; losing it in a
      crash costs at most a second payment, which the duplicate-payment policy handles. So
      its commit does not wait for the disk. The ledger's commits stay fully durable.

    Both are set for this transaction only (``set_config(..., true)``).
    """
    wait_ms = sa.bindparam("p_wait_ms", type_=sa.Text)
    settings = sa.select(
        sa.func.concat(
            sa.func.set_config("lock_timeout", wait_ms, True),
            sa.func.set_config("synchronous_commit", "off", True),
        )
    ).scalar_subquery()
    return settings.is_not(None)


def insert_unless_exists(dialect: str, model: Any, unique: tuple[str, ...]) -> Any:
    """``INSERT ... ON CONFLICT (unique) DO NOTHING RETURNING id``: one round trip.

    Execute it with the row as its parameters: it gives the new row's id, or None when a
    row with the same unique key is already there (SQLite and PostgreSQL; other databases
    get a plain INSERT). Built once per dialect and model: a statement built per request
    costs more Python than its round trip.
    """
    return _insert_unless_exists(dialect, model, unique)


def lock_and_insert_unless_exists(
    session: Session, model: Any, unique: tuple[str, ...], values: dict[str, Any], lock_key: str
) -> int | None:
    """``lock_for_write(session, lock_key)``, then ``insert_unless_exists`` with ``values``:
    the new row's id, or None when the same row is there.

    On PostgreSQL both go in one round trip: ``INSERT ... SELECT ... FROM (SELECT
    pg_advisory_xact_lock(...))``, the lock taken before the row is inserted or found.
    """
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        stmt = _insert_unless_exists(conn.dialect.name, model, unique, locked=True)
        row_id: int | None = conn.execute(stmt, {**values, "lock_key": lock_key}).scalar()
        return row_id
    lock_for_write(session, lock_key)
    row_id = conn.execute(_insert_unless_exists(conn.dialect.name, model, unique), values).scalar()
    return row_id


@functools.lru_cache(maxsize=16)
def _insert_unless_exists(dialect: str, model: Any, unique: tuple[str, ...], *, locked: bool = False) -> Any:
    if locked:  # PostgreSQL only (lock_and_insert_unless_exists)
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        columns = [c for c in model.__table__.c if not c.primary_key]
        lock = sa.select(advisory_lock(sa.bindparam("lock_key", type_=sa.Text))).subquery("write_lock")
        rows = sa.select(*(sa.bindparam(c.key, type_=c.type) for c in columns)).select_from(lock)
        return (
            pg_insert(model)
            .from_select([c.key for c in columns], rows)
            .on_conflict_do_nothing(index_elements=list(unique))
            .returning(model.id)
        )
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    else:
        return sa.insert(model).returning(model.id)
    return insert(model).on_conflict_do_nothing(index_elements=list(unique)).returning(model.id)


@contextmanager
def kept_after_commit(session: Session) -> Iterator[None]:
    """Objects stay loaded after commits inside this block (no reload query to read them)."""
    previous = session.expire_on_commit
    session.expire_on_commit = False
    try:
        yield
    finally:
        session.expire_on_commit = previous
