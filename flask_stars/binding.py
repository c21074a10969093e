"""One database, one bot: the ``stars_*`` tables remember which bot they belong to.

Telegram keeps every bot's payments apart, and its test server apart from production (the
same id there is another bot, with other users and other transactions); the sandbox's
payments are not real at all. So one ledger holds one bot's money. On first use, once the
tables are current, the app's ``bot_identity`` (``"<bot id>:<environment>"``) is recorded in
``stars_meta``; an app that speaks for another bot or environment is refused with
``StarsConfigError`` naming both, before any money moves, until its config is fixed, it gets
a database of its own, or ``flask stars hand-over --yes`` hands the tables over. A new token
of the same bot (BotFather's revoke keeps the id before the colon) is the same bot.

Why first use and not ``init_app``: at ``init_app`` the host's database may not be set up
yet (``db.init_app`` may come later) or reachable (a container starting before its
database), making tables is a side effect importing the app must not have (``flask
routes``), and the identity is not final: ``flask stars sandbox``, ``attach_sandbox`` and
``flask_stars.testing.connect`` make the app a sandbox run after ``init_app``. So the first
use is the start-up: the first request, command or webhook that reaches the tables checks,
once per process and identity (an attribute read after that); while the binding does not
match, every use is refused (the webhook answers 500, so Telegram keeps the update). The
sandbox's command and ``python -m example_app`` check before they serve.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from .errors import OtherBotsTables
from .models import Meta

if TYPE_CHECKING:
    from .state import BotIdentity, StarsState

#: The ``stars_meta`` key that holds the tables' bot (``BotIdentity.key``).
BINDING_KEY = "bot"

_ENVIRONMENTS = {
    "production": "production",
    "test": "Telegram's test server",
    "sandbox": "flask_stars' sandbox",
}


def watch(state: StarsState) -> None:
    """Check the binding on the first use of ``state``'s tables, and again after its identity
    changes (``StarsState.sandbox_run``, ``flask_stars.sandbox.use_sandbox_token``)."""
    state.database.add_check(lambda engine: check(engine, state.bot_identity))


def describe(key: str) -> str:
    """``"bot 123 (production)"`` for a binding key ``"123:production"``."""
    bot_id, _, environment = key.rpartition(":")
    return f"bot {bot_id} ({_ENVIRONMENTS.get(environment, environment)})"


def bound_key(engine: sa.Engine) -> str | None:
    """The key of the bot the tables belong to (None before their first use)."""
    with engine.connect() as conn:
        return _read(conn)


def check(engine: sa.Engine, identity: BotIdentity) -> None:
    """Record ``identity`` as the tables' bot if none is; ``OtherBotsTables`` if another is.

    Race-free: workers starting together insert the same row, one insert wins and every
    worker compares with what the winner recorded.
    """
    recorded = bound_key(engine)
    if recorded is None:
        recorded = _record_first(engine, identity.key)
    if recorded != identity.key:
        raise OtherBotsTables(refusal(recorded, identity))


def hand_over(engine: sa.Engine, identity: BotIdentity) -> str | None:
    """Record ``identity`` as the tables' bot, whatever was recorded; returns the previous key.

    Every row stays where it is: only the binding changes (reconcile keeps its reading
    position per bot, so the new bot's list is read from its own start).
    """
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            # The write lock before the read, so what is reported as "from" is what is replaced.
            raw = conn.connection.dbapi_connection
            if raw is not None and not raw.in_transaction:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
        previous = conn.execute(
            sa.select(Meta.value).where(Meta.key == BINDING_KEY).with_for_update()
        ).scalar()
        if previous is None:
            conn.execute(sa.insert(Meta).values(key=BINDING_KEY, value=identity.key))
        else:
            conn.execute(sa.update(Meta).where(Meta.key == BINDING_KEY).values(value=identity.key))
    return previous


def refusal(recorded: str, identity: BotIdentity) -> str:
    """Why an app of ``identity`` is refused on tables of ``recorded``, and the way out."""
    old, new = describe(recorded), describe(identity.key)
    old_id, _, old_environment = recorded.rpartition(":")
    lines = [f"The stars_* tables in this database belong to {old}; this app speaks for {new}."]
    if identity.environment == "sandbox" and old_environment != "sandbox":
        lines.append(
            "A sandbox run's payments are not real and must never enter a real bot's ledger: "
            "run the sandbox on a database of its own (SQLALCHEMY_DATABASE_URI)."
        )
        return " ".join(lines)
    if old_id == str(identity.bot_id):
        lines.append(
            "Telegram keeps its environments apart (the same id there is another bot, with other "
            "users and other payments), so one database holds one environment's ledger."
        )
    else:
        lines.append("One database holds one bot's ledger.")
    lines.append(
        "If STARS_BOT_TOKEN or STARS_TEST_ENVIRONMENT is wrong, fix it; otherwise give this bot a "
        "database of its own (SQLALCHEMY_DATABASE_URI)"
    )
    if identity.environment == "sandbox":
        lines[-1] += "."
    else:
        lines[-1] += (
            f", or, to move these tables to {new} for good, stop every app of {old} and run "
            "`flask stars hand-over --yes` with this app's config (every row is kept)."
        )
    return " ".join(lines)


def _read(conn: sa.Connection) -> str | None:
    value: str | None = conn.execute(sa.select(Meta.value).where(Meta.key == BINDING_KEY)).scalar()
    return value


def _record_first(engine: sa.Engine, key: str) -> str:
    """Insert the binding unless a row is there (another worker's), then read the one that won."""
    try:
        with engine.begin() as conn:
            # The INSERT comes first in its transaction: on SQLite it takes the write lock
            # (waiting out the busy timeout) before anything is read.
            conn.execute(_insert_if_absent(conn.dialect.name), {"key": BINDING_KEY, "value": key})
            recorded = _read(conn)
    except IntegrityError:  # a database with no ON CONFLICT: another worker's row is there
        recorded = bound_key(engine)
    assert recorded is not None
    return recorded


def _insert_if_absent(dialect: str) -> Any:
    columns: dict[str, Any] = {"key": sa.bindparam("key"), "value": sa.bindparam("value")}
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    else:
        return sa.insert(Meta).values(**columns)
    return insert(Meta).values(**columns).on_conflict_do_nothing(index_elements=["key"])
