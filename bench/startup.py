"""Figure 5: what flask_stars adds to a host app's start-up (imports + building the app).

    python -m bench.startup

A WSGI server imports the app in every worker it forks (gunicorn without --preload), so
this cost is paid once per worker. Both host apps below are run in fresh interpreters,
alternately, several times; the median is reported. The baseline host has Flask,
Flask-SQLAlchemy and telebot (a TeleBot made, a model declared); the flask_stars host is the
same plus flask_stars' blueprint mounted with its config. ``python -X importtime`` then
names the modules only flask_stars brings in and what they cost.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.common import ROOT, Report, Row, log, print_report

RUNS = 7
TOKEN = "123456789:BENCH-sandbox-token_for-flask-stars"

BASELINE = f"""
import time
t0 = time.perf_counter()
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
import telebot
app = Flask("host")
app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite://"
db = SQLAlchemy()
class User(db.Model):
    __tablename__ = "host_users"
    id = db.Column(db.BigInteger, primary_key=True)
    coins = db.Column(db.BigInteger, default=0)
db.init_app(app)
bot = telebot.TeleBot({TOKEN!r}, threaded=False)
#STARS#
t1 = time.perf_counter()
import json, sys
print(json.dumps({{"build": t1 - t0, "ready_at": time.time(), "modules": len(sys.modules)}}))
"""

STARS = """
from flask_stars import stars_bp
app.config.update(
    STARS_BOT_TOKEN={token!r},
    STARS_PACKS=[{{"id": "p1", "stars": 10, "title": "Pack", "credits": 100}}],
    STARS_CREDIT_CALLBACK=lambda payment: None,
)
app.register_blueprint(stars_bp)
"""

SCRIPTS = {
    "baseline": BASELINE.replace("#STARS#", ""),
    "flask_stars": BASELINE.replace("#STARS#", STARS.format(token=TOKEN)),
}


def once(script: str, *flags: str) -> tuple[float, float, int, str]:
    """(in-process import+build seconds, spawn-to-app-built seconds, modules loaded, stderr)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "0"}
    t0 = time.time()
    proc = subprocess.run(
        [sys.executable, *flags, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    wall = out["ready_at"] - t0
    return out["build"], wall, out["modules"], proc.stderr


def importtime(stderr: str) -> dict[str, tuple[int, int]]:
    """module -> (self us, cumulative us), from ``-X importtime`` output."""
    table: dict[str, tuple[int, int]] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "imported package" in line:
            continue
        _, rest = line.split(":", 1)
        self_us, cum_us, name = (p.strip() for p in rest.split("|", 2))
        table[name.strip()] = (int(self_us), int(cum_us))
    return table


def run(
    _db: str | None = None, _workdir: Path | None = None, _args: argparse.Namespace | None = None
) -> Report:
    samples: dict[str, list[tuple[float, float, int]]] = {"baseline": [], "flask_stars": []}
    for name in SCRIPTS:  # warm the file cache and .pyc files first
        once(SCRIPTS[name])
    for _ in range(RUNS):
        for name, script in SCRIPTS.items():
            build, wall, mods, _err = once(script)
            samples[name].append((build, wall, mods))
    base_times = importtime(once(SCRIPTS["baseline"], "-X", "importtime")[3])
    stars_times = importtime(once(SCRIPTS["flask_stars"], "-X", "importtime")[3])
    extra = {m: t for m, t in stars_times.items() if m not in base_times}
    extra_self = sum(t[0] for t in extra.values()) / 1000
    # the biggest top-level packages only flask_stars brings in, by cumulative time
    tops = sorted(((m, t[1]) for m, t in extra.items() if "." not in m), key=lambda x: -x[1])[:6]

    med = {
        n: (statistics.median(s[0] for s in v), statistics.median(s[1] for s in v), v[0][2])
        for n, v in samples.items()
    }
    sb, bb = med["flask_stars"][0], med["baseline"][0]
    sw, bw = med["flask_stars"][1], med["baseline"][1]
    report = Report()
    report.rows.append(
        Row(
            "5. import + build host app (in process)",
            f"{sb * 1000:.0f} ms",
            f"{bb * 1000:.0f} ms",
            sb / bb,
            "(report; no target)",
        )
    )
    report.rows.append(
        Row(
            "5. process spawn -> app built (wall)",
            f"{sw * 1000:.0f} ms",
            f"{bw * 1000:.0f} ms",
            sw / bw,
            "(report; no target)",
        )
    )
    report.notes.append(
        f"start-up: median of {RUNS} alternating runs each in fresh interpreters; modules loaded "
        f"{med['flask_stars'][2]} vs {med['baseline'][2]}; {len(extra)} modules only flask_stars brings, "
        f"{extra_self:.0f} ms of import self-time (-X importtime, one run); biggest: "
        + ", ".join(f"{m} {us / 1000:.0f} ms" for m, us in tops)
        + "; paid once per gunicorn worker (each worker imports the app)"
    )
    log(f"start-up: flask_stars {sb * 1000:.0f} ms vs baseline {bb * 1000:.0f} ms")
    return report


if __name__ == "__main__":
    argparse.ArgumentParser(description="start-up and import cost (5)").parse_args()
    print_report(run())
