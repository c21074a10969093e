"""Starting servers for the tests: a free port, and waiting for a process to serve."""

from __future__ import annotations

import socket
import subprocess
import time

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
