"""A last-resort copy on disk of money updates the database could not take.

When the database is down or locked as a ``successful_payment`` or ``refunded_payment``
arrives, the update cannot go into ``stars_updates``. It is written here instead (one
JSON file per update, written atomically), the webhook answers 500 so Telegram also
redelivers, and ``flask stars replay --failed`` applies what is here once the database is
back. Each host has its own spool folder: run the replay on each host.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)


class Spool:
    """A folder of raw update bodies waiting for the database."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)

    def put(self, update_id: int | None, body: str) -> Path | None:
        """Keep ``body``; returns its file, or None if even the disk refused."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            name = f"{time.time_ns()}-{update_id if update_id is not None else 'x'}.json"
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".incoming-")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(body)
                fh.flush()
                os.fsync(fh.fileno())
            path = self.directory / name
            os.replace(tmp, path)
        except OSError:
            log.exception("could not spool update %s; Telegram's redelivery is all that is left", update_id)
            return None
        log.error("database unavailable; update %s kept in %s", update_id, path)
        return path

    def pending(self) -> list[Path]:
        """Spooled updates, oldest first."""
        if not self.directory.is_dir():
            return []
        return sorted(p for p in self.directory.glob("*.json") if not p.name.startswith("."))
