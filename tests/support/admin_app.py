"""A served host app with the dashboard at /admin, for the dashboard's test modules."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from flask_stars.dashboard import dashboard_bp
from flask_stars.sandbox import Sandbox
from flask_stars.testing import connect, serve
from tests.support import hostapp
from tests.support.shop import Shop


class AdminShop(Shop):
    """A ``Shop`` whose app serves the dashboard at /admin to anyone while ``allowed`` (the
    access check a test can switch off)."""

    allowed = True

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
    config.setdefault("SECRET_KEY", "dashboard tests")
    app = hostapp.create_app(database_url, **config)
    holder: list[AdminShop] = []
    options: dict[str, Any] = {"access": lambda: holder[0].allowed}
    if actor is not None:
        options["actor"] = actor
    app.register_blueprint(dashboard_bp, url_prefix="/admin", **options)
    try:
        with serve(app) as base:
            connect(app, sandbox, base)
            holder.append(AdminShop(app, base, sandbox))
            yield holder[0]
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
