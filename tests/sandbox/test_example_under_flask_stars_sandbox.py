"""The example app works under ``flask stars sandbox`` as under ``python -m example_app``: its
page loads the sandbox's stand-in for telegram-web-app.js, so the Mini App opens where
telegram.org cannot be reached (it said "Open this page from Telegram." and showed no balance)."""

from __future__ import annotations

from pathlib import Path

import requests

from example_app import create_app
from flask_stars.testing import TEST_TOKEN
from tests.support.servers import buy_in_sandbox_run, sandbox_run

STAND_IN = "/stars/sandbox/telegram-web-app.js"


def test_the_example_under_flask_stars_sandbox_loads_the_stand_in_and_sells(tmp_path: Path) -> None:
    config = {"STARS_BOT_TOKEN": TEST_TOKEN, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'e.db'}"}
    production = create_app(config)
    assert STAND_IN not in production.test_client().get("/").get_data(as_text=True)  # Telegram's only
    with sandbox_run(f"example_app:create_app({config!r})") as (base, _printed):
        assert STAND_IN in requests.get(base + "/", timeout=5).text
        init = requests.get(base + "/stars/sandbox/init-data", params={"user": 444444}, timeout=5).json()
        buy_in_sandbox_run(base, init["init_data"], 444444, "stars_pack_1")
        me = requests.get(base + "/api/me", headers={"Authorization": "tma " + init["init_data"]}, timeout=5)
    assert me.json()["coins"] == 1_000_000
