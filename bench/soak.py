"""Figure 7: soak, 10,000 payments with redeliveries in random order, then the books checked.

    python -m bench.soak --db postgres [--payments 10000] [--connections 12] [--max-seconds 600]

10,000 orders for 500 users (20 each: 10 of each pack), made beforehand. Each payment is
its pre_checkout_query, then its successful_payment; 35% of payments (seeded random
choice) get their successful_payment delivered 2 or 3 times (the same update, as
Telegram redelivers it). 12 connections (load threads) send to /stars/webhook on gunicorn
(4 workers x 4 threads), each taking a random next delivery among those that may go now:
a successful_payment (first or repeat) once its own pre-checkout was answered, a
pre-checkout once its order is open. So repeats arrive at random later points, often
after other payments of the same user, sometimes at the same moment as the first
delivery in another worker. No fault is injected: every answer must be 2xx.

One pending order per user and pack is what the database allows (a partial unique index),
as for a user who pays, then clicks to buy again. So a user's orders for one pack wait
under the status "queued" (which nothing in flask_stars reads), and the load thread that
sees one credited opens the next (one UPDATE to "pending" from this process) before its
pre-checkout may go; the user's two packs run side by side.

Then from the database: every payment whose successful_payment was answered is in
stars_payments exactly once, credited, under its charge id (and nothing else is), and
every user's coins in host_users equal the credits of the packs of their distinct paid
charges, computed from what was sent. Bounded: no new delivery after --max-seconds (the
counts sent are reported). A database of its own (SQLite file / PostgreSQL schema
``soak``); the full run (``python -m bench``) does it on PostgreSQL only.
"""

from __future__ import annotations

import argparse
import json
import random
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from bench.benchapp import PACK_BY_ID, PACKS, TOKEN
from bench.common import (
    WEBHOOK_HEADERS,
    Http,
    LoadSandbox,
    Report,
    Row,
    Server,
    fresh_database,
    log,
    main,
    payment_update,
    pct,
    pre_checkout_update,
    run_pool,
)
from flask_stars.models import Order

PAYMENTS = 10_000
#: Payments per user (half for each pack): 10,000 payments -> 500 users.
PER_USER = 20
#: The share of payments whose successful_payment is delivered more than once (2 or 3 times).
DUP_SHARE = 0.35
CONNECTIONS = 12
MAX_SECONDS = 600.0
#: A successful_payment answered non-2xx (or not at all) is sent again, as Telegram does,
#: at most this many times in all.
MAX_ATTEMPTS = 4
SEED = 7
QUEUED = "queued"
USER_BASE = 90_000_000


@dataclass
class Payment:
    n: int
    user: int
    pack_id: str
    order_id: str
    charge_id: str
    deliveries: int  # how many times its successful_payment is sent
    pre: bytes = b""
    paid: bytes = b""
    next: Payment | None = None  # the same user's next order for the same pack
    answered: bool = False  # its pre-checkout was approved
    delivered: int = 0  # successful_payment deliveries answered 2xx
    credited: int = 0  # of them, answered "credited"
    pre_seq: int = -1  # when (in deliveries sent so far) its pre-checkout went
    paid_seqs: list[int] = field(default_factory=list)  # when each successful_payment went
    in_flight: int = 0  # successful_payment deliveries sent and not yet answered


@dataclass
class Delivery:
    kind: str  # "pre" | "paid"
    payment: Payment
    attempt: int = 1


@dataclass
class Tally:
    sent: Counter[str] = field(default_factory=Counter)  # requests sent, by kind
    non_2xx: Counter[str] = field(default_factory=Counter)  # "kind status" -> count
    transport: Counter[str] = field(default_factory=Counter)  # exceptions instead of an answer
    details: Counter[str] = field(default_factory=Counter)  # "kind detail" of 2xx answers
    refused: int = 0  # pre-checkouts not approved
    seq: int = 0  # deliveries sent so far
    overlapping: int = 0  # successful_payments sent while another of the same charge was in flight
    opened: int = 0  # next orders this process opened
    open_failed: int = 0  # next orders this process could not open


class Schedule:
    """The deliveries that may go now; a load thread takes a random one (blocking while
    others are in flight and may make new ones ready), until none is left or time is up."""

    def __init__(self, first: list[Payment], rng: random.Random, deadline: float) -> None:
        self.ready: list[Delivery] = [Delivery("pre", p) for p in first]
        self.rng = rng
        self.deadline = deadline
        self.in_flight = 0
        self.stopped_by_time = False
        self.cond = threading.Condition()

    def __iter__(self) -> Iterator[Delivery]:
        # run_pool calls next() under its own lock, so one thread at a time waits here.
        while True:
            with self.cond:
                while not self.ready and self.in_flight:
                    if not self.cond.wait(timeout=max(0.0, self.deadline - time.perf_counter())):
                        self.stopped_by_time = True
                        return
                if not self.ready:
                    return
                if time.perf_counter() >= self.deadline:
                    self.stopped_by_time = True
                    return
                i = self.rng.randrange(len(self.ready))
                self.ready[i], self.ready[-1] = self.ready[-1], self.ready[i]
                self.in_flight += 1
                job = self.ready.pop()
            yield job

    def done(self, new: list[Delivery]) -> None:
        with self.cond:
            self.ready.extend(new)
            self.in_flight -= 1
            self.cond.notify_all()


def plan(n: int, seed: int) -> tuple[list[Payment], list[Payment]]:
    """``n`` payments for ``n // PER_USER`` users (round robin over users, then packs); the
    first order of every (user, pack) lane is open, the rest queued behind it."""
    rng = random.Random(seed)
    users = max(1, n // PER_USER)
    twice = set(rng.sample(range(n), round(n * DUP_SHARE)))
    payments = []
    last: dict[tuple[int, str], Payment] = {}
    first = []
    for i in range(n):
        user = USER_BASE + i % users
        pack = PACKS[(i // users) % len(PACKS)]
        deliveries = rng.choice((2, 3)) if i in twice else 1
        p = Payment(
            i, user, pack["id"], secrets.token_urlsafe(16), "stx" + secrets.token_urlsafe(18), deliveries
        )
        p.pre = pre_checkout_update(f"q{secrets.token_hex(8)}", user, p.order_id, pack["stars"])
        p.paid = payment_update(p.charge_id, user, p.order_id, pack["stars"])
        prev = last.get((user, pack["id"]))
        if prev is None:
            first.append(p)
        else:
            prev.next = p
        last[(user, pack["id"])] = p
        payments.append(p)
    return payments, first


def preload(url: str, payments: list[Payment], first: list[Payment]) -> None:
    """The users (0 coins) and every order: the lanes' first ones pending, the rest queued."""
    now = datetime.now(UTC)
    later = now + timedelta(hours=2)
    opened = {p.n for p in first}
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        users = sorted({p.user for p in payments})
        conn.execute(
            sa.text("INSERT INTO host_users (id, coins) VALUES (:id, 0)"), [{"id": u} for u in users]
        )
        conn.execute(
            Order.__table__.insert(),
            [
                {
                    "id": p.order_id,
                    "user_id": p.user,
                    "pack_id": p.pack_id,
                    "stars": PACK_BY_ID[p.pack_id]["stars"],
                    "status": "pending" if p.n in opened else QUEUED,
                    "invoice_url": f"https://t.me/$soak{p.order_id}",
                    "created_at": now,
                    "expires_at": later,
                }
                for p in payments
            ],
        )
    engine.dispose()


def run(db: str, workdir: Path, args: argparse.Namespace) -> Report:
    n = getattr(args, "payments", PAYMENTS)
    connections = getattr(args, "connections", CONNECTIONS)
    max_seconds = getattr(args, "max_seconds", MAX_SECONDS)
    seed = getattr(args, "seed", SEED)
    url = fresh_database(db, workdir, name="soak")
    log(f"soak [{db}]: planning {n} payments, {DUP_SHARE:.0%} delivered 2 or 3 times")
    payments, first = plan(n, seed)
    preload(url, payments, first)
    users = len({p.user for p in payments})
    repeats = sum(p.deliveries - 1 for p in payments)
    twice = sum(1 for p in payments if p.deliveries > 1)

    # This process opens each next order; SQLite waits its turn for the write lock.
    opener = sa.create_engine(
        url,
        pool_size=connections,
        **({"connect_args": {"timeout": 30}} if db == "sqlite" else {}),
    )
    open_next = sa.text(f"UPDATE stars_orders SET status = 'pending' WHERE id = :id AND status = '{QUEUED}'")
    tally = Tally()
    lock = threading.Lock()
    schedule = Schedule(first, random.Random(seed + 1), time.perf_counter() + max_seconds)

    def send(ctx: Http, job: Delivery) -> None:
        p = job.payment
        new: list[Delivery] = []
        try:
            body = p.pre if job.kind == "pre" else p.paid
            with lock:
                tally.sent[job.kind] += 1
                if job.kind == "pre":
                    p.pre_seq = tally.seq
                else:
                    p.paid_seqs.append(tally.seq)
                    tally.overlapping += p.in_flight > 0
                    p.in_flight += 1
                tally.seq += 1
            try:
                status, resp = ctx.post("/stars/webhook", body, WEBHOOK_HEADERS)
            except Exception as exc:
                with lock:
                    tally.transport[f"{job.kind} {exc.__class__.__name__}: {str(exc)[:60]}"] += 1
                status, resp = 0, b""
            ok = 200 <= status < 300
            detail = str(json.loads(resp).get("detail")) if ok else ""
            with lock:
                if job.kind == "paid":
                    p.in_flight -= 1
                if status and not ok:
                    tally.non_2xx[f"{job.kind} {status}"] += 1
                if ok:
                    tally.details[f"{job.kind} {detail}"] += 1
                if job.kind == "pre" and ok and detail == "ok":
                    p.answered = True
                elif job.kind == "pre":
                    tally.refused += 1
                elif ok:
                    p.delivered += 1
                    p.credited += detail == "credited"
            if job.kind == "pre" and p.answered:
                new = [Delivery("paid", p) for _ in range(p.deliveries)]
            elif job.kind == "paid" and not ok and job.attempt < MAX_ATTEMPTS:
                new = [Delivery("paid", p, job.attempt + 1)]  # Telegram sends it again
            elif job.kind == "paid" and detail == "credited" and p.next is not None:
                try:
                    with opener.begin() as conn:
                        opened = conn.execute(open_next, {"id": p.next.order_id}).rowcount
                except Exception as exc:
                    log(f"soak: could not open order {p.next.order_id}: {exc!r}")
                    opened = 0
                if opened:
                    new = [Delivery("pre", p.next)]
                    with lock:
                        tally.opened += 1
                else:
                    with lock:
                        tally.open_failed += 1
        finally:
            schedule.done(new)

    tg = LoadSandbox(token=TOKEN).start()
    try:
        with Server(url, tg.url, workdir) as server:
            tg.set_webhook_target(server.base + "/stars/webhook", None)
            log(
                f"soak [{db}]: {n} payments for {users} users, {twice} with repeats ({repeats} extra "
                f"deliveries), {connections} connections, {server.workers} workers, cap {max_seconds:.0f} s"
            )
            stop = threading.Event()

            def progress() -> None:
                while not stop.wait(15.0):
                    with lock:
                        sent = dict(tally.sent)
                    log(f"  soak [{db}]: {sent} sent, {len(schedule.ready)} ready")

            ticker = threading.Thread(target=progress, daemon=True)
            ticker.start()
            schedule.deadline = time.perf_counter() + max_seconds
            load = run_pool(
                connections,
                schedule,
                send,
                max_seconds=max_seconds,
                make_ctx=lambda: Http(server.port),
                close_ctx=lambda ctx: ctx.close(),
            )
            stop.set()
            errors_in_log = server.log_tail(5) if tally.non_2xx or tally.transport or load.errors else ""
            workers = server.workers
    finally:
        tg.stop()
        opener.dispose()

    # The books, from the database.
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT telegram_payment_charge_id, user_id, credited FROM stars_payments")
        ).all()
        coins = dict(conn.execute(sa.text("SELECT id, coins FROM host_users")).all())
        paid_orders = conn.execute(
            sa.text("SELECT count(*) FROM stars_orders WHERE status = 'paid'")
        ).scalar()
    engine.dispose()
    delivered = [p for p in payments if p.delivered]
    expected: Counter[int] = Counter({u: 0 for u in coins})
    for p in delivered:
        expected[p.user] += PACK_BY_ID[p.pack_id]["credits"]
    wrong = sum(1 for u in expected.keys() | coins.keys() if coins.get(u) != expected[u])
    credited_rows = Counter(charge for charge, _u, credited in rows if credited)
    sent_charges = {p.charge_id for p in delivered}
    not_once = sum(1 for c in sent_charges if credited_rows[c] != 1)
    stray = sum(1 for c in credited_rows if c not in sent_charges)
    uncredited_rows = sum(1 for _c, _u, credited in rows if not credited)
    ledger_ok = not not_once and not stray and not uncredited_rows and len(rows) == len(delivered)
    non_2xx = sum(tally.non_2xx.values()) + sum(tally.transport.values()) + sum(load.errors.values())
    answered_credited = sum(1 for p in delivered if p.credited == 1)
    sent = sum(tally.sent.values())
    rate = len(delivered) / load.elapsed if load.elapsed else 0.0
    dup_sent = sum(1 for p in delivered if p.delivered > 1)
    # How the repeats were interleaved: deliveries sent between a payment's first and last
    # successful_payment, and repeats sent after the same lane's next pre-checkout.
    spreads = [max(p.paid_seqs) - min(p.paid_seqs) - 1 for p in payments if len(p.paid_seqs) > 1]
    after_next = sum(
        1
        for p in payments
        if p.next is not None and p.next.pre_seq >= 0
        for seq in sorted(p.paid_seqs)[1:]
        if seq > p.next.pre_seq
    )

    report = Report()
    report.rows.append(
        Row(
            f"7. soak: {n:,} payments, >= 30% delivered twice or more, random order, "
            f"{workers} workers [{db}]",
            f"{wrong} wrong balances, {non_2xx} non-2xx",
            "0 / 0",
            None,
            "0 wrong, 0 non-2xx",
            wrong == 0 and non_2xx == 0 and ledger_ok and len(delivered) == n,
        )
    )
    report.notes.append(
        f"[{db}] soak: {sent} deliveries sent in {load.elapsed:.1f} s ({tally.sent['pre']} pre-checkouts, "
        f"{tally.sent['paid']} successful_payments) over {connections} connections; "
        f"{len(delivered)} of {n} payments delivered ({rate:.1f} payments/s), "
        f"{dup_sent} of them ({dup_sent / max(1, len(delivered)):.0%}) 2 or 3 times, "
        f"{tally.sent['paid'] - len(delivered)} repeat deliveries; {users} users; "
        f"between a payment's first and last delivery went a median {pct(spreads, 0.5):.0f} "
        f"(max {max(spreads, default=0)}) other deliveries, {after_next} repeats went after the "
        f"user's next pre-checkout for that pack, {tally.overlapping} while another delivery of the "
        f"same charge was in flight; {tally.opened} next orders opened by the load process"
        + (
            f"; stopped by the {max_seconds:.0f} s cap"
            if schedule.stopped_by_time or load.stopped_by_time
            else ""
        )
    )
    report.notes.append(
        f"[{db}] soak books: {len(rows)} ledger rows, {sum(credited_rows.values())} credited, "
        f"{len(credited_rows)} distinct charges; {not_once} sent charges not credited exactly once, "
        f"{stray} credited charges never sent, {uncredited_rows} uncredited rows; {paid_orders} paid orders; "
        f"{answered_credited} payments answered 'credited' exactly once; "
        f"{wrong} of {len(expected)} balances wrong; answers {dict(sorted(tally.details.items()))}"
        + (f"; non-2xx {dict(tally.non_2xx)}" if tally.non_2xx else "")
        + (f"; no answer {dict(tally.transport)}" if tally.transport else "")
        + (f"; load errors {dict(load.errors)}" if load.errors else "")
        + (f"; {tally.refused} pre-checkouts refused" if tally.refused else "")
        + (f"; {tally.open_failed} next orders not opened" if tally.open_failed else "")
    )
    if errors_in_log:
        report.notes.append(f"[{db}] gunicorn log tail: {errors_in_log[-600:]}")
    return report


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--payments", type=int, default=PAYMENTS, help="payments to make (20 per user)")
    parser.add_argument("--connections", type=int, default=CONNECTIONS, help="load threads (8-16)")
    parser.add_argument(
        "--max-seconds", type=float, default=MAX_SECONDS, help="no new delivery after this many seconds"
    )
    parser.add_argument("--seed", type=int, default=SEED, help="the random choice of repeats and order")


if __name__ == "__main__":
    main("soak: payments with redeliveries in random order (7)", run, add_args)
