"""Every figure, one table: ``python -m bench`` (or ``python -m bench.all``).

    python -m bench [--db sqlite|postgres|both] [--skip-growth] [--skip-soak] [--rows 1000000]

Runs start-up (5) and the SQL statement count first, then per database payments and
pre-checkout latency (1, 2), other buyers while Telegram is slow (6), invoices (3) and
ledger growth (4a, with the 4b slot), flask_stars vs aiogram-stars (8, ``--skip-peer``),
two hosts through PgBouncer on PostgreSQL (9, ``--skip-two-hosts``), then the soak (7) on
PostgreSQL only (on SQLite when ``--db sqlite`` is the only database), and prints, in
figure order, ``figure | flask_stars | baseline | ratio | target`` under a line describing
the machine, then the counts behind
every figure. About 7.5 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench import (
    growth,
    invoices,
    payments,
    peer,
    reconciliation,
    slow_telegram,
    soak,
    sqlcount,
    startup,
    two_hosts,
)
from bench.common import DBS, Report, log, machine_line, print_report


def main() -> None:
    parser = argparse.ArgumentParser(description="all flask_stars benchmarks, one table")
    parser.add_argument("--db", choices=[*DBS, "both"], default="both")
    parser.add_argument("--skip-growth", action="store_true", help="leave out 4a (the 1,000,000-row load)")
    parser.add_argument("--skip-soak", action="store_true", help="leave out 7 (the 10,000-payment soak)")
    parser.add_argument("--skip-peer", action="store_true", help="leave out 8 (vs aiogram-stars)")
    parser.add_argument(
        "--skip-two-hosts", action="store_true", help="leave out 9 (two hosts through PgBouncer)"
    )
    parser.add_argument(
        "--rows", type=int, default=growth.LARGE, help="4a: history payments in the big ledger"
    )
    parser.add_argument(
        "--answer-in-response", action="store_true", help="figures 1-2 with STARS_ANSWER_IN_RESPONSE"
    )
    parser.add_argument(
        "--count", type=int, default=reconciliation.COUNT, help="4b: sandbox transactions to reconcile"
    )
    args = parser.parse_args()
    dbs = DBS if args.db == "both" else (args.db,)
    machine = machine_line()
    log(machine)
    began = time.perf_counter()
    report = Report()
    timings = []
    with tempfile.TemporaryDirectory(prefix="stars-bench-") as tmp:
        workdir = Path(tmp)
        steps = [("start-up (5)", None, lambda db: startup.run())]
        for db in dbs:
            steps.append(("SQL statements", db, lambda db: sqlcount.run(db, workdir, args)))
        for db in dbs:
            steps.append(("payments + latency (1, 2)", db, lambda db: payments.run(db, workdir, args)))
            steps.append(("slow Telegram (6)", db, lambda db: slow_telegram.run(db, workdir, args)))
            steps.append(("invoices (3)", db, lambda db: invoices.run(db, workdir, args)))
            if not args.skip_growth:
                steps.append(("growth (4a)", db, lambda db: growth.run(db, workdir, args)))
            steps.append(("reconcile (4b)", db, lambda db: reconciliation.run(db, workdir, args)))
            if not args.skip_peer:
                steps.append(("vs aiogram-stars (8)", db, lambda db: peer.run(db, workdir, args)))
        if "postgres" in dbs and not args.skip_two_hosts:
            steps.append(("two hosts (9)", "postgres", lambda db: two_hosts.run(db, workdir, args)))
        if not args.skip_soak:
            steps.append(
                (
                    "soak (7)",
                    "sqlite" if dbs == ("sqlite",) else "postgres",
                    lambda db: soak.run(db, workdir, args),
                )
            )
        for name, db, step in steps:
            t0 = time.perf_counter()
            log(f"== {name}" + (f" on {db}" if db else ""))
            try:
                report.extend(step(db))
            except Exception as exc:  # one broken figure must not hide the others
                report.notes.append(f"{name} [{db}] FAILED: {exc.__class__.__name__}: {exc}")
                log(f"{name} [{db}] FAILED: {exc!r}")
            timings.append(f"{name}{f' [{db}]' if db else ''} {time.perf_counter() - t0:.0f} s")
    order = ["1.", "2.", "3.", "4a", "4b", "5.", "6.", "7.", "SQL", "8.", "9."]
    report.rows.sort(key=lambda r: next((i for i, p in enumerate(order) if r.figure.startswith(p)), 99))
    report.notes.append("time: " + ", ".join(timings) + f"; total {time.perf_counter() - began:.0f} s")
    print()
    print_report(report, machine=machine)


if __name__ == "__main__":
    main()
