"""The aiogram-stars host app that ``bench/peer.py`` (figure 8) measures flask_stars against.

Written the way aiogram-stars 0.2.0's README says: an aiogram 3 ``Dispatcher`` and ``Bot``
(pointed at the Bot API sandbox), ``StarsPayments(SqlAlchemyStorage(async engine), secret=...,
check=..., on_paid=...)``, ``stars.setup(dp)``, and an aiohttp app with
``setup_application(app, dp, bot=bot)`` first and then aiogram's ``SimpleRequestHandler`` (with
the webhook secret token, and ``handle_in_background=False`` so that the 200 means the update
was processed). The host's own part is kept as lean as a careful user would write it:

- ``check`` (pre-checkout): one read of the host's ``orders`` row; the order must exist, be
  ``pending``, belong to the buyer and cost the amount the payload was signed for.
- ``on_paid`` (the credit): one transaction that marks the order paid only while it is
  ``pending`` (``RETURNING`` its user and pack) and, if it did, adds the pack's coins to the
  host's ``users`` row. Idempotent: a second call for a paid order credits nothing.

Run as ``python -m bench.peerapp``, configured by the environment (``bench/peer.py`` starts it):
``PEER_DB_URL`` (``sqlite+aiosqlite:///...`` or ``postgresql+asyncpg://...``), ``PEER_PG_SCHEMA``
(PostgreSQL: the schema put first on the search path), ``PEER_API_URL`` (the sandbox),
``PEER_BOT_TOKEN``, ``PEER_WEBHOOK_SECRET``, ``PEER_PAYLOAD_SECRET``, ``PEER_PORT``. It listens on
127.0.0.1 with ``SO_REUSEPORT``, so several processes can share the port (the kernel spreads
the connections). ``PEER_COUNT_SQL=1`` (a counting run only) records every statement on the
engine's ``sync_engine`` and serves them at ``GET /bench/sql`` (which also clears them).
It stops on SIGTERM/SIGINT, when the process that started it goes away, or after
``PEER_MAX_SECONDS`` (default 1800).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from typing import Any

import sqlalchemy as sa
from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
from aiogram_stars import Checkout, Payment, RejectPayment, StarsPayments
from aiogram_stars.sqlalchemy import SqlAlchemyStorage
from aiohttp import web
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

WEBHOOK_PATH = "/webhook"
#: Coins per pack, as bench/benchapp.py's PACKS (bench/peer.py checks that they agree).
CREDITS = {"stars_pack_1": 1_000_000, "stars_pack_2": 5_000_000}
READY = "peerapp ready"

# --- the host's tables (its own; aiogram-stars keeps only stars_payments and stars_refunds) ---

host_metadata = sa.MetaData()
orders = sa.Table(
    "orders",
    host_metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("user_id", sa.BigInteger, nullable=False, index=True),
    sa.Column("pack_id", sa.String(64), nullable=False),
    sa.Column("stars", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("charge_id", sa.String(255)),
)
users = sa.Table(
    "users",
    host_metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("coins", sa.BigInteger, nullable=False, default=0),
)

READ_ORDER = sa.text("SELECT user_id, stars, status FROM orders WHERE id = :id")
MARK_PAID = sa.text(
    "UPDATE orders SET status = 'paid', charge_id = :charge "
    "WHERE id = :id AND status = 'pending' RETURNING user_id, pack_id"
)
ADD_COINS = sa.text("UPDATE users SET coins = coins + :n WHERE id = :id")


def build(
    engine: AsyncEngine, *, api_url: str, token: str, webhook_secret: str, payload_secret: str
) -> tuple[web.Application, StarsPayments]:
    """The host app: the bot, the dispatcher with aiogram-stars, the aiohttp webhook."""

    async def check(checkout: Checkout) -> None:
        async with engine.connect() as conn:
            row = (await conn.execute(READ_ORDER, {"id": checkout.order_id})).first()
        if (
            row is None
            or row.status != "pending"
            or row.stars != checkout.amount
            or row.user_id != checkout.user_id
        ):
            raise RejectPayment("This order cannot be paid.")

    async def on_paid(payment: Payment) -> None:
        async with engine.begin() as conn:
            row = (
                await conn.execute(MARK_PAID, {"id": payment.order_id, "charge": payment.charge_id})
            ).first()
            if row is None:  # paid already (on_paid ran again after a lease ran out): no credit
                return
            await conn.execute(ADD_COINS, {"n": CREDITS[row.pack_id], "id": row.user_id})

    stars = StarsPayments(SqlAlchemyStorage(engine), secret=payload_secret, check=check, on_paid=on_paid)
    dp = Dispatcher()
    stars.setup(dp)
    bot = Bot(token, session=AiohttpSession(api=TelegramAPIServer.from_base(api_url)))
    app = web.Application()
    setup_application(app, dp, bot=bot)  # first, as the README says
    SimpleRequestHandler(
        dispatcher=dp, bot=bot, secret_token=webhook_secret, handle_in_background=False
    ).register(app, path=WEBHOOK_PATH)

    async def dispose(_app: web.Application) -> None:
        await engine.dispose()

    app.on_cleanup.append(dispose)
    return app, stars


def make_engine(url: str, schema: str | None) -> AsyncEngine:
    connect_args: dict[str, Any] = {}
    if schema:
        connect_args["server_settings"] = {"search_path": schema}  # asyncpg
    return create_async_engine(url, connect_args=connect_args)


def add_sql_counter(app: web.Application, engine: AsyncEngine) -> None:
    """Counting runs only: record statements and transaction ends; ``GET /bench/sql`` drains them."""
    seen: list[str] = []

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _sql(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        seen.append(" ".join(statement.split()))

    for name in ("BEGIN", "COMMIT", "ROLLBACK"):
        event.listen(engine.sync_engine, name.lower(), lambda conn, _n=name: seen.append(f"-- {_n}"))

    async def drain(_request: web.Request) -> web.Response:
        out = seen[:]
        seen.clear()
        return web.json_response(out)

    app.router.add_get("/bench/sql", drain)


async def serve() -> None:
    env = os.environ
    engine = make_engine(env["PEER_DB_URL"], env.get("PEER_PG_SCHEMA") or None)
    app, _stars = build(
        engine,
        api_url=env["PEER_API_URL"],
        token=env["PEER_BOT_TOKEN"],
        webhook_secret=env["PEER_WEBHOOK_SECRET"],
        payload_secret=env["PEER_PAYLOAD_SECRET"],
    )
    if env.get("PEER_COUNT_SQL") == "1":
        add_sql_counter(app, engine)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", int(env["PEER_PORT"]), reuse_port=True, backlog=512)
    await site.start()
    print(f"{READY} {os.getpid()}", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    parent = os.getppid()
    deadline = time.monotonic() + float(env.get("PEER_MAX_SECONDS", "1800"))
    try:
        while not stop.is_set():
            if os.getppid() != parent or time.monotonic() > deadline:
                print("peerapp: parent gone or time up; stopping", file=sys.stderr, flush=True)
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)
    finally:
        await runner.cleanup()


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(serve())


if __name__ == "__main__":
    main()
