"""Figures 1 and 2: payment throughput and pre-checkout latency, flask_stars vs a bare endpoint.

    python -m bench.payments --db sqlite|postgres|both

One payment = the pre_checkout_query POSTed to the webhook and answered (the app calls
answerPreCheckoutQuery on the sandbox) + the successful_payment POSTed and credited.
Each "Telegram connection" is one load thread with one keep-alive connection, sending its
payments back to back. flask_stars gets /stars/webhook; the baseline gets /bare/pre_checkout
and /bare/payment on the same gunicorn workers and database (see bench/benchapp.py).

Pre-checkout latency is measured in the same runs: from the moment the load thread sends
the webhook request to the moment the sandbox (Telegram) received answerPreCheckoutQuery
(the sandbox stamps each call; both clocks are this process's). Its baseline is one bare
answerPreCheckoutQuery round trip from this process to the same sandbox, at the same
concurrency.
"""

from __future__ import annotations

import argparse
import json
import math
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import requests
import sqlalchemy as sa

from bench.benchapp import TOKEN
from bench.common import (
    WEBHOOK_HEADERS,
    Http,
    LoadSandbox,
    PoolRun,
    Report,
    Row,
    Server,
    fresh_database,
    log,
    main,
    ms,
    payment_update,
    pct,
    pre_checkout_update,
    preload_orders,
    run_pool,
)
from flask_stars.sandbox import Sandbox

LEVELS = (1, 8, 32)
LATENCY_LEVELS = (1, 32)
#: Per level and per side: at most this many payments, and no new one after this many seconds.
MAX_PAYMENTS = {1: 150, 8: 500, 32: 700}
MAX_SECONDS = {1: 7.0, 8: 7.0, 32: 8.0}
WARMUP = 48
#: The latency baseline: bare answerPreCheckoutQuery round trips to the sandbox.
BASE_CALLS = {1: 300, 32: 1500}
BASE_SECONDS = 3.0
PATHS = {"flask_stars": ("/stars/webhook", "/stars/webhook"), "bare": ("/bare/pre_checkout", "/bare/payment")}


@dataclass
class Paid:
    ok: bool
    query_id: str
    sent: float  # time.time() when the pre-checkout was sent
    error: str = ""
    answered: float | None = None  # when the answer came back in the webhook's reply, if it did


@dataclass
class Level:
    side: str
    concurrency: int
    run: PoolRun
    cpu: float = 0.0  # seconds of the workers' CPU (user + system) during the run

    @property
    def cpu_per_payment(self) -> float:
        return self.cpu / self.done if self.done else math.nan

    @property
    def done(self) -> int:
        return sum(1 for r in self.run.results if r.ok)

    @property
    def rate(self) -> float:
        return self.done / self.run.elapsed if self.run.elapsed else 0.0

    def failures(self) -> dict[str, int]:
        out: dict[str, int] = dict(self.run.errors)
        for r in self.run.results:
            if not r.ok:
                out[r.error] = out.get(r.error, 0) + 1
        return out


def pay_one(side: str, ctx: Http, job: tuple[str, int]) -> Paid:
    order_id, user = job
    pre_path, pay_path = PATHS[side]
    query_id = f"q{secrets.token_hex(8)}"
    body = pre_checkout_update(query_id, user, order_id)
    sent = time.time()
    status, resp = ctx.post(pre_path, body, WEBHOOK_HEADERS)
    answered = None
    reply = json.loads(resp) if status == 200 else {}
    if reply.get("method") == "answerPreCheckoutQuery":
        # STARS_ANSWER_IN_RESPONSE: the answer is the webhook's reply; Telegram has it now.
        answered = time.time()
        approved = reply.get("ok") is True
    else:
        approved = reply.get("detail") == "ok"
    if not approved:
        return Paid(False, query_id, sent, f"pre-checkout {status} {resp[:80]!r}")
    charge = "stx" + secrets.token_urlsafe(18)
    status, resp = ctx.post(pay_path, payment_update(charge, user, order_id), WEBHOOK_HEADERS)
    detail = json.loads(resp).get("detail") if status == 200 else None
    if detail != "credited":
        return Paid(False, query_id, sent, f"payment {status} {resp[:80]!r}", answered)
    return Paid(True, query_id, sent, "", answered)


def measure(
    server: Server, side: str, jobs: list[tuple[str, int]], concurrency: int, seconds: float
) -> Level:
    cpu_before = server.cpu_seconds()
    run = run_pool(
        concurrency,
        jobs,
        lambda ctx, job: pay_one(side, ctx, job),
        max_seconds=seconds,
        make_ctx=lambda: Http(server.port),
        close_ctx=lambda ctx: ctx.close(),
    )
    level = Level(side, concurrency, run, cpu=server.cpu_seconds() - cpu_before)
    log(
        f"  {side:11} @{concurrency:<2}: {level.done}/{len(run.results)} payments in {run.elapsed:.1f} s "
        f"= {level.rate:.1f}/s, {level.cpu_per_payment * 1000:.1f} ms worker CPU each"
        + (f" failures {level.failures()}" if level.failures() else "")
    )
    return level


def answer_times(tg: Sandbox) -> dict[str, float]:
    """query id -> when the sandbox received its answerPreCheckoutQuery (after the load)."""
    return {
        str(c.params.get("pre_checkout_query_id")): c.at
        for c in list(tg.calls)
        if c.method == "answerPreCheckoutQuery"
    }


def latencies(level: Level, answered: dict[str, float]) -> list[float]:
    """Send -> Telegram has the answer: the sandbox's stamp, or the reply's arrival."""
    out = []
    for r in level.run.results:
        at = r.answered if r.answered is not None else answered.get(r.query_id)
        if at is not None:
            out.append(at - r.sent)
    return out


def bare_round_trips(tg: Sandbox, concurrency: int) -> list[float]:
    """The latency baseline: answerPreCheckoutQuery straight to the sandbox, as telebot sends it."""
    url = f"{tg.url}/bot{TOKEN}/answerPreCheckoutQuery"

    def one(session: requests.Session, _job: int) -> float:
        params = {"pre_checkout_query_id": f"b{secrets.token_hex(8)}", "ok": True}
        t0 = time.perf_counter()
        resp = session.post(url, params=params, timeout=10)
        took = time.perf_counter() - t0
        if resp.status_code != 200:
            raise RuntimeError(f"sandbox answered {resp.status_code}")
        return took

    run = run_pool(
        concurrency,
        range(BASE_CALLS[concurrency]),
        one,
        max_seconds=BASE_SECONDS,
        make_ctx=requests.Session,
        close_ctx=lambda s: s.close(),
    )
    return run.results


def run(
    db: str,
    workdir: Path,
    args: argparse.Namespace,
    *,
    levels: tuple[int, ...] = LEVELS,
    latency_levels: tuple[int, ...] = LATENCY_LEVELS,
    throughput: bool = True,
) -> Report:
    url = fresh_database(db, workdir)
    need = WARMUP + sum(MAX_PAYMENTS[c] for c in levels)
    stars_jobs = preload_orders(url, need, bare=False, user_base=10_000_000)
    bare_jobs = preload_orders(url, need, bare=True, user_base=50_000_000)
    pools = {"flask_stars": iter(stars_jobs), "bare": iter(bare_jobs)}
    lock = threading.Lock()

    def take(side: str, n: int) -> list[tuple[str, int]]:
        with lock:
            return [job for _, job in zip(range(n), pools[side], strict=False)]

    results: dict[tuple[str, int], Level] = {}
    base_lat: dict[int, list[float]] = {}
    tg = LoadSandbox(token=TOKEN).start()
    try:
        env = {"BENCH_ANSWER_IN_RESPONSE": "1"} if getattr(args, "answer_in_response", False) else {}
        with Server(url, tg.url, workdir, env=env) as server:
            tg.set_webhook_target(server.base + "/stars/webhook", None)
            log(f"payments [{db}]: warm-up ({WARMUP} each), then levels {levels}")
            warm = {
                side: measure(server, side, take(side, WARMUP), 8, 20.0) for side in ("flask_stars", "bare")
            }
            for i, c in enumerate(levels):
                order = ("flask_stars", "bare") if i % 2 == 0 else ("bare", "flask_stars")
                for side in order:
                    results[(side, c)] = measure(server, side, take(side, MAX_PAYMENTS[c]), c, MAX_SECONDS[c])
            for c in latency_levels:
                base_lat[c] = bare_round_trips(tg, c)
            errors_in_log = server.log_tail(5) if any(lv.failures() for lv in results.values()) else ""
        answered = answer_times(tg)
    finally:
        tg.stop()

    engine = sa.create_engine(url)
    with engine.connect() as conn:
        credited = conn.execute(sa.text("SELECT count(*) FROM stars_payments WHERE credited")).scalar()
        coins = conn.execute(
            sa.text("SELECT coalesce(sum(coins), 0) FROM host_users WHERE id < 50000000")
        ).scalar()
    engine.dispose()

    report = Report()
    stars_done = warm["flask_stars"].done + sum(
        lv.done for (side, _), lv in results.items() if side == "flask_stars"
    )
    report.notes.append(
        f"[{db}] ledger check: {credited} credited rows, {coins // 1_000_000} packs of coins "
        f"(completed flask_stars payments, warm-up included: {stars_done})"
    )
    if throughput:
        for c in levels:
            s, b = results[("flask_stars", c)], results[("bare", c)]
            ratio = s.rate / b.rate if b.rate else math.nan
            report.rows.append(
                Row(
                    f"1. payments/s @{c} conn [{db}]",
                    f"{s.rate:.1f}/s",
                    f"{b.rate:.1f}/s",
                    ratio,
                    ">= 0.80",
                    ratio >= 0.8,
                )
            )
            cpu_ratio = s.cpu_per_payment / b.cpu_per_payment if b.cpu_per_payment else math.nan
            report.rows.append(
                Row(
                    f"1. server CPU per payment @{c} [{db}]",
                    f"{s.cpu_per_payment * 1000:.1f} ms",
                    f"{b.cpu_per_payment * 1000:.1f} ms",
                    cpu_ratio,
                    "(x the baseline; no target)",
                )
            )
            report.notes.append(
                f"[{db}] payments @{c}: flask_stars {s.done} of {len(s.run.results)} "
                f"in {s.run.elapsed:.1f} s, "
                f"bare {b.done} of {len(b.run.results)} in {b.run.elapsed:.1f} s "
                f"(cap {MAX_PAYMENTS[c]} payments / {MAX_SECONDS[c]:.0f} s each)"
                + (f"; flask_stars failures {s.failures()}" if s.failures() else "")
                + (f"; bare failures {b.failures()}" if b.failures() else "")
            )
    for c in latency_levels:
        lat = latencies(results[("flask_stars", c)], answered)
        bare_ep = latencies(results[("bare", c)], answered)
        base = base_lat[c]
        p99, bp99 = pct(lat, 0.99), pct(base, 0.99)
        ratio = p99 / bp99 if bp99 else math.nan
        report.rows.append(
            Row(
                f"2. pre-checkout p50/p99 @{c} [{db}]",
                f"{ms(pct(lat, 0.5))} / {ms(p99)}",
                f"{ms(pct(base, 0.5))} / {ms(bp99)}",
                ratio,
                "p99 <= 1.5x, < 10 s",
                ratio <= 1.5 and p99 < 10,
            )
        )
        report.notes.append(
            f"[{db}] pre-checkout @{c}: {len(lat)} flask_stars answers timed (under payment load); "
            f"baseline {len(base)} bare answerPreCheckoutQuery round trips "
            f"(cap {BASE_CALLS[c]} / {BASE_SECONDS:.0f} s); for reference the bare endpoint's pre-checkout "
            f"p50/p99 was {ms(pct(bare_ep, 0.5))} / {ms(pct(bare_ep, 0.99))}"
        )
    if errors_in_log:
        report.notes.append(f"[{db}] gunicorn log tail: {errors_in_log[-600:]}")
    return report


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--answer-in-response",
        action="store_true",
        help="set STARS_ANSWER_IN_RESPONSE: flask_stars answers pre-checkout in the webhook's reply",
    )


if __name__ == "__main__":
    main("payment throughput (1) and pre-checkout latency (2)", run, add_args)
