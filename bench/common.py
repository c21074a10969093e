"""What every benchmark shares: databases, the gunicorn server, the load loop, the table.

Load goes only to 127.0.0.1, from this process (the load generator, which also runs the
Bot API sandbox), to gunicorn in other processes. Every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import math
import os
import platform
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.benchapp import PACKS, SECRET, BenchBase, bare_orders
from flask_stars.migrations import VERSION_TABLE
from flask_stars.models import Order, StarsModel
from flask_stars.sandbox import Sandbox

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PG_DATABASE = "stars_bench"
PG_URL = sa.make_url(PG_ADMIN_URL).set(database=PG_DATABASE).render_as_string(hide_password=False)
DBS = ("sqlite", "postgres")
WEBHOOK_HEADERS = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET}
PACK1 = PACKS[0]
DEFAULT_WORKERS = 4
DEFAULT_THREADS = 4

_ids = itertools.count(time.time_ns() // 1000)


class LoadSandbox(Sandbox):
    """The sandbox for load runs. The load process posts its own ``pre_checkout_query``
    updates to the app, as Telegram would send them, instead of asking the sandbox to
    deliver them; so the sandbox takes one answer to any query id, as if it had sent that
    query (a second answer to one id is still refused, as on Telegram)."""

    def __init__(self, token: str | None = None, **kwargs: Any) -> None:
        super().__init__(token, **kwargs)
        self.queries.takes_unsent = True


def next_id() -> int:
    return next(_ids)


# --- databases -------------------------------------------------------------------------------


def ensure_pg_database() -> None:
    """Create ``stars_bench`` (AUTOCOMMIT) if missing; the test suite's database is left alone."""
    engine = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            exists = conn.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": PG_DATABASE}
            ).scalar()
            if not exists:
                conn.exec_driver_sql(f'CREATE DATABASE "{PG_DATABASE}"')
    finally:
        engine.dispose()


def fresh_database(db: str, workdir: Path, name: str = "bench") -> str:
    """An empty database with every table (flask_stars', the host's, the baseline's); its URL.

    SQLite: a file per ``name``. PostgreSQL: the ``stars_bench`` database, in a schema of
    that ``name`` (put first on the search path) unless it is the default "bench".
    """
    if db == "sqlite":
        path = workdir / f"{name}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        url = f"sqlite:///{path}"
    elif db == "postgres":
        ensure_pg_database()
        url = PG_URL
        if name != "bench":
            if not name.isidentifier():
                raise ValueError(f"not a schema name: {name!r}")
            engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
            with engine.connect() as conn:
                conn.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {name}")
            engine.dispose()
            url = sa.make_url(url).update_query_dict({"options": f"-csearch_path={name}"})
            url = url.render_as_string(hide_password=False)
    else:
        raise ValueError(db)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        if db == "postgres":
            BenchBase.metadata.drop_all(conn)
            StarsModel.metadata.drop_all(conn)
            # An earlier run's version row would make the first request upgrade tables that
            # create_all has just made at the head (and fail on the indexes it finds).
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {VERSION_TABLE}")
        BenchBase.metadata.create_all(conn)
        StarsModel.metadata.create_all(conn)
        if db == "sqlite":
            conn.exec_driver_sql("PRAGMA journal_mode = WAL")
    engine.dispose()
    return url


def db_versions() -> str:
    pg = "unreachable"
    try:
        engine = sa.create_engine(PG_ADMIN_URL)
        with engine.connect() as conn:
            pg = conn.exec_driver_sql("SHOW server_version").scalar().split()[0]
        engine.dispose()
    except Exception as exc:  # the table still prints SQLite's figures
        pg = f"unreachable ({exc.__class__.__name__})"
    return f"SQLite {sqlite3.sqlite_version}, PostgreSQL {pg}"


def preload_orders(url: str, n: int, *, bare: bool, user_base: int) -> list[tuple[str, int]]:
    """``n`` pending orders for pack 1 (one per new user, users made with 0 coins); [(order_id, user)]."""
    now = datetime.now(UTC)
    users = [user_base + i for i in range(n)]
    jobs = [(secrets.token_urlsafe(16), u) for u in users]
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO host_users (id, coins) VALUES (:id, 0)"), [{"id": u} for u in users]
        )
        rows = [
            {
                "id": oid,
                "user_id": u,
                "pack_id": PACK1["id"],
                "stars": PACK1["stars"],
                "status": "pending",
                "invoice_url": f"https://t.me/$bench{oid}",
            }
            for oid, u in jobs
        ]
        if bare:
            conn.execute(bare_orders.insert(), rows)
        else:
            later = now + timedelta(hours=2)
            conn.execute(
                Order.__table__.insert(), [{**r, "created_at": now, "expires_at": later} for r in rows]
            )
    engine.dispose()
    return jobs


# --- the server --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``bench.benchapp:served()`` under gunicorn (gthread), on 127.0.0.1, for a ``with`` block."""

    def __init__(
        self,
        db_url: str,
        api_url: str,
        workdir: Path,
        *,
        workers: int = DEFAULT_WORKERS,
        threads: int = DEFAULT_THREADS,
        env: dict[str, str] | None = None,
    ) -> None:
        self.extra_env = env or {}
        self.db_url = db_url
        self.api_url = api_url
        self.workdir = workdir
        self.workers = workers
        self.threads = threads
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"gunicorn-{self.port}.log"

    def __enter__(self) -> Server:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "BENCH_DB_URL": self.db_url,
            "BENCH_API_URL": self.api_url,
            "BENCH_SPOOL_DIR": str(self.workdir / "spool"),
            **self.extra_env,
        }
        cmd = [sys.executable, "-m", "gunicorn", "-w", str(self.workers), "-k", "gthread"]
        cmd += ["--threads", str(self.threads), "-b", f"127.0.0.1:{self.port}", "--backlog", "512"]
        cmd += ["--timeout", "60", "--graceful-timeout", "5", "--log-level", "warning"]
        cmd += ["bench.benchapp:served()"]
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/stars/packs")
                if conn.getresponse().status == 200:
                    conn.close()
                    break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"gunicorn did not start; see {self.log_path}:\n{self.log_tail()}")
            time.sleep(0.1)
        return self

    def worker_pids(self) -> list[int]:
        assert self.proc is not None
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return []
        return [int(p) for p in children.split()]

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the workers have used so far, from /proc."""
        tick = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for pid in self.worker_pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        return total

    def log_tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if hasattr(self, "_log"):
            self._log.close()


# --- the load --------------------------------------------------------------------------------


class Http:
    """One keep-alive HTTP/1.1 connection to 127.0.0.1 (one per load thread: one "Telegram
    connection"). A connection the server closed while idle is reopened once."""

    def __init__(self, port: int, timeout: float = 30.0) -> None:
        self.port = port
        self.timeout = timeout
        self.conn: http.client.HTTPConnection | None = None

    def request(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        for attempt in (0, 1):
            fresh = self.conn is None
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            try:
                self.conn.request(method, path, body, headers)
                resp = self.conn.getresponse()
                data = resp.read()
                if resp.will_close:
                    self.close()
                return resp.status, data
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if attempt or fresh:
                    raise
        raise AssertionError("unreachable")

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        return self.request("POST", path, body, headers)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


@dataclass
class PoolRun:
    results: list[Any]
    elapsed: float
    errors: Counter[str] = field(default_factory=Counter)
    stopped_by_time: bool = False


def run_pool(
    concurrency: int,
    jobs: Iterable[Any],
    fn: Callable[[Any, Any], Any],
    *,
    max_seconds: float,
    make_ctx: Callable[[], Any],
    close_ctx: Callable[[Any], None] = lambda ctx: None,
) -> PoolRun:
    """Run ``fn(ctx, job)`` over ``jobs`` (a bounded list) in ``concurrency`` threads, each with
    its own ``ctx``, until the jobs run out or ``max_seconds`` pass (no new job starts then)."""
    it = iter(jobs)
    lock = threading.Lock()
    run = PoolRun([], 0.0)
    start = time.perf_counter()
    deadline = start + max_seconds

    def worker() -> None:
        ctx = make_ctx()
        mine: list[Any] = []
        errors: Counter[str] = Counter()
        try:
            while True:
                if time.perf_counter() >= deadline:
                    with lock:
                        run.stopped_by_time = True
                    break
                with lock:
                    job = next(it, None)
                if job is None:
                    break
                try:
                    mine.append(fn(ctx, job))
                except Exception as exc:
                    errors[f"{exc.__class__.__name__}: {str(exc)[:80]}"] += 1
        finally:
            close_ctx(ctx)
            with lock:
                run.results.extend(mine)
                run.errors.update(errors)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max_seconds + 120)
    run.elapsed = time.perf_counter() - start
    return run


# --- Telegram updates ------------------------------------------------------------------------


def _user(user_id: int) -> dict[str, Any]:
    return {"id": user_id, "is_bot": False, "first_name": "A", "language_code": "en"}


def pre_checkout_update(query_id: str, user_id: int, order_id: str, amount: int = 10) -> bytes:
    return json.dumps(
        {
            "update_id": next_id(),
            "pre_checkout_query": {
                "id": query_id,
                "from": _user(user_id),
                "currency": "XTR",
                "total_amount": amount,
                "invoice_payload": f"order:{order_id}",
            },
        }
    ).encode()


def payment_update(charge_id: str, user_id: int, order_id: str, amount: int = 10) -> bytes:
    return json.dumps(
        {
            "update_id": next_id(),
            "message": {
                "message_id": next_id(),
                "date": int(time.time()),
                "from": _user(user_id),
                "chat": {"id": user_id, "type": "private"},
                "successful_payment": {
                    "currency": "XTR",
                    "total_amount": amount,
                    "invoice_payload": f"order:{order_id}",
                    "telegram_payment_charge_id": charge_id,
                    "provider_payment_charge_id": "",
                },
            },
        }
    ).encode()


# --- figures and the table -------------------------------------------------------------------


def pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1); nan for no values."""
    if not values:
        return math.nan
    v = sorted(values)
    return v[max(0, min(len(v) - 1, math.ceil(q * len(v)) - 1))]


def ms(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1000:.1f} ms"


@dataclass
class Row:
    figure: str
    stars: str
    baseline: str
    ratio: float | None
    target: str
    met: bool | None = None

    def cells(self) -> list[str]:
        ratio = "—" if self.ratio is None or math.isnan(self.ratio) else f"{self.ratio:.2f}"
        verdict = {True: "  met", False: "  MISSED", None: ""}[self.met]
        return [self.figure, self.stars, self.baseline, ratio, self.target + verdict]


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def extend(self, other: Report) -> None:
        self.rows.extend(other.rows)
        self.notes.extend(other.notes)


def machine_line(workers: int = DEFAULT_WORKERS, threads: int = DEFAULT_THREADS) -> str:
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem_kb = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
        ram = f"{mem_kb / 1024 / 1024:.1f} GiB RAM"
    except (OSError, StopIteration):
        ram = "RAM unknown"
    return (
        f"machine: {model}, {os.cpu_count()} cores, {ram}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, {db_versions()}; "
        f"gunicorn gthread {workers} workers x {threads} threads; load + sandbox in one separate process"
    )


def format_table(rows: Sequence[Row]) -> str:
    header = ["figure", "flask_stars", "baseline", "ratio", "target"]
    table = [header] + [r.cells() for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    out = []
    for n, line in enumerate(table):
        out.append(" | ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip())
        if n == 0:
            out.append("-+-".join("-" * w for w in widths))
    return "\n".join(out)


def print_report(report: Report, *, machine: str | None = None) -> None:
    print(machine or machine_line(), flush=True)
    print(format_table(report.rows))
    if report.notes:
        print("\nnotes (counts, errors):")
        for note in report.notes:
            print("  - " + note)
    sys.stdout.flush()


def main(
    description: str,
    run: Callable[[str, Path, argparse.Namespace], Report],
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
) -> None:
    """The command line of one figure: ``--db sqlite|postgres|both``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--db", choices=[*DBS, "both"], default="both")
    if extra is not None:
        extra(parser)
    args = parser.parse_args()
    dbs = DBS if args.db == "both" else (args.db,)
    report = Report()
    with tempfile.TemporaryDirectory(prefix="stars-bench-") as tmp:
        for db in dbs:
            log(f"{description} on {db}")
            report.extend(run(db, Path(tmp), args))
    print_report(report)


def log(msg: str) -> None:
    """Progress, on stderr (the table goes to stdout)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)
