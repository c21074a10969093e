"""flask_stars: orders, payments (the ledger), refunds waiting for their payment, raw updates.

Revision ID: stars_0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "stars_0001"
down_revision = None
branch_labels = ("flask_stars",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stars_orders",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("pack_id", sa.String(64), nullable=False),
        sa.Column("stars", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("invoice_url", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("paid_at", sa.DateTime(), nullable=True),
        sa.Column("held_by", sa.BigInteger(), nullable=True),
        sa.Column("held_until", sa.DateTime(), nullable=True),
        sa.Column("hold_query_id", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_stars_orders"),
    )
    op.create_index("ix_stars_orders_user_id", "stars_orders", ["user_id"])
    op.create_index(
        "uq_stars_orders_pending_user_pack",
        "stars_orders",
        ["user_id", "pack_id"],
        unique=True,
        sqlite_where=sa.text("status = 'pending'"),
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_table(
        "stars_payments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("telegram_payment_charge_id", sa.String(255), nullable=False),
        sa.Column("provider_payment_charge_id", sa.String(255), nullable=True),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("payer_id", sa.BigInteger(), nullable=False),
        sa.Column("order_id", sa.String(32), nullable=True),
        sa.Column("pack_id", sa.String(64), nullable=True),
        sa.Column("stars", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(8), nullable=False),
        sa.Column("invoice_payload", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("credited", sa.Boolean(), nullable=False),
        sa.Column("problem", sa.String(32), nullable=True),
        sa.Column("paid_at", sa.DateTime(), nullable=False),
        sa.Column("refunded_at", sa.DateTime(), nullable=True),
        sa.Column("update_id", sa.BigInteger(), nullable=True),
        sa.Column("raw", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["order_id"], ["stars_orders.id"], name="fk_stars_payments_order_id_stars_orders"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_stars_payments"),
        sa.UniqueConstraint(
            "telegram_payment_charge_id", name="uq_stars_payments_telegram_payment_charge_id"
        ),
    )
    op.create_index("ix_stars_payments_order_id", "stars_payments", ["order_id"])
    op.create_index("ix_stars_payments_user_id", "stars_payments", ["user_id"])
    op.create_table(
        "stars_refunds",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("telegram_payment_charge_id", sa.String(255), nullable=False),
        sa.Column("stars", sa.Integer(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("applied", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_stars_refunds"),
        sa.UniqueConstraint("telegram_payment_charge_id", name="uq_stars_refunds_telegram_payment_charge_id"),
    )
    op.create_table(
        "stars_updates",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("update_id", sa.BigInteger(), nullable=True),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("processed", sa.Boolean(), nullable=False),
        sa.Column("processed_at", sa.DateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_stars_updates"),
        sa.UniqueConstraint("update_id", "digest", name="uq_stars_updates_update_id_digest"),
    )


def downgrade() -> None:
    op.drop_table("stars_updates")
    op.drop_table("stars_refunds")
    op.drop_index("ix_stars_payments_user_id", table_name="stars_payments")
    op.drop_index("ix_stars_payments_order_id", table_name="stars_payments")
    op.drop_table("stars_payments")
    op.drop_index("uq_stars_orders_pending_user_pack", table_name="stars_orders")
    op.drop_index("ix_stars_orders_user_id", table_name="stars_orders")
    op.drop_table("stars_orders")
