"""4b. ``reconcile`` over 100,000 sandbox transactions: time, and peak memory that must not
grow with the count (pages are handled one at a time).

    python -m bench.reconciliation --db sqlite|postgres|both [--count 100000]

The ledger already holds every payment (the common case: nothing was lost), so the run
reads every page and matches every charge. Measured at 10,000 and at ``--count``
transactions; peak Python memory (tracemalloc) during each run is compared. Baseline:
paging through the same getStarTransactions with the same client and nothing else.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from telebot import apihelper

from bench.benchapp import TOKEN, create_app
from bench.common import LoadSandbox, Report, Row, fresh_database, log, main
from flask_stars.models import Payment
from flask_stars.reconcile import reconcile
from flask_stars.sandbox import Sandbox

SMALL = 10_000
COUNT = 100_000


def _fill(sandbox: Sandbox, url: str, n: int) -> None:
    """``n`` incoming payments in the sandbox's Stars ledger and, already, in ours."""
    now = int(time.time())
    sandbox.ledger.transactions[:] = [
        {
            "id": f"stx-r-{i}",
            "amount": 10,
            "date": now,
            "source": {
                "type": "user",
                "transaction_type": "invoice_payment",
                "user": {"id": 1_000_000 + i % 5000, "is_bot": False, "first_name": "U"},
                "invoice_payload": f"order:r{i}",
            },
        }
        for i in range(n)
    ]
    engine = sa.create_engine(url)
    now_dt = datetime.now(UTC)
    rows = [
        {
            "telegram_payment_charge_id": f"stx-r-{i}",
            "user_id": 1_000_000 + i % 5000,
            "payer_id": 1_000_000 + i % 5000,
            "stars": 10,
            "currency": "XTR",
            "invoice_payload": f"order:r{i}",
            "status": "paid",
            "credited": True,
            "paid_at": now_dt,
        }
        for i in range(n)
    ]
    with engine.begin() as conn:
        conn.execute(sa.delete(Payment.__table__))
        for start in range(0, n, 10_000):
            conn.execute(sa.insert(Payment.__table__), rows[start : start + 10_000])
    engine.dispose()


def _bare_pages(sandbox: Sandbox) -> float:
    t0 = time.perf_counter()
    offset = 0
    while True:
        params = {"limit": 100, **({"offset": offset} if offset else {})}
        page = apihelper._make_request(TOKEN, "getStarTransactions", params=params)["transactions"]
        offset += len(page)
        if len(page) < 100:
            return time.perf_counter() - t0


def _measure(app, traced: bool) -> tuple[float, int, int]:
    if traced:
        tracemalloc.start()
    t0 = time.perf_counter()
    with app.app_context():
        report = reconcile(app.extensions["stars"], full=True)
    took = time.perf_counter() - t0
    peak = 0
    if traced:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return took, peak, report.already_recorded


def run(db: str, workdir: Path, args: argparse.Namespace) -> Report:
    count = getattr(args, "count", COUNT)
    report = Report()
    results = {}
    with LoadSandbox(token=TOKEN) as sandbox:
        url = fresh_database(db, workdir, "reconcile")
        app = create_app(url, sandbox.url)
        for n in (SMALL, count):
            _fill(sandbox, url, n)
            took, _, matched = _measure(app, traced=False)
            _, peak, _ = _measure(app, traced=True)
            bare = _bare_pages(sandbox)
            results[n] = (took, peak, bare, matched)
            log(f"  reconcile {n:,} [{db}]: {took:.1f} s, peak {peak / 1e6:.1f} MB, bare paging {bare:.1f} s")
            report.notes.append(
                f"4b [{db}] {n:,} transactions: {matched:,} matched to the ledger in {took:.1f} s "
                f"(bare paging {bare:.1f} s), peak traced memory {peak / 1e6:.2f} MB"
            )
        with app.app_context():
            app.extensions["sqlalchemy"].engine.dispose()
    took, peak, bare, _ = results[count]
    small_peak = results[SMALL][1]
    report.rows.append(
        Row(
            f"4b. reconcile {count:,} sandbox tx [{db}]",
            f"{took:.1f} s ({count / took:,.0f} tx/s)",
            f"{bare:.1f} s (bare paging)",
            took / bare,
            "(time: no target)",
        )
    )
    ratio = peak / small_peak if small_peak else float("nan")
    report.rows.append(
        Row(
            f"4b. reconcile peak memory {count:,} vs {SMALL:,} [{db}]",
            f"{peak / 1e6:.2f} MB",
            f"{small_peak / 1e6:.2f} MB",
            ratio,
            "flat (<= 1.5)",
            met=ratio <= 1.5,
        )
    )
    return report


if __name__ == "__main__":
    main(
        "4b. reconcile over sandbox transactions",
        run,
        lambda p: p.add_argument("--count", type=int, default=COUNT),
    )
