"""A served host app with the dashboard at /admin, for the dashboard's test modules."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from flask_stars.dashboard import dashboard_bp
from flask_stars.sandbox import Sandbox
from flask_stars.testing import connect, serve
from tests import hostapp
from tests.conftest import Shop


class AdminShop(Shop):
    """A ``Shop`` whose app serves the dashboard at /admin to anyone (``access`` says yes)."""

    def client(self, **headers: str) -> Any:
        c = self.app.test_client()
        if headers:
            c.environ_base.update({f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()})
        return c

    def payment_id(self, charge_id: str) -> int:
        (payment,) = self.payments(telegram_payment_charge_id=charge_id)
        return payment.id


@contextmanager
def served_admin(
    database_url: str, sandbox: Sandbox, *, actor: Callable[[], Any] | None = None, **config: Any
) -> Iterator[AdminShop]:
    """The host app with the dashboard registered (with ``actor=`` when given), served and
    connected to the sandbox."""
    config.setdefault("STARS_API_URL", sandbox.url)
    app = hostapp.create_app(database_url, SECRET_KEY="dashboard tests", **config)
    options: dict[str, Any] = {"access": lambda: True}
    if actor is not None:
        options["actor"] = actor
    app.register_blueprint(dashboard_bp, url_prefix="/admin", **options)
    try:
        with serve(app) as base:
            connect(app, sandbox, base)
            yield AdminShop(app, base, sandbox)
    finally:
        with app.app_context():
            for engine in hostapp.db.engines.values():
                engine.dispose()


def form_token(client: Any, path: str) -> str:
    """The CSRF token of the confirmation form at ``path``."""
    page = client.get(path)
    assert page.status_code == 200, page.data
    found = re.search(rb'name="csrf_token" value="([^"]+)"', page.data)
    assert found, "the confirmation form carries a CSRF token"
    return found.group(1).decode()
