"""flask_stars: subscriptions, and a small key-value table (reconciliation progress).

Revision ID: stars_0002
Revises: stars_0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "stars_0002"
down_revision = "stars_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stars_subscriptions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("pack_id", sa.String(64), nullable=False),
        sa.Column("order_id", sa.String(32), nullable=False),
        sa.Column("charge_id", sa.String(255), nullable=False),
        sa.Column("last_charge_id", sa.String(255), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("canceled_by_bot", sa.Boolean(), nullable=False),
        sa.Column("payments", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"], ["stars_orders.id"], name="fk_stars_subscriptions_order_id_stars_orders"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_stars_subscriptions"),
        sa.UniqueConstraint("order_id", name="uq_stars_subscriptions_order_id"),
        sa.UniqueConstraint("charge_id", name="uq_stars_subscriptions_charge_id"),
    )
    op.create_index("ix_stars_subscriptions_user_id", "stars_subscriptions", ["user_id"])
    op.create_table(
        "stars_meta",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_stars_meta"),
    )


def downgrade() -> None:
    op.drop_table("stars_meta")
    op.drop_index("ix_stars_subscriptions_user_id", table_name="stars_subscriptions")
    op.drop_table("stars_subscriptions")
