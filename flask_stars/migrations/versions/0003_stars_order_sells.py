"""flask_stars: an order records what it sells (title, credits, subscription).

A payment delivers what its invoice sold, whatever the catalogue says later. Orders made
before this revision have no record (NULL): they fall back to the catalogue's pack while
its price is unchanged, and are refused at pre-checkout otherwise.

Revision ID: stars_0003
Revises: stars_0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "stars_0003"
down_revision = "stars_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("stars_orders") as batch:
        batch.add_column(sa.Column("pack_title", sa.String(32), nullable=True))
        batch.add_column(sa.Column("pack_credits", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("pack_subscription", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("stars_orders") as batch:
        batch.drop_column("pack_subscription")
        batch.drop_column("pack_credits")
        batch.drop_column("pack_title")
