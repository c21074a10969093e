"""Figure 3: invoice creation, POST /stars/invoice vs a bare endpoint, and repeat clicks.

    python -m bench.invoices --db sqlite|postgres|both

First clicks: every request is a new user (initData signed beforehand), so each one makes an
order and one createInvoiceLink call to the sandbox. The baseline is /bare/invoice on the same
workers and database: check initData, look for the user's pending order, insert one, call
createInvoiceLink, store the link, commit. For reference, bare createInvoiceLink calls from
this process straight to the sandbox are timed too. Repeat clicks: users who already have a
pending order with a link click again; the sandbox counts the createInvoiceLink calls they
cause (it must be 0).
"""

from __future__ import annotations

import argparse
import json
import math
import secrets
import time
from pathlib import Path

import requests

from bench.benchapp import PACKS, TOKEN
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
    run_pool,
)
from flask_stars.initdata import sign_init_data
from flask_stars.sandbox import Sandbox, make_user

CONCURRENCY = 8
MAX_FIRST = 400
MAX_SECONDS = 7.0
WARMUP = 24
REPEAT_USERS = 100
REPEAT_CLICKS = 3
RAW_CALLS = 800
PATH = {"flask_stars": "/stars/invoice", "bare": "/bare/invoice"}
BODY = json.dumps({"pack_id": PACKS[0]["id"]}).encode()


def headers_for(user: int) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "Authorization": "tma " + sign_init_data(TOKEN, make_user(user)),
    }


def click(side: str, ctx: Http, job: tuple[int, dict[str, str]]) -> float:
    _user, headers = job
    t0 = time.perf_counter()
    status, body = ctx.post(PATH[side], BODY, headers)
    took = time.perf_counter() - t0
    if status not in (200, 201) or not json.loads(body).get("invoice_url"):
        raise RuntimeError(f"{side} invoice {status} {body[:80]!r}")
    return took


def clicks(server: Server, side: str, jobs: list[tuple[int, dict[str, str]]], seconds: float) -> PoolRun:
    run = run_pool(
        CONCURRENCY,
        jobs,
        lambda ctx, job: click(side, ctx, job),
        max_seconds=seconds,
        make_ctx=lambda: Http(server.port),
        close_ctx=lambda ctx: ctx.close(),
    )
    rate = len(run.results) / run.elapsed if run.elapsed else 0
    log(
        f"  {side:11} @{CONCURRENCY}: {len(run.results)} invoices in {run.elapsed:.1f} s = {rate:.1f}/s"
        + (f" errors {dict(run.errors)}" if run.errors else "")
    )
    return run


def raw_create_invoice_links(tg: Sandbox) -> PoolRun:
    url = f"{tg.url}/bot{TOKEN}/createInvoiceLink"

    def one(session: requests.Session, _job: int) -> float:
        params = {
            "title": "Starter pack",
            "description": "Starter pack",
            "payload": f"order:raw{secrets.token_hex(8)}",
            "currency": "XTR",
            "prices": json.dumps([{"label": "Starter pack", "amount": 10}]),
        }
        t0 = time.perf_counter()
        resp = session.post(url, params=params, timeout=10)
        took = time.perf_counter() - t0
        if resp.status_code != 200:
            raise RuntimeError(f"sandbox answered {resp.status_code}")
        return took

    return run_pool(
        CONCURRENCY,
        range(RAW_CALLS),
        one,
        max_seconds=4.0,
        make_ctx=requests.Session,
        close_ctx=lambda s: s.close(),
    )


def rate(run: PoolRun) -> float:
    return len(run.results) / run.elapsed if run.elapsed else 0.0


def run(db: str, workdir: Path, args: argparse.Namespace) -> Report:
    url = fresh_database(db, workdir)
    log(f"invoices [{db}]: signing initData for {2 * (WARMUP + MAX_FIRST)} users")
    jobs = {
        side: [(u, headers_for(u)) for u in range(base, base + WARMUP + MAX_FIRST)]
        for side, base in (("flask_stars", 20_000_000), ("bare", 60_000_000))
    }
    tg = LoadSandbox(token=TOKEN).start()
    first: dict[str, PoolRun] = {}
    repeat: dict[str, PoolRun] = {}
    repeat_calls: dict[str, int] = {}
    first_calls: dict[str, int] = {}
    try:
        with Server(url, tg.url, workdir) as server:
            for side in ("flask_stars", "bare"):
                clicks(server, side, jobs[side][:WARMUP], 20.0)
            for side in ("flask_stars", "bare"):
                before = len(tg.calls_to("createInvoiceLink"))
                first[side] = clicks(server, side, jobs[side][WARMUP:], MAX_SECONDS)
                first_calls[side] = len(tg.calls_to("createInvoiceLink")) - before
            for side in ("flask_stars", "bare"):
                done = jobs[side][WARMUP : WARMUP + min(REPEAT_USERS, len(first[side].results))]
                again = [job for job in done for _ in range(REPEAT_CLICKS)]
                before = len(tg.calls_to("createInvoiceLink"))
                repeat[side] = clicks(server, side, again, 10.0)
                repeat_calls[side] = len(tg.calls_to("createInvoiceLink")) - before
        raw = raw_create_invoice_links(tg)
    finally:
        tg.stop()

    s, b = first["flask_stars"], first["bare"]
    report = Report()
    ratio = rate(s) / rate(b) if rate(b) else math.nan
    report.rows.append(
        Row(
            f"3. invoices/s @{CONCURRENCY} [{db}]",
            f"{rate(s):.1f}/s",
            f"{rate(b):.1f}/s",
            ratio,
            ">= 0.70",
            ratio >= 0.7,
        )
    )
    sp99, bp99 = pct(s.results, 0.99), pct(b.results, 0.99)
    report.rows.append(
        Row(
            f"3. invoice p50/p99 @{CONCURRENCY} [{db}]",
            f"{ms(pct(s.results, 0.5))} / {ms(sp99)}",
            f"{ms(pct(b.results, 0.5))} / {ms(bp99)}",
            sp99 / bp99 if bp99 else math.nan,
            "(latency; no target)",
        )
    )
    report.rows.append(
        Row(
            f"3. vs raw createInvoiceLink @{CONCURRENCY} [{db}]",
            f"{rate(s):.1f}/s, p50 {ms(pct(s.results, 0.5))}",
            f"{rate(raw):.1f}/s, p50 {ms(pct(raw.results, 0.5))}",
            rate(s) / rate(raw) if rate(raw) else math.nan,
            "(reference; no target)",
        )
    )
    rs, rb = repeat["flask_stars"], repeat["bare"]
    report.rows.append(
        Row(
            f"3. repeat clicks: Bot API calls [{db}]",
            f"{repeat_calls['flask_stars']} / {len(rs.results)} clicks",
            f"{repeat_calls['bare']} / {len(rb.results)} clicks",
            None,
            "0 calls",
            repeat_calls["flask_stars"] == 0 and not rs.errors,
        )
    )
    report.notes.append(
        f"[{db}] invoices @{CONCURRENCY}: flask_stars {len(s.results)} first clicks in {s.elapsed:.1f} s "
        f"({first_calls['flask_stars']} createInvoiceLink calls), bare {len(b.results)} in {b.elapsed:.1f} s "
        f"({first_calls['bare']} calls), cap {MAX_FIRST} / {MAX_SECONDS:.0f} s each after {WARMUP} warm-up; "
        f"raw createInvoiceLink: {len(raw.results)} calls in {raw.elapsed:.1f} s; "
        f"repeat clicks: {REPEAT_USERS} users x {REPEAT_CLICKS}, "
        f"flask_stars {rate(rs):.1f}/s, bare {rate(rb):.1f}/s"
        + "".join(
            f"; {side} errors {dict(r.errors)}" for side, r in (*first.items(), *repeat.items()) if r.errors
        )
    )
    return report


if __name__ == "__main__":
    main("invoice creation (3)", run)
