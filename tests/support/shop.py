"""A running host app with flask_stars on 127.0.0.1, and the real update shapes to feed it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa

from flask_stars.models import Order, Payment, UpdateLog
from flask_stars.sandbox import PaymentAttempt, Sandbox
from flask_stars.testing import TEST_TOKEN, init_data_header
from tests.support import hostapp

FIXTURES = Path(__file__).parent / "fixtures" / "updates"


def load_update(name: str) -> dict[str, Any]:
    """One of the real update shapes in tests/support/fixtures/updates (copied from shared/examples)."""
    return json.loads((FIXTURES / f"{name}.json").read_text())


def refunded_payment_update(charge_id: str, user_id: int, payload: str | None = None) -> dict[str, Any]:
    """The real ``refunded_payment`` update shape, for this charge and user."""
    update = load_update("refunded_payment")
    msg = update["message"]
    msg["from"]["id"] = msg["chat"]["id"] = user_id
    msg["refunded_payment"]["telegram_payment_charge_id"] = charge_id
    if payload is not None:
        msg["refunded_payment"]["invoice_payload"] = payload
    return update


class Shop:
    """A running host app with flask_stars, talking to the sandbox over real HTTP."""

    def __init__(self, app: Any, base_url: str, sandbox: Sandbox) -> None:
        self.app = app
        self.base = base_url
        self.tg = sandbox
        self.http = requests.Session()
        self.prefix = app.extensions["stars"].url_prefix

    @property
    def credit_log(self) -> hostapp.CreditLog:
        return self.app.extensions["host_credit_log"]

    def url(self, path: str) -> str:
        return self.base + self.prefix + path

    def auth(self, user_id: int, **kwargs: Any) -> dict[str, str]:
        return init_data_header(TEST_TOKEN, user_id, **kwargs)

    def invoice(self, user_id: int, pack_id: str = "stars_pack_1", **kwargs: Any) -> requests.Response:
        return self.http.post(
            self.url("/invoice"), json={"pack_id": pack_id}, headers=self.auth(user_id), **kwargs
        )

    def order_status(self, order_id: str, user_id: int, wait: float | None = None) -> requests.Response:
        params = {"wait": wait} if wait is not None else None
        return self.http.get(self.url(f"/orders/{order_id}"), headers=self.auth(user_id), params=params)

    def buy(
        self, user_id: int, pack_id: str = "stars_pack_1", **pay_kwargs: Any
    ) -> tuple[str, PaymentAttempt]:
        """Mini App path: invoice, then the sandbox pays it as ``user_id``."""
        resp = self.invoice(user_id, pack_id)
        assert resp.status_code in (200, 201), resp.text
        body = resp.json()
        return body["order_id"], self.tg.pay(body["invoice_url"], user_id, **pay_kwargs)

    def post_webhook(self, body: Any, secret: str | None = "default", **kwargs: Any) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}))
        if secret == "default":
            secret = self.app.extensions["stars"].settings.webhook_secrets[0]
        if secret is not None:
            headers["X-Telegram-Bot-Api-Secret-Token"] = secret
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        headers.setdefault("Content-Type", "application/json")
        return self.http.post(self.url("/webhook"), data=data, headers=headers, **kwargs)

    def balance(self, user_id: int) -> int:
        with self.app.app_context():
            user = hostapp.db.session.get(hostapp.User, user_id)
            return 0 if user is None else user.coins

    def rows(self, model: Any, **filters: Any) -> list[Any]:
        with self.app.app_context():
            session = self.app.extensions["stars"].session
            rows = session.scalars(sa.select(model).filter_by(**filters)).all()
            session.expunge_all()
            return list(rows)

    def order(self, order_id: str) -> Order:
        (order,) = self.rows(Order, id=order_id)
        return order

    def payments(self, **filters: Any) -> list[Payment]:
        return self.rows(Payment, **filters)

    def updates(self, **filters: Any) -> list[UpdateLog]:
        return self.rows(UpdateLog, **filters)
