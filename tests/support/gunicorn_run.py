"""``tests.support.served_app`` under a real gunicorn, for the multi-process and availability tests.

The tables are made first (as a deployed app would find them), SQLite is put in WAL, and
the server is stopped by itself when the block ends. Load goes to 127.0.0.1 only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa

from flask_stars.models import StarsModel
from flask_stars.testing import TEST_TOKEN, init_data_header
from tests.support import hostapp
from tests.support.servers import free_port, wait_until_serving


@contextmanager
def gunicorn(
    database_url: str,
    api_url: str,
    spool_dir: Path,
    *,
    worker: str = "gthread",
    workers: int = 4,
    threads: int = 4,
    env: dict[str, str] | None = None,
    port: int | None = None,
    log: Path | None = None,
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Serve ``tests.support.served_app`` with gunicorn; yields the master process and its
    base URL. The master leads a process group of its own (``os.killpg`` kills the host:
    master and workers); ``port`` serves on that port (a host restarted where it was); ``log``
    takes its output (else a pipe, read only if it fails to start: keep it quiet)."""
    engine = sa.create_engine(database_url)
    with engine.begin() as conn:
        hostapp.HostBase.metadata.create_all(conn)
        StarsModel.metadata.create_all(conn)
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA journal_mode = WAL")
    engine.dispose()
    port = port or free_port()
    full_env = {
        **os.environ,
        "PYTHONPATH": os.getcwd(),
        "SERVED_DB_URL": database_url,
        "SERVED_API_URL": api_url,
        "SERVED_SPOOL_DIR": str(spool_dir),
        **(env or {}),
    }
    cmd = [sys.executable, "-m", "gunicorn", "-w", str(workers), "-k", worker, "-b", f"127.0.0.1:{port}"]
    cmd += ["--threads", str(threads)] if worker == "gthread" else []
    cmd += [
        "--timeout",
        "60",
        "--graceful-timeout",
        "3",
        "--log-level",
        "warning",
        "tests.support.served_app:app",
    ]
    output = log.open("a") if log is not None else subprocess.PIPE
    proc = subprocess.Popen(
        cmd, env=full_env, stdout=output, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(proc, base + "/stars/packs", seconds=30, what="gunicorn")
        yield proc, base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        if log is not None:
            output.close()  # type: ignore[union-attr]


def open_invoice(base: str, user_id: int, pack_id: str = "stars_pack_1") -> dict[str, Any]:
    """``POST /stars/invoice`` on the served app as ``user_id``: its JSON (asserted 200/201)."""
    resp = requests.post(
        base + "/stars/invoice",
        json={"pack_id": pack_id},
        headers=init_data_header(TEST_TOKEN, user_id),
        timeout=30,
    )
    assert resp.status_code in (200, 201), resp.text
    body: dict[str, Any] = resp.json()
    return body
