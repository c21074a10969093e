"""SQL statements per payment: flask_stars vs the bare endpoints, counted by SQLAlchemy events.

    python -m bench.sqlcount --db sqlite|postgres|both [--list]

The bench app runs in this process (Flask test client; the Bot API sandbox on 127.0.0.1),
with ``before_cursor_execute`` plus ``begin``/``commit``/``rollback`` listeners on its engine.
One payment is warmed up first (first-use work such as table checks is not counted), then
the next payment's pre-checkout and successful_payment are counted, and an invoice's first
click and a repeat click. ``--list`` prints every statement.
"""

from __future__ import annotations

import argparse
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import event

from bench.benchapp import TOKEN, create_app, db
from bench.common import (
    WEBHOOK_HEADERS,
    LoadSandbox,
    Report,
    Row,
    fresh_database,
    main,
    payment_update,
    pre_checkout_update,
    preload_orders,
)
from bench.invoices import BODY, headers_for


@dataclass
class Recorder:
    on: bool = False
    statements: list[str] = field(default_factory=list)

    def take(self) -> list[str]:
        out, self.statements = self.statements, []
        return out

    def note(self, text: str) -> None:
        if self.on:
            self.statements.append(text)


def short(sql: str) -> str:
    sql = re.sub(r"\s+", " ", sql).strip()
    sql = re.sub(r"SELECT (.{60}).*? FROM", r"SELECT \1… FROM", sql)
    return sql if len(sql) <= 150 else sql[:147] + "…"


def attach(engine: Any, rec: Recorder) -> None:
    @event.listens_for(engine, "before_cursor_execute")
    def _sql(conn, cursor, statement, parameters, context, executemany):
        rec.note(short(statement))

    for name in ("BEGIN", "COMMIT", "ROLLBACK"):
        event.listen(engine, name.lower(), lambda conn, _n=name: rec.note(f"-- {_n}"))


def count(db_name: str, workdir: Path) -> dict[str, dict[str, list[str]]]:
    url = fresh_database(db_name, workdir, name="sqlcount")
    stars_jobs = preload_orders(url, 2, bare=False, user_base=40_000_000)
    bare_jobs = preload_orders(url, 2, bare=True, user_base=70_000_000)
    rec = Recorder()
    out: dict[str, dict[str, list[str]]] = {"flask_stars": {}, "bare": {}}
    with LoadSandbox(token=TOKEN) as tg:
        app = create_app(url, tg.url, STARS_SPOOL_DIR=str(workdir / "spool"))
        with app.app_context():
            attach(db.engine, rec)
        client = app.test_client()

        def post(path: str, body: bytes, headers: dict[str, str]) -> None:
            resp = client.post(path, data=body, headers=headers)
            resp.close()  # runs work deferred until the response is sent (call_on_close)
            assert resp.status_code in (200, 201), (path, resp.status_code, resp.data[:200])

        paths = {
            "flask_stars": ("/stars/webhook", "/stars/webhook"),
            "bare": ("/bare/pre_checkout", "/bare/payment"),
        }
        for side, jobs in (("flask_stars", stars_jobs), ("bare", bare_jobs)):
            pre_path, pay_path = paths[side]
            for n, (order_id, user) in enumerate(jobs):
                rec.on = n == 1  # the first payment warms up
                post(
                    pre_path, pre_checkout_update(f"q{secrets.token_hex(6)}", user, order_id), WEBHOOK_HEADERS
                )
                out[side]["pre_checkout"] = rec.take()
                post(
                    pay_path,
                    payment_update("stx" + secrets.token_urlsafe(12), user, order_id),
                    WEBHOOK_HEADERS,
                )
                out[side]["payment"] = rec.take()
            path = "/stars/invoice" if side == "flask_stars" else "/bare/invoice"
            headers = headers_for(41_000_000 if side == "flask_stars" else 71_000_000)
            rec.on = True
            post(path, BODY, headers)
            out[side]["invoice"] = rec.take()
            post(path, BODY, headers)
            out[side]["repeat_click"] = rec.take()
            rec.on = False
    return out


def executed(stmts: list[str]) -> int:
    """Statements sent to the database (COMMIT/ROLLBACK counted, implicit BEGIN not)."""
    return sum(1 for s in stmts if s != "-- BEGIN")


def run(db_name: str, workdir: Path, args: argparse.Namespace) -> Report:
    c = count(db_name, workdir)
    s, b = c["flask_stars"], c["bare"]
    sp, bp = (
        executed(s["pre_checkout"]) + executed(s["payment"]),
        executed(b["pre_checkout"]) + executed(b["payment"]),
    )
    report = Report()
    report.rows.append(
        Row(
            f"SQL statements per payment [{db_name}]",
            f"{sp} ({executed(s['pre_checkout'])} pre-checkout + {executed(s['payment'])} payment)",
            f"{bp} ({executed(b['pre_checkout'])} + {executed(b['payment'])})",
            sp / bp,
            "(count; COMMIT/ROLLBACK incl.)",
        )
    )
    report.rows.append(
        Row(
            f"SQL statements per invoice, first/repeat [{db_name}]",
            f"{executed(s['invoice'])} / {executed(s['repeat_click'])}",
            f"{executed(b['invoice'])} / {executed(b['repeat_click'])}",
            executed(s["invoice"]) / executed(b["invoice"]),
            "(count)",
        )
    )
    if getattr(args, "list", False):
        for side in ("flask_stars", "bare"):
            for step, stmts in c[side].items():
                report.notes.append(f"[{db_name}] {side} {step}: {executed(stmts)} statements")
                report.notes.extend(f"    {i}. {st}" for i, st in enumerate(stmts, 1))
    return report


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--list", action="store_true", help="print every statement")


if __name__ == "__main__":
    main("SQL statements per payment", run, add_args)
