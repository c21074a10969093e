"""The host app as gunicorn serves it in the multi-process tests (configured by environment)."""

from __future__ import annotations

import os

from tests.support.hostapp import create_app

app = create_app(
    os.environ["SERVED_DB_URL"],
    STARS_API_URL=os.environ["SERVED_API_URL"],
    STARS_API_TIMEOUT=5,
    STARS_INVOICE_RATE_LIMIT=os.environ.get("SERVED_INVOICE_RATE_LIMIT"),
    STARS_RATE_LIMIT_STORAGE=os.environ.get("SERVED_RATE_LIMIT_STORAGE", "memory://"),
    STARS_SPOOL_DIR=os.environ.get("SERVED_SPOOL_DIR"),
)
