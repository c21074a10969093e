"""Tables made by an earlier release are upgraded on first use."""

from __future__ import annotations

import sqlalchemy as sa

from flask_stars.migrations import upgrade
from flask_stars.models import Order, utcnow


def test_tables_made_by_an_earlier_release_are_upgraded_on_first_use(database_url, make_shop):
    """The default set-up (STARS_CREATE_TABLES) made its tables with create_all and no
    version row; a new release upgrades them on first use, keeping the pending order."""
    engine = sa.create_engine(database_url)
    with engine.begin() as conn:
        upgrade(conn, "stars_0002")
        conn.execute(sa.text("DROP TABLE stars_alembic_version"))  # as create_all left them
        now = utcnow().replace(tzinfo=None)
        conn.execute(
            sa.text(
                "INSERT INTO stars_orders (id, user_id, pack_id, stars, status, created_at, expires_at)"
                " VALUES ('oldorder1', 42, 'stars_pack_1', 10, 'pending', :now, :later)"
            ),
            {"now": now, "later": now.replace(year=now.year + 1)},
        )
    engine.dispose()
    shop = make_shop()
    _order_id, attempt = shop.buy(43)  # a new order: made with the upgraded schema
    assert attempt.ok and attempt.payment.body["detail"] == "credited"
    assert shop.balance(43) == 1_000_000
    (old,) = shop.rows(Order, id="oldorder1")
    assert old.status == "pending" and old.pack_title is None
    assert shop.rows(Order, user_id=43)[0].pack_title == "Starter pack"
