"""Starting servers for the tests: a free port, and waiting for a process to serve."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import requests


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_until_serving(proc: subprocess.Popen[str], url: str, *, seconds: float, what: str) -> None:
    """Return once ``url`` answers 200; ``AssertionError`` with the process's output if
    ``proc`` exits first or ``seconds`` pass (``what`` names it in the message)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            out = proc.communicate(timeout=10)[0] if proc.poll() is not None else "(still running)"
            raise AssertionError(f"{what} did not come up: {out}")
        time.sleep(0.1)


@contextmanager
def sandbox_run(app_spec: str) -> Iterator[tuple[str, list[str]]]:
    """`flask stars sandbox` for ``app_spec`` in a real subprocess: yields its base URL and,
    once the block ends and the run is stopped, the list holds what it printed."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", app_spec, "stars", "sandbox", "--port", str(port)],
        env={**os.environ, "PYTHONPATH": os.getcwd()},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    printed: list[str] = []
    try:
        for _ in range(100):
            try:
                if requests.get(base + "/stars/sandbox/", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.1)
        else:
            raise AssertionError("the sandbox did not come up")
        yield base, printed
    finally:
        proc.terminate()
        printed.append(proc.communicate(timeout=10)[0])


def buy_in_sandbox_run(base: str, init_data: str, user_id: int, pack_id: str) -> None:
    """Invoice, Pay on the sandbox page, and the server says paid."""
    auth = {"Authorization": "tma " + init_data}
    order = requests.post(base + "/stars/invoice", json={"pack_id": pack_id}, headers=auth, timeout=5).json()
    slug = order["invoice_url"].rsplit("$", 1)[1]
    paid = requests.post(
        base + "/stars/sandbox/pay", json={"slug": slug, "user_id": user_id}, timeout=15
    ).json()
    assert paid["ok"] and paid["webhook_status"] == 200
    status = requests.get(base + f"/stars/orders/{order['order_id']}", headers=auth, timeout=5).json()
    assert status["status"] == "paid"
