"""`flask stars stats` and the dashboard's overview give the same figures (issue 19, point 5).

Both read ``flask_stars.reports.revenue``: one GROUP BY day and pack over whole UTC days,
today and the days before it. A ledger with payments, refunds, several packs, a payment
that matched no order and payments at the edges of the window is read both ways, for 30
and for 90 days, and every figure must agree: per day and pack, per day, and in total.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from html.parser import HTMLParser
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from flask_stars.dashboard import dashboard_bp
from flask_stars.models import Payment, utcnow
from tests.support import hostapp

NO_ORDER_CLI = "(no order)"  # the CLI's pack column for a payment that matched no order
TITLES = {pack["id"]: pack["title"] for pack in hostapp.PACKS} | {NO_ORDER_CLI: "(no order)"}


def _at(day: date, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute, second), tzinfo=UTC)


def _ledger(today: date) -> list[tuple[str | None, int, str, datetime]]:
    """(pack, stars, status, paid_at) of every payment: packs, refunds, days, window edges."""
    day = [today - timedelta(days=n) for n in range(91)]  # day[n]: n days ago
    now = utcnow()
    return [
        ("stars_pack_1", 10, "paid", now - timedelta(minutes=5)),
        ("stars_pack_1", 10, "refunded", now - timedelta(minutes=4)),
        ("stars_pack_2", 40, "paid", now - timedelta(minutes=3)),
        (None, 25, "paid", now - timedelta(minutes=2)),  # matched no order
        ("stars_pack_1", 10, "paid", _at(day[1], 0, 0, 1)),
        ("stars_pack_2", 40, "refunded", _at(day[1], 23, 59, 59)),
        ("stars_pack_2", 40, "paid", _at(day[5], 12)),
        ("stars_pack_1", 10, "refunded", _at(day[5], 13)),
        (None, 7, "refunded", _at(day[12], 8)),
        ("stars_pack_1", 10, "paid", _at(day[29], 0, 0, 1)),  # the first day of 30
        ("stars_pack_2", 40, "paid", _at(day[30], 23, 59, 59)),  # the day before it: only in 90
        ("stars_pack_1", 10, "refunded", _at(day[45], 9)),
        ("stars_pack_2", 40, "paid", _at(day[89], 0, 0, 1)),  # the first day of 90
        ("stars_pack_1", 10, "paid", _at(day[90], 23, 59, 59)),  # in neither
    ]


@pytest.fixture
def app(database_url: str) -> Iterator[Flask]:
    app = hostapp.create_app(database_url, SECRET_KEY="stats tests")
    app.register_blueprint(dashboard_bp, url_prefix="/admin", access=lambda: True)
    today = utcnow().date()
    with app.app_context():
        session = app.extensions["stars"].session
        rows = [
            {
                "telegram_payment_charge_id": f"stats-{i}",
                "user_id": 700 + i,
                "payer_id": 700 + i,
                "pack_id": pack,
                "stars": stars,
                "currency": "XTR",
                "invoice_payload": "order:x",
                "status": status,
                "credited": True,
                "paid_at": paid_at,
                "refunded_at": paid_at + timedelta(minutes=1) if status == "refunded" else None,
            }
            for i, (pack, stars, status, paid_at) in enumerate(_ledger(today))
        ]
        session.execute(sa.insert(Payment), rows)
        session.commit()
    yield app
    with app.app_context():
        for engine in hostapp.db.engines.values():
            engine.dispose()


class _Overview(HTMLParser):
    """The overview's figures: the cards by id, and the chart's table as rows of cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: dict[str, str] = {}
        self.table: list[list[str]] = []
        self._figure: str | None = None
        self._in_table = False
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "b" and found.get("id") in ("received", "refunded", "net"):
            self._figure = found["id"]
            self.figures[self._figure] = ""
        elif tag == "table" and found.get("id") == "chart-table":
            self._in_table = True
        elif self._in_table and tag == "tr":
            self.table.append([])
        elif self._in_table and tag in ("th", "td"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "b":
            self._figure = None
        elif tag == "table":
            self._in_table = False
        elif self._in_table and tag in ("th", "td") and self._cell is not None:
            self.table[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._figure is not None:
            self.figures[self._figure] += data
        if self._cell is not None:
            self._cell.append(data)


def _overview(app: Flask, days: int) -> tuple[dict[str, int], dict[str, dict[str, Any]]]:
    """The overview's totals, and per day: each pack's (payments, stars) and the day's totals."""
    response = app.test_client().get(f"/admin/?days={days}", headers={"Accept-Language": "en"})
    assert response.status_code == 200
    parsed = _Overview()
    parsed.feed(response.get_data(as_text=True))
    totals = {key: int(value.replace("⭐", "").strip()) for key, value in parsed.figures.items()}
    header, *body = [row for row in parsed.table if row]
    packs = header[1:-3]  # day, a column per pack, received, refunded, net
    by_day: dict[str, dict[str, Any]] = {}
    for day, *cells in body:
        if not cells:  # "nothing" in the window
            continue
        per_pack: dict[str, tuple[int, int]] = {}
        for title, cell in zip(packs, cells[:-3], strict=True):
            stars, _, count = cell.partition(" ")
            if int(stars):
                per_pack[title] = (int(count.strip("()") or 0), int(stars))
        received, refunded, net = (int(c) for c in cells[-3:])
        by_day[day] = {"packs": per_pack, "received": received, "refunded": refunded, "net": net}
    return totals, by_day


def _stats(app: Flask, days: int) -> tuple[dict[str, int], dict[str, dict[str, Any]]]:
    """``flask stars stats --json``'s rows, added up the same ways."""
    result = app.test_cli_runner().invoke(args=["stars", "stats", "--json", "--days", str(days)])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    totals = {key: sum(r[key] for r in rows) for key in ("stars", "refunded", "net")}
    by_day: dict[str, dict[str, Any]] = {}
    for r in rows:
        assert r["net"] == r["stars"] - r["refunded"]
        day = by_day.setdefault(r["day"], {"packs": {}, "received": 0, "refunded": 0, "net": 0})
        day["packs"][TITLES[r["pack"]]] = (r["payments"], r["stars"])
        day["received"] += r["stars"]
        day["refunded"] += r["refunded"]
        day["net"] += r["net"]
    return {"received": totals["stars"], "refunded": totals["refunded"], "net": totals["net"]}, by_day


@pytest.mark.parametrize("days", [30, 90])
def test_stats_and_the_overview_give_the_same_figures(app: Flask, days: int) -> None:
    stats_totals, stats_days = _stats(app, days)
    overview_totals, overview_days = _overview(app, days)
    assert stats_days == overview_days
    assert stats_totals == overview_totals

    # And both are the ledger's figures over whole days: the window's first day counts,
    # the day before it does not.
    today = utcnow().date()
    first = today - timedelta(days=days - 1)
    kept = [(stars, status) for _, stars, status, paid_at in _ledger(today) if paid_at.date() >= first]
    received = sum(stars for stars, _ in kept)
    refunded = sum(stars for stars, status in kept if status == "refunded")
    assert stats_totals == {"received": received, "refunded": refunded, "net": received - refunded}
    assert first.isoformat() in stats_days
    assert (first - timedelta(days=1)).isoformat() not in stats_days
