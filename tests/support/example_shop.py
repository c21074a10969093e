"""The example app as ``python -m example_app`` builds it (the sandbox playing Telegram, the
dashboard at /admin behind its password), served on 127.0.0.1 on a test database; for the
reconcile tests that restart it on the same database."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from flask import Flask

from flask_stars.sandbox import SANDBOX_TOKEN, PaymentAttempt, Sandbox, attach_sandbox
from flask_stars.testing import init_data_header, serve

PASSWORD = "example-admin-password"


class ExampleShop:
    """One run of the example app: its Flask app, its URL and the sandbox it talks to."""

    def __init__(self, app: Flask, base: str, sandbox: Sandbox) -> None:
        self.app = app
        self.base = base
        self.tg = sandbox

    def buy(self, user_id: int, pack_id: str = "stars_pack_1", **pay: Any) -> PaymentAttempt:
        """The Mini App's purchase: an invoice from /stars/invoice, paid in the sandbox."""
        client = self.app.test_client()
        answer = client.post(
            "/stars/invoice", json={"pack_id": pack_id}, headers=init_data_header(SANDBOX_TOKEN, user_id)
        )
        assert answer.status_code in (200, 201), answer.data
        attempt = self.tg.pay(answer.get_json()["invoice_url"], user_id, **pay)
        assert attempt.ok, attempt
        return attempt

    def balance(self, user_id: int) -> int:
        from example_app.models import User, db

        with self.app.app_context():
            user = db.session.get(User, user_id)
            coins = 0 if user is None else int(user.coins)
            db.session.rollback()
            return coins

    def rows(self, model: Any, **filters: Any) -> list[Any]:
        with self.app.app_context():
            session = self.app.extensions["stars"].session
            rows = list(session.scalars(sa.select(model).filter_by(**filters).order_by(model.id)))
            session.expunge_all()
            session.rollback()
            return rows

    def admin(self) -> Any:
        """A test client logged in to the dashboard with the operator's password."""
        client = self.app.test_client()
        answer = client.post("/login", data={"password": PASSWORD})
        assert answer.status_code == 302, answer.data
        return client

    def run_now(self, client: Any) -> Any:
        """The dashboard's Run now: the confirmation page, then its form posted (CSRF, confirm)."""
        path = "/admin/reconcile/run"
        page = client.get(path)
        assert page.status_code == 200, page.data
        found = re.search(rb'name="csrf_token" value="([^"]+)"', page.data)
        assert found, "the confirmation form carries a CSRF token"
        return client.post(path, data={"confirm": "yes", "csrf_token": found.group(1).decode()})


def drop_example_tables(database_url: str) -> None:
    """The example's own table (``users``) from an earlier test on the same database."""
    from example_app.models import db

    engine = sa.create_engine(database_url)
    with engine.begin() as conn:
        db.metadata.drop_all(conn)
    engine.dispose()


@contextmanager
def example_run(database_url: str, sandbox: Sandbox | None = None) -> Iterator[ExampleShop]:
    """``python -m example_app`` on ``database_url``: a fresh sandbox (unless given), the app
    made for it, served, and the sandbox attached; all stopped at the end."""
    from example_app import create_app
    from example_app.models import db

    own = sandbox is None
    tg = Sandbox(token=SANDBOX_TOKEN).start() if sandbox is None else sandbox
    try:
        app = create_app(
            {
                "SQLALCHEMY_DATABASE_URI": database_url,
                "STARS_BOT_TOKEN": SANDBOX_TOKEN,
                "STARS_API_URL": tg.url,
                "STARS_API_TIMEOUT": 10,
                "SANDBOX": True,
                "ADMIN_PASSWORD": PASSWORD,
                "SECRET_KEY": "example tests",
            }
        )
        try:
            with serve(app) as base:
                attach_sandbox(app, tg, base)
                yield ExampleShop(app, base, tg)
        finally:
            with app.app_context():
                for engine in db.engines.values():
                    engine.dispose()
    finally:
        if own:
            tg.stop()
