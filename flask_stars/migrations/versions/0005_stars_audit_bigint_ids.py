"""flask_stars: an audit trail, archived updates, Telegram's dates, and 64-bit ids.

* ``stars_audit``: one row per operator action (refund, replay, archive, reconcile run,
  hand-over of the tables): who, when, from where, why, and the outcome.
* ``stars_updates.archived_at/archived_by/archived_reason``: a failed update an operator
  archived stops counting as failed and stays in the log; a partial index on the
  archived ones (few) serves the dashboard's filter.
* ``stars_payments.found_at/refund_found_at``: when reconcile found a payment or its refund
  (``paid_at``/``refunded_at`` then carry the date of the Telegram transaction).
* The ids of the tables that grow (``stars_payments``, ``stars_updates``, ``stars_refunds``,
  ``stars_subscriptions``, ``stars_reconcile_runs``) become ``BIGINT`` on PostgreSQL, their
  sequences too. SQLite's ``INTEGER PRIMARY KEY`` is 64-bit already: nothing changes there.

Existing rows are kept as they are; the new columns are NULL on them. On PostgreSQL the
type change rewrites each table inside the upgrade's transaction (it blocks writes to the
table while it runs: seconds at 10^6 payments).

Revision ID: stars_0005
Revises: stars_0004
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "stars_0005"
down_revision = "stars_0004"
branch_labels = None
depends_on = None

ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
GROWING_TABLES = (
    "stars_payments",
    "stars_updates",
    "stars_refunds",
    "stars_subscriptions",
    "stars_reconcile_runs",
)


def _ids(type_: type[sa.types.TypeEngine[int]], sequence_type: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in GROWING_TABLES:
        op.alter_column(table, "id", type_=type_(), existing_nullable=False)
        op.execute(sa.text(f"ALTER SEQUENCE IF EXISTS {table}_id_seq AS {sequence_type}"))


def upgrade() -> None:
    op.create_table(
        "stars_audit",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("target", sa.String(length=255), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_stars_audit"),
    )
    op.create_index("ix_stars_audit_target", "stars_audit", ["target"])
    op.create_index("ix_stars_audit_at", "stars_audit", ["at"])
    with op.batch_alter_table("stars_updates") as batch:
        batch.add_column(sa.Column("archived_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("archived_by", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("archived_reason", sa.Text(), nullable=True))
    op.create_index(
        "ix_stars_updates_archived",
        "stars_updates",
        ["id"],
        sqlite_where=sa.text("archived_at IS NOT NULL"),
        postgresql_where=sa.text("archived_at IS NOT NULL"),
    )
    with op.batch_alter_table("stars_payments") as batch:
        batch.add_column(sa.Column("found_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("refund_found_at", sa.DateTime(), nullable=True))
    _ids(sa.BigInteger, "bigint")


def downgrade() -> None:
    _ids(sa.Integer, "integer")
    with op.batch_alter_table("stars_payments") as batch:
        batch.drop_column("refund_found_at")
        batch.drop_column("found_at")
    op.drop_index("ix_stars_updates_archived", table_name="stars_updates")
    with op.batch_alter_table("stars_updates") as batch:
        batch.drop_column("archived_reason")
        batch.drop_column("archived_by")
        batch.drop_column("archived_at")
    op.drop_index("ix_stars_audit_at", table_name="stars_audit")
    op.drop_index("ix_stars_audit_target", table_name="stars_audit")
    op.drop_table("stars_audit")
