"""Figure 9: two app hosts on one database, next to one host, in the same run.

    python -m bench.two_hosts

PostgreSQL through PgBouncer in transaction mode (``.ci/pgbouncer`` starts one on 6432),
gunicorn gthread with 2 workers x 4 threads per host. Three runs of the same load (16
"Telegram connections", each POSTing ``successful_payment`` updates of preloaded orders
back to back): the bare endpoint on one host, flask_stars on one host, then flask_stars on
two hosts with every payment sent to a random one. Both hosts share this machine's two
cores, so the two-host row shows what spreading over hosts costs (two pools of
connections, PgBouncer, locks taken across hosts), not what a second machine would add.
"""

from __future__ import annotations

import argparse
import random
import secrets
import subprocess
from collections import Counter
from pathlib import Path

import sqlalchemy as sa

from bench.benchapp import TOKEN
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
    preload_orders,
    run_pool,
)

CONCURRENCY = 16
PAYMENTS = 3000
MAX_SECONDS = 40.0
WORKERS, THREADS = 2, 4
ROOT = Path(__file__).resolve().parent.parent


def _through_pgbouncer(url: str) -> str:
    """``url`` with PgBouncer's port, started if it is not running."""
    out = subprocess.run(
        ["bash", str(ROOT / ".ci" / "pgbouncer")], capture_output=True, text=True, check=True
    )
    port = sa.make_url(out.stdout.strip().splitlines()[-1]).port
    return sa.make_url(url).set(port=port).render_as_string(hide_password=False)


def _run(servers: list[Server], path: str, jobs: list[tuple[str, str, int]]) -> tuple[float, Counter[int]]:
    """Payments/s over ``servers`` (a random one per payment), and the answers' status codes."""
    rng = random.Random(9)
    work = [(rng.choice(servers).port, payment_update(charge, user, order)) for order, charge, user in jobs]

    def pay(conns: dict[int, Http], job: tuple[int, bytes]) -> int:
        port, body = job
        status, _ = conns.setdefault(port, Http(port)).post(path, body, WEBHOOK_HEADERS)
        return status

    run = run_pool(
        CONCURRENCY,
        work,
        pay,
        max_seconds=MAX_SECONDS,
        make_ctx=dict,
        close_ctx=lambda conns: [c.close() for c in conns.values()],
    )
    return len(run.results) / run.elapsed, Counter(run.results)


def _jobs(url: str, *, bare: bool, user_base: int) -> list[tuple[str, str, int]]:
    return [
        (order, secrets.token_hex(12), user)
        for order, user in preload_orders(url, PAYMENTS, bare=bare, user_base=user_base)
    ]


def _credited(url: str, user_base: int) -> int:
    """Credited payments of the users from ``user_base`` (one order each, so one payment each)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    sa.text(
                        "SELECT count(DISTINCT telegram_payment_charge_id) FROM stars_payments "
                        "WHERE credited AND user_id >= :a AND user_id < :b"
                    ),
                    {"a": user_base, "b": user_base + PAYMENTS},
                ).scalar()
                or 0
            )
    finally:
        engine.dispose()


def run(db: str, workdir: Path, args: argparse.Namespace) -> Report:
    report = Report()
    if db != "postgres":
        return report  # several hosts share one PostgreSQL
    direct = fresh_database("postgres", workdir)  # orders preloaded and counts read directly
    url = _through_pgbouncer(direct)
    env = {"BENCH_PGBOUNCER": "1"}
    rates: dict[str, float] = {}
    with LoadSandbox(token=TOKEN) as tg:
        servers = [
            Server(url, tg.url, workdir / name, workers=WORKERS, threads=THREADS, env=env) for name in "ab"
        ]
        for server in servers:
            server.workdir.mkdir(exist_ok=True)
        with servers[0], servers[1]:
            for name, hosts, path, bare, base in (
                ("bare, one host", servers[:1], "/bare/payment", True, 10_000_000),
                ("one host", servers[:1], "/stars/webhook", False, 20_000_000),
                ("two hosts", servers, "/stars/webhook", False, 30_000_000),
            ):
                rate, codes = _run(hosts, path, _jobs(direct, bare=bare, user_base=base))
                rates[name] = rate
                credited = "" if bare else f", {_credited(direct, base)} of {PAYMENTS} credited once"
                log(f"  {name}: {rate:.1f} payments/s, answers {dict(codes)}{credited}")
                report.notes.append(f"{name} via PgBouncer: answers {dict(codes)}{credited}")
    label = f"@{CONCURRENCY} conn, {WORKERS}x{THREADS} per host [postgres via PgBouncer]"
    report.rows.append(
        Row(
            f"9. payments/s, two hosts vs one {label}",
            f"{rates['two hosts']:.1f}/s",
            f"{rates['one host']:.1f}/s",
            rates["two hosts"] / rates["one host"],
            "(report; one machine's cores)",
        )
    )
    report.rows.append(
        Row(
            f"9. payments/s, one host vs the bare endpoint {label}",
            f"{rates['one host']:.1f}/s",
            f"{rates['bare, one host']:.1f}/s",
            rates["one host"] / rates["bare, one host"],
            "(reference; no target)",
        )
    )
    return report


if __name__ == "__main__":
    main("figure 9: two hosts on one database", run)
