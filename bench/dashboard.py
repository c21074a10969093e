# ruff: noqa: E501  (SQL templates)
"""Figure 9: server time of the dashboard's pages with 10,000 vs 1,000,000 ledger rows.

    python -m bench.dashboard --db sqlite|postgres|both [--rows 1000000] [--repeat 7]

Two ledgers are filled in bulk by the database itself (INSERT ... SELECT over a number
series, 100,000 payments a transaction, as ``bench.growth`` does), spread over the last 90
days, three packs, 2% refunded, with one order and one logged ``successful_payment`` per
payment (one in 100,000 left unprocessed). Each page is asked ``--repeat`` times (after one
warm-up) through the app's WSGI interface in this process, so the time is the server's
alone: the SQL, the template and the SVG. No network is used at all. The figure is the
median; the ratio is how many times slower the big ledger is.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import sqlalchemy as sa
from flask import Flask

from bench.benchapp import TOKEN
from bench.common import Report, Row, fresh_database, log, main
from flask_stars import stars_bp
from flask_stars.dashboard import dashboard_bp
from flask_stars.migrations import VERSION_TABLE

SMALL = 10_000
LARGE = 1_000_000
BATCH = 100_000
REPEAT = 7
PACKS = [
    {"id": "stars_pack_1", "stars": 10, "title": "Starter pack", "credits": 1},
    {"id": "stars_pack_2", "stars": 40, "title": "Premium pack", "credits": 5},
    {"id": "stars_pack_3", "stars": 100, "title": "Mega pack", "credits": 15},
]

# n runs 0..rows-1, oldest first: ids grow with paid_at, as they do in a live ledger.
_EXPR = {
    "postgres": {
        "series": "generate_series(:lo, :hi - 1) AS g(n)",
        "prefix": "",
        "ts": "((now() at time zone 'utc') - (:rows - n) * (interval '90 days' / :rows))",
        "oid": "'d' || lpad(n::text, 20, '0')",
        "true": "true",
        "false": "false",
    },
    "sqlite": {
        "series": "s",
        "prefix": "WITH RECURSIVE s(n) AS (SELECT :lo UNION ALL SELECT n + 1 FROM s WHERE n < :hi - 1) ",
        "ts": "strftime('%Y-%m-%d %H:%M:%f000', 'now', '-' || ((:rows - n) * 7776.0 / :rows * 1000) || ' seconds')",
        "oid": "printf('d%020d', n)",
        "true": "1",
        "false": "0",
    },
}


def _fill_sql(db: str) -> list[str]:
    e = _EXPR[db]
    pack = "CASE n % 3 WHEN 0 THEN 'stars_pack_1' WHEN 1 THEN 'stars_pack_2' ELSE 'stars_pack_3' END"
    stars = "CASE n % 3 WHEN 0 THEN 10 WHEN 1 THEN 40 ELSE 100 END"
    status = "CASE WHEN n % 50 = 0 THEN 'refunded' ELSE 'paid' END"
    user = "(900000000 + n % 100000)"
    ts = e["ts"]
    if db == "sqlite":  # 90 days = 7,776,000 s; the expression above counts in 1/1000 of that
        ts = "strftime('%Y-%m-%d %H:%M:%f000', 'now', '-' || ((:rows - n) * 7776000.0 / :rows) || ' seconds')"
    return [
        f"{e['prefix']}INSERT INTO stars_orders (id, user_id, pack_id, stars, status, invoice_url, created_at, expires_at, paid_at) "
        f"SELECT {e['oid']}, {user}, {pack}, {stars}, {status}, 'https://t.me/$d' || n, {ts}, {ts}, {ts} FROM {e['series']}",
        f"{e['prefix']}INSERT INTO stars_payments (telegram_payment_charge_id, user_id, payer_id, order_id, pack_id, stars, "
        f"currency, invoice_payload, status, credited, paid_at, refunded_at, update_id) "
        f"SELECT 'dch' || n, {user}, {user}, {e['oid']}, {pack}, {stars}, 'XTR', 'order:' || {e['oid']}, {status}, "
        f"{e['true']}, {ts}, CASE WHEN n % 50 = 0 THEN {ts} END, n FROM {e['series']}",
        f"{e['prefix']}INSERT INTO stars_updates (update_id, digest, kind, received_at, body, processed, processed_at, attempts) "
        f"SELECT n, 'digest' || n, 'successful_payment', {ts}, '{{\"update_id\": ' || n || '}}', "
        f"CASE WHEN n % 100000 = 7 THEN {e['false']} ELSE {e['true']} END, {ts}, 1 FROM {e['series']}",
    ]


def make_app(url: str) -> Flask:
    """A host app with stars_bp and the dashboard (open to all: this process is the only client)."""
    app = Flask(__name__)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=url,
        STARS_BOT_TOKEN=TOKEN,
        STARS_PACKS=PACKS,
        STARS_CREDIT_CALLBACK=lambda payment: None,
        STARS_BUY_COMMAND=None,
        SECRET_KEY="bench",
    )
    app.register_blueprint(stars_bp)
    app.register_blueprint(dashboard_bp, url_prefix="/admin", access=lambda: True)
    return app


def fill(db: str, url: str, rows: int) -> float:
    began = time.perf_counter()
    # ``fresh_database`` made the tables with create_all but leaves the version table of an
    # earlier run (a PostgreSQL schema outlives the run): without it, first use recognises
    # the new tables by their columns and stamps them, instead of upgrading them again.
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {VERSION_TABLE}"))
    engine.dispose()
    app = make_app(url)
    with app.app_context():  # flask_stars makes its tables (the newest revision) on first use
        engine = app.extensions["stars"].database.engine
        app.extensions["stars"].session.rollback()
    for lo in range(0, rows, BATCH):
        hi = min(lo + BATCH, rows)
        with engine.begin() as conn:
            for sql in _fill_sql(db):
                conn.execute(sa.text(sql), {"lo": lo, "hi": hi, "rows": rows})
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        conn.commit()
    engine.dispose()
    return time.perf_counter() - began


def pages(rows: int) -> dict[str, str]:
    """The pages timed: label -> path. ``rows`` places the deep page and the old week."""
    return {
        "overview, 30 days": "/admin/",
        "overview, 90 days": "/admin/?days=90",
        "payments, pack + status": "/admin/payments?pack=stars_pack_2&status=refunded",
        "payments, one user": "/admin/payments?user=900000042",
        "payments, one old day": "/admin/payments?date_from={old}&date_to={old}",
        "payments, deep keyset page": f"/admin/payments?before={rows // 10}",
        "payment page": f"/admin/payments/{rows // 2}",
    }


def time_pages(url: str, rows: int, repeat: int) -> dict[str, float]:
    import datetime as dt

    app = make_app(url)
    client = app.test_client()
    old = (dt.datetime.now(dt.UTC) - dt.timedelta(days=80)).date().isoformat()
    out: dict[str, float] = {}
    for label, path in pages(rows).items():
        path = path.format(old=old)
        response = client.get(path)  # warm-up (and a check)
        assert response.status_code == 200, (path, response.status_code)
        took = []
        for _ in range(repeat):
            began = time.perf_counter()
            response = client.get(path)
            took.append(time.perf_counter() - began)
        out[label] = statistics.median(took)
    with app.app_context():
        app.extensions["stars"].database.engine.dispose()
    return out


def run(db: str, workdir: Path, args: argparse.Namespace) -> Report:
    large = getattr(args, "rows", LARGE) or LARGE
    repeat = max(1, min(getattr(args, "repeat", REPEAT) or REPEAT, 50))
    urls = {
        "small": fresh_database(db, workdir, "dash_small"),
        "big": fresh_database(db, workdir, "dash_big"),
    }
    took = {"small": fill(db, urls["small"], SMALL)}
    log(f"dashboard [{db}]: {SMALL:,} payments loaded in {took['small']:.1f} s; loading {large:,}")
    took["big"] = fill(db, urls["big"], large)
    log(f"dashboard [{db}]: {large:,} payments loaded in {took['big']:.1f} s")
    times = {k: time_pages(url, SMALL if k == "small" else large, repeat) for k, url in urls.items()}
    report = Report()
    for label in times["small"]:
        small, big = times["small"][label], times["big"][label]
        report.rows.append(
            Row(
                f"9. dashboard {label}, {large / 1e6:g}M vs 10k rows [{db}]",
                f"{big * 1000:.1f} ms",
                f"{small * 1000:.1f} ms",
                big / small if small else float("nan"),
                "< 1000 ms at 1M",
                big < 1.0,
            )
        )
    report.notes.append(
        f"[{db}] dashboard: server time in process (WSGI, no network), median of {repeat} after a warm-up; "
        f"bulk load {took['small']:.1f} s + {took['big']:.1f} s"
    )
    return report


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rows", type=int, default=LARGE, help=f"payments in the big ledger (default {LARGE:,})"
    )
    parser.add_argument("--repeat", type=int, default=REPEAT, help="requests per page (at most 50)")


if __name__ == "__main__":
    main("dashboard pages (9)", run, add_args)
