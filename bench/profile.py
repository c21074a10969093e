"""Where a payment's time goes: py-spy over the gunicorn workers under load (or pyinstrument).

    python -m bench.profile --db sqlite|postgres [--seconds 12] [--concurrency 8] [--idle]
    python -m bench.profile --tool pyinstrument --db sqlite   # in-process, sequential

py-spy samples every worker (``--subprocesses`` on the gunicorn master) while the load
process sends complete payments (pre-checkout + successful_payment) to /stars/webhook.
Without ``--idle`` only running threads are sampled (CPU); with it, waiting threads too
(where a request's wall time goes: the database, the Bot API round trip; only threads
serving a request are counted then, not the idle pool). The summary
puts each sample in one bucket (first match from the top of the list) and lists the
flask_stars functions and the leaf functions with the most samples.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.benchapp import TOKEN
from bench.common import LoadSandbox, Server, fresh_database, log, machine_line, preload_orders
from bench.payments import measure

#: (bucket, regex on one frame); a sample goes to the first bucket any of its frames matches.
BUCKETS = [
    ("Bot API call (telebot -> requests -> sandbox)", r"telebot/|flask_stars/botapi\.py"),
    (
        "DB driver: execute/commit (sqlite3/psycopg, incl. waits)",
        r"\bdo_execute\b|\bdo_commit\b|\bdo_rollback\b|\bdo_execute_no_params\b"
        r"|psycopg/|_connect|\bconnect \(",
    ),
    ("SQLAlchemy in Python (ORM, compile, results)", r"sqlalchemy/"),
    ("marshmallow (update schemas)", r"marshmallow/"),
    ("flask_stars own code", r"flask_stars/"),
    ("Flask/Werkzeug request handling", r"flask/|werkzeug/"),
    ("gunicorn (HTTP parsing, I/O)", r"gunicorn/"),
]
FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]+)(?::(?P<line>\d+))?\)$")


def parse_raw(path: Path, skip_pid: int) -> Counter[tuple[str, ...]]:
    """Collapsed stacks (``frame;frame;... count``) per stack, without the gunicorn master's."""
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = tuple(stack.split(";"))
        procs = [f for f in frames if f.startswith("process ")]
        if procs and procs[-1].startswith(f"process {skip_pid}:"):
            continue  # the master's own threads
        stacks[frames] += int(count)
    return stacks


def short_frame(frame: str) -> str:
    m = FRAME.match(frame)
    if not m:
        return frame
    file = m["file"]
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in file:
            file = file.split(marker, 1)[1]
    return f"{m['func']} ({file})"


def summarise(stacks: Counter[tuple[str, ...]], top: int = 14, *, in_request: bool = False) -> str:
    """``in_request``: only samples of threads serving a request (idle pool threads left out)."""
    if in_request:
        stacks = Counter({k: n for k, n in stacks.items() if any("handle_request (" in f for f in k)})
    total = sum(stacks.values())
    if not total:
        return "no samples (did py-spy attach?)"
    buckets: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    for frames, n in stacks.items():
        py = [f for f in frames if not f.startswith(("process ", "thread "))]
        label = next(
            (b for b, rx in BUCKETS if any(re.search(rx, f) for f in py)), "other (threads, GC, imports)"
        )
        buckets[label] += n
        for f in {short_frame(f) for f in py if "flask_stars/" in f or "bench/benchapp" in f}:
            inclusive[f] += n
        if py:
            leaves[short_frame(py[-1])] += n
    lines = [f"{total} samples in the workers" + (" of threads serving a request" if in_request else "")]
    lines.append("buckets (each sample counted once, first match):")
    lines += [f"  {n / total:6.1%}  {b}" for b, n in buckets.most_common()]
    lines.append(f"flask_stars / host functions, inclusive (top {top}):")
    lines += [f"  {n / total:6.1%}  {f}" for f, n in inclusive.most_common(top)]
    lines.append(f"leaf functions, self (top {top}):")
    lines += [f"  {n / total:6.1%}  {f}" for f, n in leaves.most_common(top)]
    return "\n".join(lines)


def with_py_spy(args: argparse.Namespace, workdir: Path) -> str:
    url = fresh_database(args.db, workdir)
    jobs = preload_orders(url, 48 + 6000, bare=False, user_base=80_000_000)
    out = workdir / "py-spy.txt"
    with LoadSandbox(token=TOKEN) as tg, Server(url, tg.url, workdir) as server:
        measure(server, "flask_stars", jobs[:48], 8, 20.0)
        cmd = [
            str(Path(sys.executable).with_name("py-spy")),
            "record",
            "--pid",
            str(server.proc.pid),
            "--subprocesses",
        ]
        cmd += [
            "--format",
            "raw",
            "--rate",
            "100",
            "--duration",
            str(args.seconds),
            "--nonblocking",
            "-o",
            str(out),
        ]
        cmd += ["--idle"] if args.idle else []
        spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(1.0)  # let py-spy attach to every worker
        level = measure(server, "flask_stars", jobs[48:], args.concurrency, max(1.0, args.seconds - 1.5))
        try:
            _, err = spy.communicate(timeout=args.seconds + 30)
        except subprocess.TimeoutExpired:
            spy.kill()
            _, err = spy.communicate()
        if spy.returncode != 0 and not out.exists():
            raise RuntimeError(f"py-spy failed: {err.strip()[-500:]}")
        master = server.proc.pid
    kept = Path(args.keep) / out.name if args.keep else None
    if kept:
        kept.parent.mkdir(parents=True, exist_ok=True)
        kept.write_bytes(out.read_bytes())
    head = (
        f"py-spy on gunicorn ({'all threads, --idle' if args.idle else 'running threads only'}), "
        f"{args.db}, {args.concurrency} connections: {level.done} payments in {level.run.elapsed:.1f} s "
        f"= {level.rate:.1f}/s while sampled" + (f"; raw stacks kept in {kept}" if kept else "")
    )
    return head + "\n" + summarise(parse_raw(out, master), in_request=args.idle)


def with_pyinstrument(args: argparse.Namespace, workdir: Path) -> str:
    """In-process: the bench app behind Flask's test client, payments one after another."""
    from pyinstrument import Profiler

    from bench.benchapp import create_app
    from bench.common import WEBHOOK_HEADERS, payment_update, pre_checkout_update

    url = fresh_database(args.db, workdir)
    jobs = preload_orders(url, 20 + args.payments, bare=False, user_base=81_000_000)
    with LoadSandbox(token=TOKEN) as tg:
        app = create_app(url, tg.url, STARS_SPOOL_DIR=str(workdir / "spool"))
        client = app.test_client()

        def pay(order_id: str, user: int, n: int) -> None:
            for body in (
                pre_checkout_update(f"q{n}", user, order_id),
                payment_update(f"stxprof{n}", user, order_id),
            ):
                resp = client.post("/stars/webhook", data=body, headers=WEBHOOK_HEADERS)
                resp.close()
                assert resp.status_code == 200, resp.data

        for n, (oid, user) in enumerate(jobs[:20]):
            pay(oid, user, n)
        profiler = Profiler(interval=0.0005)
        t0 = time.perf_counter()
        profiler.start()
        for n, (oid, user) in enumerate(jobs[20:], 20):
            pay(oid, user, n)
        profiler.stop()
        took = time.perf_counter() - t0
    text = profiler.output_text(unicode=False, color=False, show_all=False)
    return f"pyinstrument, {args.db}, in process, {args.payments} payments one by one in {took:.2f} s\n{text}"


def main() -> None:
    parser = argparse.ArgumentParser(description="profile a payment's hot path")
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--tool", choices=["py-spy", "pyinstrument"], default="py-spy")
    parser.add_argument("--seconds", type=int, default=12)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--payments", type=int, default=200, help="pyinstrument: payments profiled")
    parser.add_argument("--idle", action="store_true", help="py-spy: sample waiting threads too")
    parser.add_argument("--keep", help="py-spy: folder to keep the raw stacks in")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="stars-profile-") as tmp:
        log(f"profiling with {args.tool} on {args.db}")
        text = with_py_spy(args, Path(tmp)) if args.tool == "py-spy" else with_pyinstrument(args, Path(tmp))
    print(machine_line())
    print(text)


if __name__ == "__main__":
    main()
