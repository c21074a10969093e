"""Figure 6: other buyers while Telegram takes 8 s over one pre-checkout answer.

    python -m bench.slow_telegram --db sqlite|postgres|both [--jobs 300]

One server and one sandbox. Each job is one other buyer doing one complete payment
(pre-checkout answered + successful_payment credited, as in figure 1, on /stars/webhook)
and one first click on POST /stars/invoice by a new user (as in figure 3); the wall time
of each is recorded. Baseline phase: such jobs at 8 connections. Slow phase: the sandbox
is told to answer the next answerPreCheckoutQuery only after 8 s; user A's pre-checkout is
sent (its webhook request waits on that answer), and once A's answer call has reached the
sandbox, the same kind of load runs for other users (fresh orders and users), bounded to
end within the 8 s; then A is waited for. A's pre-checkout must have taken >= 8 s and its
answer call must be the one the sandbox delayed, or the delay hit someone else and the
figure is void. The pre-checkout answer travels as a Bot API call here whatever
``--answer-in-response`` says elsewhere: that call is what is slow. A database of its own
(SQLite file / PostgreSQL schema ``slowtg``).
"""

from __future__ import annotations

import argparse
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench.benchapp import TOKEN
from bench.common import (
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
    pct,
    preload_orders,
    run_pool,
)
from bench.invoices import click, headers_for
from bench.payments import Paid, pay_one

CONCURRENCY = 8
#: Per phase: at most this many jobs, and no new one after this many seconds (the slow
#: phase must end while A's answer is still held, so well under DELAY).
MAX_JOBS = 300
MAX_SECONDS = 6.0
WARMUP = 64
DELAY = 8.0
#: How long A's answer call is left at the sandbox before the other buyers start.
SETTLE = 0.5
TARGET = 1.5


@dataclass
class Job:
    pay_ok: bool
    pay_time: float
    inv_ok: bool
    inv_time: float
    error: str = ""


class StampedHttp(Http):
    """An ``Http`` that records how long each POST took: [(path, seconds)]."""

    def __init__(self, port: int, timeout: float = 30.0) -> None:
        super().__init__(port, timeout)
        self.posts: list[tuple[str, float]] = []

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        t0 = time.perf_counter()
        try:
            return super().post(path, body, headers)
        finally:
            self.posts.append((path, time.perf_counter() - t0))


def one_job(ctx: Http, job: tuple[tuple[str, int], tuple[int, dict[str, str]]]) -> Job:
    """One other buyer's complete payment, then one new user's first invoice click."""
    order, buyer = job
    errors = []
    t0 = time.perf_counter()
    try:
        paid = pay_one("flask_stars", ctx, order)
        pay_ok = paid.ok
        if not paid.ok:
            errors.append(paid.error)
    except Exception as exc:
        pay_ok = False
        errors.append(f"payment {exc.__class__.__name__}: {str(exc)[:80]}")
    pay_time = time.perf_counter() - t0
    t0 = time.perf_counter()
    try:
        click("flask_stars", ctx, buyer)
        inv_ok = True
    except Exception as exc:
        inv_ok = False
        errors.append(f"invoice {exc.__class__.__name__}: {str(exc)[:80]}")
    inv_time = time.perf_counter() - t0
    return Job(pay_ok, pay_time, inv_ok, inv_time, "; ".join(errors))


def phase(server: Server, name: str, jobs: list, seconds: float) -> PoolRun:
    run = run_pool(
        CONCURRENCY,
        jobs,
        one_job,
        max_seconds=seconds,
        make_ctx=lambda: Http(server.port),
        close_ctx=lambda ctx: ctx.close(),
    )
    bad = failures(run)
    log(
        f"  {name:8} @{CONCURRENCY}: {len(run.results)} jobs in {run.elapsed:.1f} s, "
        f"payment p99 {ms(pct([j.pay_time for j in run.results], 0.99))}, "
        f"invoice p99 {ms(pct([j.inv_time for j in run.results], 0.99))}"
        + (f" failures {bad}" if bad else "")
    )
    return run


def failures(run: PoolRun) -> dict[str, int]:
    out: dict[str, int] = dict(run.errors)
    for j in run.results:
        if j.error:
            out[j.error[:120]] = out.get(j.error[:120], 0) + 1
    return out


@dataclass
class Slow:
    """User A's payment, sent in its own thread."""

    paid: Paid | None = None
    error: str = ""
    pre_checkout: float = math.nan  # A's pre-checkout webhook request, send to reply
    done_at: float = math.nan  # perf_counter when A's pre-checkout reply came back


def run(db: str, workdir: Path, args: argparse.Namespace) -> Report:
    max_jobs = getattr(args, "jobs", MAX_JOBS)
    url = fresh_database(db, workdir, name="slowtg")
    n_jobs = WARMUP + 2 * max_jobs
    orders = preload_orders(url, n_jobs + 1, bare=False, user_base=30_000_000)
    a_order, others = orders[0], orders[1:]
    log(f"slow telegram [{db}]: signing initData for {n_jobs} users")
    buyers = [(u, headers_for(u)) for u in range(70_000_000, 70_000_000 + n_jobs)]
    jobs = list(zip(others, buyers, strict=True))
    warm_jobs = jobs[:WARMUP]
    base_jobs = jobs[WARMUP : WARMUP + max_jobs]
    slow_jobs = jobs[WARMUP + max_jobs :]

    a = Slow()
    a_ctx: StampedHttp | None = None
    tg = LoadSandbox(token=TOKEN).start()
    try:
        with Server(url, tg.url, workdir) as server:
            tg.set_webhook_target(server.base + "/stars/webhook", None)
            log(f"slow telegram [{db}]: warm-up ({WARMUP}), baseline, then {DELAY:.0f} s over A's answer")
            # Two rounds, each on new connections: in the first pools after the server
            # starts, some connections' first request stalls up to ~1 s; later, none does.
            phase(server, "warm-up", warm_jobs[: WARMUP // 2], 20.0)
            phase(server, "warm-up", warm_jobs[WARMUP // 2 :], 20.0)
            base = phase(server, "baseline", base_jobs, MAX_SECONDS)

            answers_before = len(tg.calls_to("answerPreCheckoutQuery"))
            tg.delay("answerPreCheckoutQuery", DELAY)
            a_ctx = StampedHttp(server.port)

            def pay_a() -> None:
                assert a_ctx is not None
                try:
                    a.paid = pay_one("flask_stars", a_ctx, a_order)
                except Exception as exc:
                    a.error = f"{exc.__class__.__name__}: {str(exc)[:80]}"

            a_thread = threading.Thread(target=pay_a, daemon=True)
            a_started = time.perf_counter()
            a_thread.start()
            try:
                tg.wait_for_call("answerPreCheckoutQuery", answers_before + 1, timeout=5.0)
            except TimeoutError:
                a.error = a.error or "A's answerPreCheckoutQuery did not reach the sandbox within 5 s"
            time.sleep(max(0.0, a_started + SETTLE - time.perf_counter()))
            slow = phase(server, "slow", slow_jobs, MAX_SECONDS)
            slow_ended = time.perf_counter()
            a_thread.join(timeout=DELAY + 60)
            if a_ctx.posts:
                a.pre_checkout = a_ctx.posts[0][1]
                a.done_at = a_started + a.pre_checkout
            a_ctx.close()
            errors_in_log = server.log_tail(5) if failures(base) or failures(slow) else ""
        answer_calls = [c for c in list(tg.calls) if c.method == "answerPreCheckoutQuery"]
    finally:
        tg.stop()

    # The delayed call is the first answerPreCheckoutQuery after tg.delay(): A's, if nobody
    # else's got there first.
    delayed = answer_calls[answers_before] if len(answer_calls) > answers_before else None
    delayed_query = str(delayed.params.get("pre_checkout_query_id")) if delayed is not None else None
    problems = []
    if a.error:
        problems.append(a.error)
    if a.paid is None or delayed_query != a.paid.query_id:
        problems.append(f"the delayed answer was not A's (it was query {delayed_query})")
    if not a.pre_checkout >= DELAY:
        problems.append(f"A's pre-checkout took {a.pre_checkout:.2f} s, under {DELAY:.0f} s")
    if a.paid is not None and not a.paid.ok:
        problems.append(f"A's payment failed: {a.paid.error}")

    report = Report()
    all_ok = not failures(base) and not failures(slow)
    for what, field in (("payments", "pay_time"), ("invoices", "inv_time")):
        b = [getattr(j, field) for j in base.results]
        s = [getattr(j, field) for j in slow.results]
        sp99, bp99 = pct(s, 0.99), pct(b, 0.99)
        ratio = sp99 / bp99 if bp99 else math.nan
        report.rows.append(
            Row(
                f"6. other buyers' {what} p50/p99, one answer 8 s late @{CONCURRENCY} [{db}]",
                f"{ms(pct(s, 0.5))} / {ms(sp99)}",
                f"{ms(pct(b, 0.5))} / {ms(bp99)}",
                ratio,
                f"p99 <= {TARGET}x",
                ratio <= TARGET and all_ok and not problems,
            )
        )
    overlap = a.done_at - slow_ended
    report.notes.append(
        f"[{db}] slow Telegram @{CONCURRENCY}: baseline {len(base.results)} jobs in {base.elapsed:.1f} s, "
        f"during the delay {len(slow.results)} jobs in {slow.elapsed:.1f} s "
        f"(each job: one payment + one invoice; cap {max_jobs} jobs / {MAX_SECONDS:.0f} s per phase, "
        f"after {WARMUP} warm-up in two rounds); A's pre-checkout took {a.pre_checkout:.2f} s "
        f"(sandbox delay {DELAY:.0f} s); the other buyers' load "
        + (
            f"ended {overlap:.2f} s before A's reply"
            if overlap >= 0
            else f"ran on {-overlap:.2f} s after A's reply"
        )
        + (f"; baseline failures {failures(base)}" if failures(base) else "")
        + (f"; slow-phase failures {failures(slow)}" if failures(slow) else "")
    )
    if problems:
        report.notes.append(f"[{db}] slow Telegram ERROR, figure 6 void: " + "; ".join(problems))
    if errors_in_log:
        report.notes.append(f"[{db}] gunicorn log tail: {errors_in_log[-600:]}")
    return report


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--jobs", type=int, default=MAX_JOBS, help="at most this many jobs per phase (payment + invoice)"
    )


if __name__ == "__main__":
    main("other buyers while Telegram is slow over one pre-checkout answer (6)", run, add_args)
