"""flask_stars: indexes for the dashboard's overview, and a record of reconcile runs.

* ``stars_payments (paid_at, pack_id, status, stars)``: the overview's GROUP BY day and
  pack over a range of ``paid_at`` reads this index alone, not the table.
* ``stars_payments (problem) WHERE problem IS NOT NULL``: the few payments with a problem
  (the overview's count of due refunds, the payments page's "problem" filter).
* ``stars_orders (created_at, status)``: the overview's conversion (orders opened since a
  day, and how many were paid), read from the index alone.
* ``stars_updates (id) WHERE processed = false``: the unprocessed (failed) updates, few,
  found without scanning the log. Partial on both databases.
* ``stars_reconcile_runs``: one row per reconcile run (started, finished, ok, the report's
  counts, the error of a failed run), so the dashboard can say when it last ran.

Only adds: no row of an existing table is touched. On PostgreSQL the indexes are built
inside the upgrade's transaction (``CREATE INDEX``, which blocks writes to the table while
it is built: seconds at 10^6 payments).

Revision ID: stars_0004
Revises: stars_0003
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "stars_0004"
down_revision = "stars_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_stars_payments_paid_at_pack_id_status_stars",
        "stars_payments",
        ["paid_at", "pack_id", "status", "stars"],
    )
    op.create_index(
        "ix_stars_payments_problem",
        "stars_payments",
        ["problem"],
        sqlite_where=sa.text("problem IS NOT NULL"),
        postgresql_where=sa.text("problem IS NOT NULL"),
    )
    op.create_index("ix_stars_orders_created_at_status", "stars_orders", ["created_at", "status"])
    op.create_index(
        "ix_stars_updates_unprocessed",
        "stars_updates",
        ["id"],
        sqlite_where=sa.text("processed = 0"),
        postgresql_where=sa.text("processed = false"),
    )
    op.create_table(
        "stars_reconcile_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("ok", sa.Boolean(), nullable=True),
        sa.Column("report", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_stars_reconcile_runs"),
    )


def downgrade() -> None:
    op.drop_table("stars_reconcile_runs")
    op.drop_index("ix_stars_updates_unprocessed", table_name="stars_updates")
    op.drop_index("ix_stars_orders_created_at_status", table_name="stars_orders")
    op.drop_index("ix_stars_payments_problem", table_name="stars_payments")
    op.drop_index("ix_stars_payments_paid_at_pack_id_status_stars", table_name="stars_payments")
