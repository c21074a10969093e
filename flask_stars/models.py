"""flask_stars' tables (all prefixed ``stars_``), on a declarative base of their own.

They live in their own ``MetaData`` so the host's ``db.create_all()`` and Alembic
autogenerate leave them alone, yet every read and write goes through the host's session,
so the credit callback shares the payment's transaction.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from .packs import Pack


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC: the same on SQLite and PostgreSQL."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("flask_stars stores aware datetimes only")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


#: The id type of the tables that grow: 64-bit on PostgreSQL (``BIGINT``, revision stars_0005),
#: SQLite's ``INTEGER PRIMARY KEY`` (its rowid, already 64-bit, and the only type it
#: autoincrements).
RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def utcnow() -> datetime:
    """Now, as an aware UTC datetime."""
    return datetime.now(UTC)


#: The largest id a ``BIGINT`` column holds (ids, user ids, update ids): a larger one names no row.
INT64_MAX = 2**63 - 1
#: What an order id can be: what ``new_order_id`` makes (``token_urlsafe``'s alphabet) and
#: ``stars_orders.id`` holds. Anything else names no order (a URL, a payload).
ORDER_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")


def new_order_id() -> str:
    """A random, unguessable order id (22 URL-safe characters, about 128 bits).

    Never one starting with "-": a spreadsheet reads such a cell as a formula, so a CSV
    export would have to change it (about 1 in 64 would; drawn again instead).
    """
    while True:
        order_id = secrets.token_urlsafe(16)
        if not order_id.startswith("-"):
            return order_id


class StarsModel(DeclarativeBase):
    """Declarative base of flask_stars' models, with its own metadata."""

    metadata = sa.MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class OrderStatus:
    """Order states; an order only moves forward (pending → paid → refunded)."""

    PENDING = "pending"
    PAID = "paid"
    REFUNDED = "refunded"
    EXPIRED = "expired"
    FAILED = "failed"


class PaymentStatus:
    PAID = "paid"
    REFUNDED = "refunded"


class Order(StarsModel):
    """Something a user asked to buy. Its id is the invoice payload."""

    __tablename__ = "stars_orders"

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True, default=new_order_id)
    user_id: Mapped[int] = mapped_column(sa.BigInteger, index=True)
    pack_id: Mapped[str] = mapped_column(sa.String(64))
    stars: Mapped[int] = mapped_column(sa.Integer)
    status: Mapped[str] = mapped_column(sa.String(16), default=OrderStatus.PENDING)
    invoice_url: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The pre-checkout hold: while held_until is in the future, only the pre-checkout
    # query that took the hold may be approved.
    held_by: Mapped[int | None] = mapped_column(sa.BigInteger)
    held_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    hold_query_id: Mapped[str | None] = mapped_column(sa.String(64))
    # What the order sells, recorded when it is made: a payment delivers this, whatever
    # the catalogue says later. NULL only on orders made before revision stars_0003.
    pack_title: Mapped[str | None] = mapped_column(sa.String(32))
    pack_credits: Mapped[Any] = mapped_column(sa.JSON, nullable=True)
    pack_subscription: Mapped[bool | None] = mapped_column(sa.Boolean)

    __table_args__ = (
        # One pending order per user and pack, enforced by the database so that
        # concurrent clicks in many workers still make one order.
        sa.Index(
            "uq_stars_orders_pending_user_pack",
            "user_id",
            "pack_id",
            unique=True,
            sqlite_where=sa.text("status = 'pending'"),
            postgresql_where=sa.text("status = 'pending'"),
        ),
        # The dashboard's conversion figure: orders created since a day, by status (covering).
        sa.Index("ix_stars_orders_created_at_status", "created_at", "status"),
    )

    def record_pack(self, pack: Pack) -> None:
        """Record what this order sells: ``pack`` as the catalogue has it now."""
        self.pack_id = pack.id
        self.stars = pack.stars
        self.pack_title = pack.title
        self.pack_credits = pack.credits
        self.pack_subscription = pack.subscription

    @property
    def sold_pack(self) -> Pack | None:
        """The ``Pack`` this order sells, as recorded when it was made (None before stars_0003)."""
        if self.pack_title is None:
            return None
        return Pack(
            id=self.pack_id,
            stars=self.stars,
            title=self.pack_title,
            credits=self.pack_credits,
            subscription=bool(self.pack_subscription),
        )

    def sells(self, pack: Pack) -> bool:
        """Whether this order sells exactly ``pack`` (so its invoice can be handed out again)."""
        sold = self.sold_pack
        return sold is not None and (sold.id, sold.stars, sold.title, sold.credits, sold.subscription) == (
            pack.id,
            pack.stars,
            pack.title,
            pack.credits,
            pack.subscription,
        )

    @property
    def payload(self) -> str:
        """The invoice payload Telegram hands back in pre-checkout and payment updates."""
        return payload_for(self.id)

    def __repr__(self) -> str:
        return f"<Order {self.id} user={self.user_id} {self.pack_id} {self.status}>"


PAYLOAD_PREFIX = "order:"


def payload_for(order_id: str) -> str:
    """The invoice payload for an order id (well under Telegram's 128 bytes)."""
    return PAYLOAD_PREFIX + order_id


def order_id_from_payload(payload: str | None) -> str | None:
    """The order id a payload names, or None when it is not one of ours."""
    if not payload or not payload.startswith(PAYLOAD_PREFIX):
        return None
    order_id = payload[len(PAYLOAD_PREFIX) :]
    return order_id if ORDER_ID_RE.fullmatch(order_id) else None


class Payment(StarsModel):
    """The ledger: one row per Telegram charge. Rows are never deleted.

    ``user_id`` is who gets the goods (the order's owner), ``payer_id`` who paid.
    ``credited`` says whether the credit callback ran for it; ``problem`` says why not
    (``unknown_order``, ``amount_mismatch``, ``order_already_paid``, ``refunded_before_paid``).
    """

    __tablename__ = "stars_payments"

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    telegram_payment_charge_id: Mapped[str] = mapped_column(sa.String(255), unique=True)
    provider_payment_charge_id: Mapped[str | None] = mapped_column(sa.String(255))
    user_id: Mapped[int] = mapped_column(sa.BigInteger, index=True)
    payer_id: Mapped[int] = mapped_column(sa.BigInteger)
    order_id: Mapped[str | None] = mapped_column(sa.String(32), sa.ForeignKey("stars_orders.id"), index=True)
    pack_id: Mapped[str | None] = mapped_column(sa.String(64))
    stars: Mapped[int] = mapped_column(sa.Integer)
    currency: Mapped[str] = mapped_column(sa.String(8))
    invoice_payload: Mapped[str] = mapped_column(sa.String(255))
    status: Mapped[str] = mapped_column(sa.String(16), default=PaymentStatus.PAID)
    credited: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    problem: Mapped[str | None] = mapped_column(sa.String(32))
    paid_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    refunded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    update_id: Mapped[int | None] = mapped_column(sa.BigInteger)
    raw: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    #: When reconcile found this payment (its webhook never came); ``paid_at`` is then the
    #: date of its Telegram transaction. None for a payment whose webhook came.
    found_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: When reconcile found this payment's refund (``refunded_at`` is then Telegram's date).
    refund_found_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    order: Mapped[Order | None] = relationship(lazy="joined")

    __table_args__ = (
        # The dashboard's overview: one GROUP BY day and pack over a range of paid_at, read
        # from this index alone (it holds every column the query reads).
        sa.Index("ix_stars_payments_paid_at_pack_id_status_stars", "paid_at", "pack_id", "status", "stars"),
        # Payments with a problem (few): the overview's due-refund count, the "problem" filter.
        sa.Index(
            "ix_stars_payments_problem",
            "problem",
            sqlite_where=sa.text("problem IS NOT NULL"),
            postgresql_where=sa.text("problem IS NOT NULL"),
        ),
    )

    @property
    def pack(self) -> Pack | None:
        """The ``Pack`` this payment bought (with ``credits``): what its order sold.

        It is the order's record of the sale, not today's catalogue, so a later price or
        credits change never alters what an old invoice delivers. None for a payment that
        matched no order.
        """
        attached: Pack | None = self.__dict__.get("_pack")
        if attached is not None:
            return attached
        return self.order.sold_pack if self.order is not None else None

    def attach_pack(self, pack: Pack | None) -> None:
        """Fill in ``pack`` for an order made before stars_0003 (not stored)."""
        self.__dict__["_pack"] = pack

    def __repr__(self) -> str:
        return (
            f"<Payment {self.telegram_payment_charge_id} user={self.user_id} "
            f"{self.stars} {self.currency} {self.status}>"
        )


class SubscriptionState:
    ACTIVE = "active"
    CANCELED = "canceled"  # no renewal; access lasts until expires_at (Telegram's rule)
    FAILED = "failed"  # a renewal payment failed


class Subscription(StarsModel):
    """A monthly plan bought with a subscription pack: one row per first payment.

    Telegram renews it every 30 days with a new ``successful_payment`` (``is_recurring``)
    carrying the same payload; each renewal credits once and moves ``expires_at``.
    ``charge_id`` is the first payment's, Telegram's handle in editUserStarSubscription.
    """

    __tablename__ = "stars_subscriptions"

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(sa.BigInteger, index=True)
    pack_id: Mapped[str] = mapped_column(sa.String(64))
    order_id: Mapped[str] = mapped_column(sa.String(32), sa.ForeignKey("stars_orders.id"), unique=True)
    charge_id: Mapped[str] = mapped_column(sa.String(255), unique=True)
    last_charge_id: Mapped[str] = mapped_column(sa.String(255))
    state: Mapped[str] = mapped_column(sa.String(16), default=SubscriptionState.ACTIVE)
    canceled_by_bot: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    payments: Mapped[int] = mapped_column(sa.Integer, default=1)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Meta(StarsModel):
    """Small facts flask_stars keeps, such as how far reconciliation has read."""

    __tablename__ = "stars_meta"

    key: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    value: Mapped[str] = mapped_column(sa.Text)


class RefundNotice(StarsModel):
    """A refund Telegram reported for a charge we have not recorded yet.

    It waits here and is applied when the payment arrives.
    """

    __tablename__ = "stars_refunds"

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    telegram_payment_charge_id: Mapped[str] = mapped_column(sa.String(255), unique=True)
    stars: Mapped[int] = mapped_column(sa.Integer)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    applied: Mapped[bool] = mapped_column(sa.Boolean, default=False)


class UpdateKind:
    PRE_CHECKOUT = "pre_checkout_query"
    SUCCESSFUL_PAYMENT = "successful_payment"
    REFUNDED_PAYMENT = "refunded_payment"
    SUBSCRIPTION = "subscription"


class UpdateLog(StarsModel):
    """The raw update log: every authenticated update that touches payments, as received.

    Money-moving updates are written before they are handled and outside the handling
    transaction, so a failed one stays here with its error and can be replayed.
    """

    __tablename__ = "stars_updates"

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    # None for updates a polling bot handed over (telebot does not pass update_id on).
    update_id: Mapped[int | None] = mapped_column(sa.BigInteger)
    digest: Mapped[str] = mapped_column(sa.String(64))  # sha256 of body
    kind: Mapped[str] = mapped_column(sa.String(32))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    body: Mapped[str] = mapped_column(sa.Text)
    processed: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    error: Mapped[str | None] = mapped_column(sa.Text)
    #: An operator archived this failed update (``flask stars archive``, the dashboard): it is
    #: kept, no longer counts as failed, and ``archived_by``/``archived_reason`` say who and why.
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    archived_by: Mapped[str | None] = mapped_column(sa.String(255))
    archived_reason: Mapped[str | None] = mapped_column(sa.Text)

    __table_args__ = (
        sa.UniqueConstraint("update_id", "digest"),
        # Rows not processed yet (failed updates to replay): few, found without a scan. The
        # predicate is spelled as SQLAlchemy renders ``processed == false()`` on each
        # database, so the planner matches it (SQLite compares the expressions as written).
        sa.Index(
            "ix_stars_updates_unprocessed",
            "id",
            sqlite_where=sa.text("processed = 0"),
            postgresql_where=sa.text("processed = false"),
        ),
        # Archived updates (few): the failed-updates page's "archived" filter, without a scan.
        sa.Index(
            "ix_stars_updates_archived",
            "id",
            sqlite_where=sa.text("archived_at IS NOT NULL"),
            postgresql_where=sa.text("archived_at IS NOT NULL"),
        ),
    )

    @classmethod
    def failed(cls) -> sa.ColumnElement[bool]:
        """Updates kept unprocessed for ``flask stars replay --failed``: money updates whose
        handling failed (every other kind is logged processed). ``processed = false``, not
        ``IS false``: the predicate of ``ix_stars_updates_unprocessed``, so it is used."""
        return sa.and_(
            cls.processed == sa.false(), cls.kind != UpdateKind.PRE_CHECKOUT, cls.archived_at.is_(None)
        )


class ReconcileRun(StarsModel):
    """One run of reconcile: when it started and finished, and what it reported or why it failed.

    ``ok`` is None while a run is going on (or when its process died before it could say),
    True when it finished, False when it raised (``error`` says what). ``report`` holds the
    report's counts (``ReconcileReport.counts()``), also of a failed run up to its failure.
    Only the newest ``reconcile.KEEP_RUNS`` rows are kept.
    """

    __tablename__ = "stars_reconcile_runs"

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ok: Mapped[bool | None] = mapped_column(sa.Boolean)
    report: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    error: Mapped[str | None] = mapped_column(sa.Text)

    @property
    def seconds(self) -> float | None:
        """How long the run took (None while it has not finished)."""
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class AuditEntry(StarsModel):
    """What an operator did to money or to the ledger's records: one row per action.

    Written by ``flask_stars.audit.record`` for every refund, replay, archive, reconcile run
    and hand-over of the tables, from the CLI, the dashboard or the Python API. Rows are
    never changed or deleted by flask_stars.
    """

    __tablename__ = "stars_audit"

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Who: the dashboard's ``actor`` callable, the OS user of the CLI, or the ``actor``
    #: argument of the Python API.
    actor: Mapped[str] = mapped_column(sa.String(255))
    #: Where from: ``cli``, ``dashboard`` or ``python``.
    source: Mapped[str] = mapped_column(sa.String(16))
    #: What: ``refund``, ``replay``, ``archive``, ``reconcile`` or ``rebind``.
    action: Mapped[str] = mapped_column(sa.String(32))
    #: On what: a charge id (refund), an update row id (replay, archive), a run id (reconcile).
    target: Mapped[str | None] = mapped_column(sa.String(255))
    #: Why, as the operator typed it.
    reason: Mapped[str | None] = mapped_column(sa.Text)
    #: ``ok`` or ``failed`` (``warning`` for a run that finished but must be looked at).
    outcome: Mapped[str] = mapped_column(sa.String(16))
    #: What happened, in words (the error of a failed action, a run's summary).
    detail: Mapped[str | None] = mapped_column(sa.Text)

    __table_args__ = (
        sa.Index("ix_stars_audit_target", "target"),
        sa.Index("ix_stars_audit_at", "at"),
    )


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    r"""Alembic ``include_object`` hook for the host's env.py: skip ``stars_*`` tables.

    Alembic's own signature; True keeps the item.

    :param obj: the schema item.
    :param name: its name.
    :param type\_: its kind (``"table"``, ``"column"``...).
    :param reflected: whether it was read from the database.
    :param compare_to: what it is compared with.
    """
    table_name = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
    return not (table_name or "").startswith("stars_")
