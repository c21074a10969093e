"""Figure 8: flask_stars vs aiogram-stars 0.2.0, the same payments sent to each.

    python -m bench.peer --db sqlite|postgres|both [--payments 300] [--rounds 2] [--list]

Needs the ``bench`` extra (``pip install -e '.[bench]'``: aiogram-stars 0.2.0, aiogram,
aiosqlite, asyncpg, ...).

One payment = a pre_checkout_query POSTed to the webhook and approved (the app calls
``answerPreCheckoutQuery`` on the sandbox before it replies), then the successful_payment
POSTed and credited (the reply comes after the credit). Orders are made beforehand, one per
user, on each side's own tables. Each connection is one load thread with one keep-alive HTTP
connection (``bench.common.Http``), as in figure 1.

- **flask_stars**: the bench app (``bench/benchapp.py``) under gunicorn gthread, 2 workers x 4
  threads, ``POST /stars/webhook``, its own database (SQLite file / PostgreSQL schema
  ``peer_stars`` of ``stars_bench``, psycopg).
- **aiogram-stars**: ``bench/peerapp.py``, the host app its README describes (aiogram
  Dispatcher + Bot on the sandbox, ``StarsPayments(SqlAlchemyStorage(async engine))``,
  ``stars.setup(dp)``, aiohttp with ``SimpleRequestHandler(secret_token=...,
  handle_in_background=False)``), run as 1 process and as 2 processes sharing the port with
  ``SO_REUSEPORT``, on its own database (SQLite file / schema ``peer_aiogram``, asyncpg). The
  baseline is the better of the two deployments at each level. Its invoice payloads are signed
  with its secret (``<order>.<tag>``), as its invoices would be; flask_stars' are ``order:<id>``.

At 8 and 32 connections, ``--rounds`` rounds, each of ``--payments`` payments per deployment,
the order of the deployments reversed every round (after a warm-up of 48 payments each).
Server CPU is the serving processes' user + system time from /proc (gunicorn's workers; the
aiohttp processes), PostgreSQL's backends not included.

Before any figure counts, both sides are checked from their databases: every completed payment
credited exactly once (each buyer's balance in the host's table is one pack, the sum is the
sum sent), every approved query answered once at the sandbox, and 20 already-credited
successful_payment updates per side, each redelivered twice (the same bytes), credit nothing
more. SQL statements per payment: flask_stars counted as ``bench/sqlcount.py`` does
(SQLAlchemy events on its engine, in process); aiogram-stars in a separate counting run of
``bench.peerapp`` with the same listeners on its async engine's ``sync_engine``
(``PEER_COUNT_SQL=1``). COMMIT/ROLLBACK are counted, BEGIN is not (the drivers send it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.benchapp import PACKS, SECRET, TOKEN
from bench.common import (
    DBS,
    PG_URL,
    ROOT,
    WEBHOOK_HEADERS,
    Http,
    LoadSandbox,
    PoolRun,
    Report,
    Row,
    Server,
    ensure_pg_database,
    free_port,
    fresh_database,
    log,
    machine_line,
    payment_update,
    pre_checkout_update,
    preload_orders,
    print_report,
    run_pool,
)
from flask_stars.sandbox import Sandbox
from flask_stars.sandbox.params import truthy

LEVELS = (8, 32)
PAYMENTS = 300  # per run (one deployment, one level, one round)
ROUNDS = 2
WARMUP = 48
RUN_SECONDS = 45.0  # no new payment starts after this, per run
REDELIVER = 20  # credited payments per side sent again, each twice
COUNT_PAYMENTS = 5  # payments counted in the SQL counting run (after 2 warm-up ones)
STARS_WORKERS, STARS_THREADS = 2, 4
PEER_PROCESSES = (1, 2)
PAYLOAD_SECRET = "bench-peer-payload-secret-not-a-real-one"
PEER_SCHEMA = "peer_aiogram"
STARS_SCHEMA = "peer_stars"
STARS_USERS, PEER_USERS = 20_000_000, 30_000_000
PACK = PACKS[0]
STARS_PATH = "/stars/webhook"
PEER_PATH = "/webhook"  # bench.peerapp.WEBHOOK_PATH (checked in run)
STARS_SIDE = "flask_stars"


def peer_side(processes: int) -> str:
    return f"aiogram-stars x{processes}"


# --- the aiogram-stars deployment ----------------------------------------------------------


def proc_cpu(pids: list[int]) -> float:
    """CPU time (user + system, all threads) of ``pids`` so far, from /proc, as Server.cpu_seconds()."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


@dataclass
class PeerDb:
    sync_url: str  # for setup and checks (sqlite / psycopg)
    async_url: str  # what the app uses (aiosqlite / asyncpg)
    schema: str | None


class PeerServer:
    """``python -m bench.peerapp`` in ``processes`` processes sharing one port on 127.0.0.1."""

    def __init__(
        self, db: PeerDb, api_url: str, workdir: Path, *, processes: int, count_sql: bool = False
    ) -> None:
        self.db = db
        self.api_url = api_url
        self.workdir = workdir
        self.processes = processes
        self.count_sql = count_sql
        self.port = free_port()
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []
        self._files: list[Any] = []

    def __enter__(self) -> PeerServer:
        from bench.peerapp import READY

        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "PEER_DB_URL": self.db.async_url,
            "PEER_PG_SCHEMA": self.db.schema or "",
            "PEER_API_URL": self.api_url,
            "PEER_BOT_TOKEN": TOKEN,
            "PEER_WEBHOOK_SECRET": SECRET,
            "PEER_PAYLOAD_SECRET": PAYLOAD_SECRET,
            "PEER_PORT": str(self.port),
            "PEER_COUNT_SQL": "1" if self.count_sql else "",
            "PEER_MAX_SECONDS": "1800",
        }
        try:
            for i in range(self.processes):
                path = self.workdir / f"peerapp-{self.port}-{i}.log"
                f = open(path, "wb")
                self._files.append(f)
                self.logs.append(path)
                self.procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "bench.peerapp"],
                        env=env,
                        cwd=ROOT,
                        stdout=f,
                        stderr=subprocess.STDOUT,
                    )
                )
            deadline = time.monotonic() + 60
            while not all(READY in p.read_text(errors="replace") for p in self.logs):
                if any(p.poll() is not None for p in self.procs) or time.monotonic() > deadline:
                    raise RuntimeError(f"bench.peerapp did not start:\n{self.log_tail()}")
                time.sleep(0.1)
        except BaseException:
            self.__exit__()
            raise
        return self

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def cpu_seconds(self) -> float:
        return proc_cpu(self.pids())

    def log_tail(self, n: int = 10) -> str:
        out = []
        for path in self.logs:
            with contextlib.suppress(OSError):
                out += path.read_text(errors="replace").splitlines()[-n:]
        return "\n".join(out)

    def __exit__(self, *exc: object) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)
        for f in self._files:
            f.close()
        self._files = []


def peer_database(db: str, workdir: Path) -> PeerDb:
    """An empty database for the aiogram-stars host: its tables and aiogram-stars'."""
    from aiogram_stars.sqlalchemy import metadata as stars_metadata

    from bench.peerapp import host_metadata

    if db == "sqlite":
        path = workdir / "peer_aiogram.db"
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        peer = PeerDb(f"sqlite:///{path}", f"sqlite+aiosqlite:///{path}", None)
    else:
        ensure_pg_database()
        admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {PEER_SCHEMA}")
        admin.dispose()
        url = sa.make_url(PG_URL)
        sync = url.update_query_dict({"options": f"-csearch_path={PEER_SCHEMA}"})
        peer = PeerDb(
            sync.render_as_string(hide_password=False),
            url.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False),
            PEER_SCHEMA,
        )
    engine = sa.create_engine(peer.sync_url)
    with engine.begin() as conn:
        if db == "postgres":
            host_metadata.drop_all(conn)
            stars_metadata.drop_all(conn)
        host_metadata.create_all(conn)
        stars_metadata.create_all(conn)
        if db == "sqlite":
            conn.exec_driver_sql("PRAGMA journal_mode = WAL")
    engine.dispose()
    return peer


def preload_peer(db: PeerDb, n: int, user_base: int) -> list[tuple[str, int, str]]:
    """``n`` pending pack-1 orders in the host's ``orders`` (one per new user with 0 coins);
    [(order_id, user, signed payload)], the payload as aiogram-stars' invoice would carry it."""
    from aiogram_stars import PayloadSigner

    from bench.peerapp import orders, users

    signer = PayloadSigner(PAYLOAD_SECRET)
    jobs = [(secrets.token_urlsafe(16), user_base + i) for i in range(n)]
    engine = sa.create_engine(db.sync_url)
    with engine.begin() as conn:
        conn.execute(users.insert(), [{"id": u, "coins": 0} for _, u in jobs])
        conn.execute(
            orders.insert(),
            [
                {"id": oid, "user_id": u, "pack_id": PACK["id"], "stars": PACK["stars"], "status": "pending"}
                for oid, u in jobs
            ],
        )
    engine.dispose()
    return [(oid, u, signer.sign(oid, PACK["stars"])) for oid, u in jobs]


# --- one payment ---------------------------------------------------------------------------


@dataclass
class Done:
    ok: bool
    user: int
    query_id: str
    paid: bytes | None = None  # the successful_payment update, if it was sent
    error: str = ""


def with_payload(update: bytes, payload: str) -> bytes:
    """The update bench.common builds, carrying aiogram-stars' signed payload instead."""
    data = json.loads(update)
    inner = data.get("pre_checkout_query") or data["message"]["successful_payment"]
    inner["invoice_payload"] = payload
    return json.dumps(data).encode()


def pay_stars(ctx: Http, job: tuple[str, int]) -> Done:
    """As bench/payments.py's pay_one: approved when the reply says so, credited likewise."""
    order_id, user = job
    query_id = f"q{secrets.token_hex(8)}"
    status, resp = ctx.post(
        STARS_PATH, pre_checkout_update(query_id, user, order_id, PACK["stars"]), WEBHOOK_HEADERS
    )
    reply = json.loads(resp) if status == 200 else {}
    approved = reply.get("detail") == "ok" or (
        reply.get("method") == "answerPreCheckoutQuery" and reply.get("ok") is True
    )
    if not approved:
        return Done(False, user, query_id, None, f"pre-checkout {status} {resp[:80]!r}")
    body = payment_update("stx" + secrets.token_urlsafe(18), user, order_id, PACK["stars"])
    status, resp = ctx.post(STARS_PATH, body, WEBHOOK_HEADERS)
    detail = json.loads(resp).get("detail") if status == 200 else None
    if detail != "credited":
        return Done(False, user, query_id, body, f"payment {status} {resp[:80]!r}")
    return Done(True, user, query_id, body)


def sandbox_answer(tg: Sandbox, query_id: str) -> bool | None:
    """The ``ok`` of the answerPreCheckoutQuery the sandbox just received for ``query_id``."""
    for call in reversed(tg.calls[-1024:]):
        if call.method == "answerPreCheckoutQuery" and call.params.get("pre_checkout_query_id") == query_id:
            return truthy(call.params.get("ok"))
    return None


def pay_peer(tg: Sandbox, ctx: Http, job: tuple[str, int, str]) -> Done:
    """aiogram's webhook replies ``{}`` either way: approval is read from the sandbox (the answer
    reached it before the reply, handle_in_background=False), the credit from a 200."""
    order_id, user, payload = job
    query_id = f"q{secrets.token_hex(8)}"
    body = with_payload(pre_checkout_update(query_id, user, order_id, PACK["stars"]), payload)
    status, resp = ctx.post(PEER_PATH, body, WEBHOOK_HEADERS)
    if status != 200 or sandbox_answer(tg, query_id) is not True:
        return Done(False, user, query_id, None, f"pre-checkout {status} {resp[:80]!r}")
    body = with_payload(
        payment_update("stx" + secrets.token_urlsafe(18), user, order_id, PACK["stars"]), payload
    )
    status, resp = ctx.post(PEER_PATH, body, WEBHOOK_HEADERS)
    if status != 200:
        return Done(False, user, query_id, body, f"payment {status} {resp[:80]!r}")
    return Done(True, user, query_id, body)


# --- runs ----------------------------------------------------------------------------------


@dataclass
class Deployment:
    side: str
    port: int
    cpu_seconds: Callable[[], float]
    pay: Callable[[Http, Any], Done]
    jobs: Callable[[int], list[Any]]


@dataclass
class Tally:
    """One deployment at one level, summed over the rounds."""

    side: str
    concurrency: int
    runs: list[PoolRun] = field(default_factory=list)
    cpu: float = 0.0

    @property
    def attempted(self) -> int:
        return sum(len(r.results) for r in self.runs)

    @property
    def done(self) -> int:
        return sum(1 for r in self.runs for d in r.results if d.ok)

    @property
    def elapsed(self) -> float:
        return sum(r.elapsed for r in self.runs)

    @property
    def rate(self) -> float:
        return self.done / self.elapsed if self.elapsed else 0.0

    @property
    def cpu_per_payment(self) -> float:
        return self.cpu / self.done if self.done else math.nan

    def failures(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for r in self.runs:
            out.update(r.errors)
            out.update(d.error for d in r.results if not d.ok)
        return dict(out)


def measure(dep: Deployment, jobs: list[Any], concurrency: int, seconds: float) -> tuple[PoolRun, float]:
    cpu0 = dep.cpu_seconds()
    run = run_pool(
        concurrency,
        jobs,
        dep.pay,
        max_seconds=seconds,
        make_ctx=lambda: Http(dep.port),
        close_ctx=lambda ctx: ctx.close(),
    )
    cpu = dep.cpu_seconds() - cpu0
    done = sum(1 for d in run.results if d.ok)
    fails = Counter(run.errors) + Counter(d.error for d in run.results if not d.ok)
    log(
        f"  {dep.side:17} @{concurrency:<2}: {done}/{len(run.results)} in {run.elapsed:.1f} s = "
        f"{done / run.elapsed if run.elapsed else 0:.1f}/s, {cpu / done * 1000 if done else math.nan:.1f} ms "
        "server CPU each" + (f"; failures {dict(fails)}" if fails else "")
    )
    return run, cpu


def redeliver(port: int, path: str, bodies: list[bytes]) -> Counter[str]:
    """Each body sent twice, 8 connections at once; the replies, counted."""

    def send(ctx: Http, body: bytes) -> str:
        status, resp = ctx.post(path, body, WEBHOOK_HEADERS)
        try:
            detail = json.loads(resp).get("detail") if status == 200 else None
        except ValueError:
            detail = None
        return f"{status}" + (f" {detail}" if detail else "")

    run = run_pool(
        8,
        bodies + bodies,
        send,
        max_seconds=30.0,
        make_ctx=lambda: Http(port),
        close_ctx=lambda ctx: ctx.close(),
    )
    replies = Counter(run.results)
    replies.update(f"error {e}" for e in run.errors.elements())
    return replies


def count_peer_sql(
    db: PeerDb, tg: Sandbox, workdir: Path, jobs: list[Any]
) -> tuple[list[Done], dict[str, Any]]:
    """A separate one-process run of bench.peerapp with statement listeners; sequential payments."""
    done: list[Done] = []
    per: list[tuple[list[str], list[str]]] = []
    sweeps = 0
    with PeerServer(db, tg.url, workdir, processes=1, count_sql=True) as server:
        http = Http(server.port)

        def drain() -> list[str]:
            status, body = http.request("GET", "/bench/sql", None, {})
            assert status == 200, status
            return json.loads(body)

        try:
            for n, (order_id, user, payload) in enumerate(jobs):
                drain()
                query_id = f"q{secrets.token_hex(8)}"
                body = with_payload(pre_checkout_update(query_id, user, order_id, PACK["stars"]), payload)
                status, _ = http.post(PEER_PATH, body, WEBHOOK_HEADERS)
                pre = drain()
                paid = with_payload(
                    payment_update("stx" + secrets.token_urlsafe(18), user, order_id, PACK["stars"]), payload
                )
                status2, _ = http.post(PEER_PATH, paid, WEBHOOK_HEADERS)
                pay = drain()
                ok = status == 200 and status2 == 200 and sandbox_answer(tg, query_id) is True
                done.append(Done(ok, user, query_id, paid, "" if ok else f"counting run {status}/{status2}"))
                if n >= 2:  # the first two warm up (connections, prepared statements)
                    # The refund outbox's periodic sweep (every 10 s) is time-, not payment-bound.
                    sweep = [s for s in pre + pay if "FROM stars_refunds" in s]
                    sweeps += len(sweep)
                    per.append(([s for s in pre if s not in sweep], [s for s in pay if s not in sweep]))
        finally:
            http.close()
    return done, {"per": per, "sweeps": sweeps}


def executed(stmts: list[str]) -> int:
    """As bench/sqlcount.py: statements sent (COMMIT/ROLLBACK counted, implicit BEGIN not)."""
    return sum(1 for s in stmts if s != "-- BEGIN")


def commits(stmts: list[str]) -> int:
    return sum(1 for s in stmts if s == "-- COMMIT")


def balances(url: str, table: str) -> dict[int, int]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        out = {int(i): int(c) for i, c in conn.execute(sa.text(f"SELECT id, coins FROM {table}"))}
    engine.dispose()
    return out


def scalar(url: str, sql: str) -> Any:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        value = conn.exec_driver_sql(sql).scalar()
    engine.dispose()
    return value


def check_credits(
    label: str, results: list[Done], coins: dict[int, int], answers: dict[str, list[bool]]
) -> tuple[bool, str]:
    """Every completed payment credited once; nothing credited without a payment sent."""
    pack = PACK["credits"]
    ok_users = {d.user for d in results if d.ok}
    sent_users = {d.user for d in results if d.paid is not None}
    over = [u for u, c in coins.items() if c > pack]
    missing = [u for u in ok_users if coins.get(u, 0) != pack]
    stray = [u for u, c in coins.items() if c and u not in sent_users]
    unsure = sorted(sent_users - ok_users)
    unsure_credited = sum(1 for u in unsure if coins.get(u, 0) == pack)
    bad_answers = [d.query_id for d in results if d.ok and answers.get(d.query_id) != [True]]
    total = sum(coins.values())
    passed = not over and not missing and not stray and not bad_answers
    note = (
        f"{label}: {len(ok_users)} payments completed; balances sum {total / pack:g} packs "
        f"(sum sent {len(ok_users)}"
        + (f" + {unsure_credited} of {len(unsure)} sent without a success reply" if unsure else "")
        + f"); users over one pack {len(over)}, completed but not credited {len(missing)}, "
        f"credited without a payment {len(stray)}; approved queries not answered exactly once "
        f"ok=True at the sandbox {len(bad_answers)} -> {'OK' if passed else 'FAILED'}"
    )
    return passed, note


def run(db: str, workdir: Path, args: argparse.Namespace) -> Report:
    import aiogram
    import aiogram_stars

    from bench.peerapp import CREDITS, WEBHOOK_PATH
    from bench.sqlcount import count as count_stars_sql

    assert all(CREDITS[p["id"]] == p["credits"] for p in PACKS), "peerapp CREDITS differ from PACKS"
    assert WEBHOOK_PATH == PEER_PATH
    payments = getattr(args, "payments", PAYMENTS)
    rounds = getattr(args, "rounds", ROUNDS)
    began = time.perf_counter()

    stars_url = fresh_database(db, workdir, name=STARS_SCHEMA)
    peer_db = peer_database(db, workdir)
    per_side = WARMUP + payments * rounds * len(LEVELS)
    stars_pool = iter(preload_orders(stars_url, per_side, bare=False, user_base=STARS_USERS))
    peer_pool = iter(preload_peer(peer_db, len(PEER_PROCESSES) * per_side + COUNT_PAYMENTS + 2, PEER_USERS))
    lock = threading.Lock()

    def taker(pool: Any) -> Callable[[int], list[Any]]:
        def take(n: int) -> list[Any]:
            with lock:
                return [job for _, job in zip(range(n), pool, strict=False)]

        return take

    tallies: dict[tuple[str, int], Tally] = {}
    results: dict[str, list[Done]] = {STARS_SIDE: [], "peer": []}
    replies: dict[str, Counter[str]] = {}
    tg = LoadSandbox(token=TOKEN).start()
    try:
        with (
            Server(stars_url, tg.url, workdir, workers=STARS_WORKERS, threads=STARS_THREADS) as server,
            PeerServer(peer_db, tg.url, workdir, processes=1) as peer1,
            PeerServer(peer_db, tg.url, workdir, processes=2) as peer2,
        ):
            tg.set_webhook_target(server.base + STARS_PATH, None)
            deps = [
                Deployment(STARS_SIDE, server.port, server.cpu_seconds, pay_stars, taker(stars_pool)),
                *(
                    Deployment(
                        peer_side(p.processes),
                        p.port,
                        p.cpu_seconds,
                        lambda ctx, job: pay_peer(tg, ctx, job),
                        taker(peer_pool),
                    )
                    for p in (peer1, peer2)
                ),
            ]
            log(
                f"peer [{db}]: warm-up ({WARMUP} each), then {payments} payments x {rounds} rounds "
                f"at {LEVELS} connections"
            )
            for dep in deps:
                run_, _ = measure(dep, dep.jobs(WARMUP), 8, 30.0)
                results[STARS_SIDE if dep.side == STARS_SIDE else "peer"].extend(run_.results)
            flip = 0
            for c in LEVELS:
                for _ in range(rounds):
                    order = deps if flip % 2 == 0 else deps[::-1]
                    flip += 1
                    for dep in order:
                        run_, cpu = measure(dep, dep.jobs(payments), c, RUN_SECONDS)
                        tally = tallies.setdefault((dep.side, c), Tally(dep.side, c))
                        tally.runs.append(run_)
                        tally.cpu += cpu
                        results[STARS_SIDE if dep.side == STARS_SIDE else "peer"].extend(run_.results)

            # Redelivery: some credited payments, each sent twice more (same bytes).
            stars_coins = balances(stars_url, "host_users")
            peer_coins = balances(peer_db.sync_url, "users")
            stars_rows = scalar(stars_url, "SELECT count(*) FROM stars_payments WHERE credited")
            peer_rows = scalar(peer_db.sync_url, "SELECT count(*) FROM stars_payments")
            again: dict[str, list[bytes]] = {}
            for side, done in results.items():
                credited = [d.paid for d in done if d.ok and d.paid is not None]
                again[side] = credited[:: max(1, len(credited) // REDELIVER)][:REDELIVER]
            log(f"peer [{db}]: redelivering {len(again[STARS_SIDE])} + {len(again['peer'])} payments twice")
            replies[STARS_SIDE] = redeliver(server.port, STARS_PATH, again[STARS_SIDE])
            replies["peer"] = redeliver(peer2.port, PEER_PATH, again["peer"])
            redelivered_ok = (
                balances(stars_url, "host_users") == stars_coins
                and balances(peer_db.sync_url, "users") == peer_coins
                and scalar(stars_url, "SELECT count(*) FROM stars_payments WHERE credited") == stars_rows
                and scalar(peer_db.sync_url, "SELECT count(*) FROM stars_payments") == peer_rows
            )
            peer_logs = peer1.log_tail(5) + "\n" + peer2.log_tail(5)
            stars_log = server.log_tail(5)

            log(f"peer [{db}]: SQL counting run of bench.peerapp")
            counted_done, peer_sql = count_peer_sql(
                peer_db, tg, workdir, [next(peer_pool) for _ in range(COUNT_PAYMENTS + 2)]
            )
            results["peer"].extend(counted_done)
        answers: dict[str, list[bool]] = {}
        for call in list(tg.calls):
            if call.method == "answerPreCheckoutQuery":
                answers.setdefault(str(call.params.get("pre_checkout_query_id")), []).append(
                    truthy(call.params.get("ok"))
                )
    finally:
        tg.stop()

    log(f"peer [{db}]: SQL count of flask_stars (bench/sqlcount.py's way)")
    stars_sql = count_stars_sql(db, workdir)["flask_stars"]

    # --- checks, before any figure ---------------------------------------------------------
    report = Report()
    ok_stars, note_stars = check_credits(
        f"[{db}] 8. check flask_stars", results[STARS_SIDE], balances(stars_url, "host_users"), answers
    )
    ok_peer, note_peer = check_credits(
        f"[{db}] 8. check aiogram-stars", results["peer"], balances(peer_db.sync_url, "users"), answers
    )
    peer_paid = scalar(peer_db.sync_url, "SELECT count(*) FROM orders WHERE status = 'paid'")
    peer_accepted = scalar(peer_db.sync_url, "SELECT count(*) FROM stars_payments WHERE status = 'accepted'")
    peer_recorded = scalar(peer_db.sync_url, "SELECT count(*) FROM stars_payments")
    stars_credited = scalar(stars_url, "SELECT count(*) FROM stars_payments WHERE credited")
    sent = {side: sum(1 for d in results[side] if d.paid is not None) for side in results}
    ledger_ok = (
        peer_paid == peer_accepted == peer_recorded == sent["peer"] and stars_credited == sent[STARS_SIDE]
    )
    checked = ok_stars and ok_peer and redelivered_ok and ledger_ok
    wal = ""
    if db == "sqlite":
        wal = "; ".join(
            f"{name} journal_mode={scalar(url, 'PRAGMA journal_mode')}, synchronous="
            f"{scalar(url, 'PRAGMA synchronous')} (2 = FULL, the default)"
            for name, url in (("flask_stars", stars_url), ("aiogram-stars", peer_db.sync_url))
        )

    # --- figures -----------------------------------------------------------------------------
    void = "" if checked else " (VOID: a check failed)"
    best_of: dict[int, Tally] = {}
    for c in LEVELS:
        s = tallies[(STARS_SIDE, c)]
        peers = [tallies[(peer_side(p), c)] for p in PEER_PROCESSES]
        best = best_of[c] = max(peers, key=lambda t: t.rate)
        ratio = s.rate / best.rate if best.rate else math.nan
        short = best.side.removeprefix("aiogram-stars ")
        report.rows.append(
            Row(
                f"8. payments/s @{c} conn vs aiogram-stars [{db}]",
                f"{s.rate:.1f}/s",
                f"{best.rate:.1f}/s ({short})",
                ratio,
                ">= 1.0" + void,
                checked and ratio >= 1.0,
            )
        )
        cpu_ratio = s.cpu_per_payment / best.cpu_per_payment if best.cpu_per_payment else math.nan
        report.rows.append(
            Row(
                f"8. server CPU per payment @{c} vs aiogram-stars [{db}]",
                f"{s.cpu_per_payment * 1000:.1f} ms",
                f"{best.cpu_per_payment * 1000:.1f} ms ({short})",
                cpu_ratio,
                "(x aiogram-stars; no target)",
            )
        )
    s_pre, s_pay = executed(stars_sql["pre_checkout"]), executed(stars_sql["payment"])
    s_commits = commits(stars_sql["pre_checkout"]) + commits(stars_sql["payment"])
    per = peer_sql["per"]
    if per:
        p_pre = sum(executed(a) for a, _ in per) / len(per)
        p_pay = sum(executed(b) for _, b in per) / len(per)
        p_commits = sum(commits(a) + commits(b) for a, b in per) / len(per)
        report.rows.append(
            Row(
                f"8. SQL statements per payment vs aiogram-stars [{db}]",
                f"{s_pre + s_pay} ({s_pre} pre-checkout + {s_pay} payment)",
                f"{p_pre + p_pay:g} ({p_pre:g} + {p_pay:g})",
                (s_pre + s_pay) / (p_pre + p_pay),
                "(count; COMMIT/ROLLBACK incl.)",
            )
        )
        report.rows.append(
            Row(
                f"8. commits per payment vs aiogram-stars [{db}]",
                f"{s_commits}",
                f"{p_commits:g}",
                s_commits / p_commits if p_commits else math.nan,
                "(count)",
            )
        )

    # --- notes ---------------------------------------------------------------------------------
    n = report.notes
    n.append(
        f"[{db}] 8. setup: flask_stars = bench.benchapp under gunicorn gthread {STARS_WORKERS} workers x "
        f"{STARS_THREADS} threads, POST {STARS_PATH}; aiogram-stars {aiogram_stars.__version__} "
        f"(aiogram {aiogram.__version__}) = bench.peerapp on aiohttp, 1 process and 2 processes "
        "sharing the port (SO_REUSEPORT), SimpleRequestHandler(handle_in_background=False); "
        + (
            f"SQLite, WAL on both sides: {wal}"
            if db == "sqlite"
            else f"PostgreSQL stars_bench, schemas {STARS_SCHEMA} (psycopg) and {PEER_SCHEMA} (asyncpg)"
        )
    )
    for c in LEVELS:
        parts = []
        for side in (STARS_SIDE, *(peer_side(p) for p in PEER_PROCESSES)):
            t = tallies[(side, c)]
            fails = t.failures()
            parts.append(
                f"{side} {t.done}/{t.attempted} in {t.elapsed:.1f} s = {t.rate:.1f}/s, "
                f"{t.cpu_per_payment * 1000:.1f} ms CPU each" + (f", failures {fails}" if fails else "")
            )
        n.append(
            f"[{db}] 8. @{c} conn, {rounds} rounds of {payments} (cap {RUN_SECONDS:.0f} s a run), order "
            f"reversed each round: "
            + "; ".join(parts)
            + f"; best aiogram-stars deployment: {best_of[c].side}"
        )
    n.append(note_stars)
    n.append(note_peer)
    n.append(
        f"[{db}] 8. ledgers: flask_stars {stars_credited} credited rows for {sent[STARS_SIDE]} "
        f"successful_payment sent; aiogram-stars {peer_recorded} stars_payments rows "
        f"({peer_accepted} accepted), {peer_paid} orders paid, for {sent['peer']} sent -> "
        + ("OK" if ledger_ok else "FAILED")
    )
    n.append(
        f"[{db}] 8. redelivery: {len(again[STARS_SIDE])} flask_stars and {len(again['peer'])} aiogram-stars "
        "credited successful_payment updates sent twice more each (same bytes; aiogram-stars to the "
        f"2-process deployment): replies flask_stars {dict(replies[STARS_SIDE])}, aiogram-stars "
        f"{dict(replies['peer'])}; balances and ledger rows unchanged: {'OK' if redelivered_ok else 'FAILED'}"
    )
    n.append(
        f"[{db}] 8. SQL counted with SQLAlchemy before_cursor_execute/commit/rollback events: flask_stars "
        "by bench/sqlcount.py (in process, its 2nd payment); aiogram-stars in a counting run of "
        f"bench.peerapp (PEER_COUNT_SQL=1, listeners on the async engine's sync_engine), mean of "
        f"{len(per)} sequential payments after 2 warm-up ones"
        + (f", {peer_sql['sweeps']} refund-outbox sweep statements left out" if peer_sql["sweeps"] else "")
        + "; BEGIN not counted on either side (the drivers send it implicitly)"
    )
    if getattr(args, "list", False):
        for step in ("pre_checkout", "payment"):
            n.append(f"[{db}] flask_stars {step}: " + " | ".join(stars_sql[step]))
        if per:
            n.append(f"[{db}] aiogram-stars pre_checkout: " + " | ".join(per[-1][0]))
            n.append(f"[{db}] aiogram-stars payment: " + " | ".join(per[-1][1]))
    n.append(
        f"[{db}] 8. caveats: aiogram-stars does less - the host owns the orders and the credit (its on_paid "
        "callback), there is no update log, and the host's credit is a separate transaction after "
        "aiogram-stars' claim (not in its ledger's transaction; it settles the payment in a third); "
        "server CPU leaves out PostgreSQL's backends; the load and the sandbox share the 2 cores"
    )
    failed_any = any(t.failures() for t in tallies.values())
    if failed_any or not checked:
        n.append(f"[{db}] 8. gunicorn log tail: {stars_log[-400:]}")
        n.append(f"[{db}] 8. peerapp log tail: {peer_logs[-600:]}")
    n.append(f"[{db}] 8. took {time.perf_counter() - began:.0f} s")
    return report


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--payments", type=int, default=PAYMENTS, help="payments per run (per deployment)")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="runs per deployment and level")
    parser.add_argument("--list", action="store_true", help="print the statements counted")


def main() -> None:
    parser = argparse.ArgumentParser(description="flask_stars vs aiogram-stars 0.2.0 (8)")
    parser.add_argument("--db", choices=[*DBS, "both"], default="both")
    add_args(parser)
    args = parser.parse_args()
    dbs = DBS if args.db == "both" else (args.db,)
    began = time.perf_counter()
    report = Report()
    with tempfile.TemporaryDirectory(prefix="stars-bench-") as tmp:
        for db in dbs:
            log(f"flask_stars vs aiogram-stars on {db}")
            report.extend(run(db, Path(tmp), args))
    report.notes.append(f"time: total {time.perf_counter() - began:.0f} s")
    machine = machine_line(STARS_WORKERS, STARS_THREADS) + (
        "; aiogram-stars: aiohttp, 1 or 2 processes (SO_REUSEPORT)"
    )
    print_report(report, machine=machine)


if __name__ == "__main__":
    main()
