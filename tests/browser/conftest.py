"""Browser tests: the example app's Mini App in real headless Chromium (Debian's), driven by
Playwright, with Telegram's real telegram-web-app.js (from the npm package @twa-dev/sdk,
fetched at test time into .cache/, never committed) served in place of telegram.org.

Without /usr/bin/chromium or the playwright package these tests skip, so a plain
``pytest`` passes anywhere; CI sets STARS_REQUIRE_BROWSER=1 to make that a failure.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flask_stars.initdata import sign_init_data
from flask_stars.sandbox import SANDBOX_TOKEN, TEST_USERS, WEB_APP_VERSION, Sandbox, attach_sandbox
from flask_stars.testing import serve

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "twa"
SCREENSHOTS = ROOT / "screenshots"
CHROMIUM = "/usr/bin/chromium"
TWA_PACKAGE = "@twa-dev/sdk@8"
TELEGRAM_JS = "https://telegram.org/js/telegram-web-app.js"


def _missing_browser() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is not installed (apt-get install -y chromium)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[test]')"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = _missing_browser()
    if reason is None:
        return
    if os.environ.get("STARS_REQUIRE_BROWSER"):
        raise pytest.UsageError(f"browser tests required but {reason}")
    for item in items:
        if "tests/browser" in str(item.path):
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def browser_type_launch_args() -> dict[str, Any]:
    # Debian's Chromium: Playwright cannot download its own browsers here.
    return {
        "executable_path": CHROMIUM,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ],
    }


@pytest.fixture(scope="session")
def telegram_web_app_js() -> str:
    """Telegram's own telegram-web-app.js, as shipped verbatim in @twa-dev/sdk."""
    target = CACHE / "telegram-web-apps.js"
    if not target.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("npm is needed to fetch @twa-dev/sdk (Telegram's telegram-web-app.js)")
        CACHE.mkdir(parents=True, exist_ok=True)
        out = subprocess.run(
            [npm, "pack", TWA_PACKAGE, "--pack-destination", str(CACHE), "--silent"],
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        )
        tarball = CACHE / out.stdout.strip().splitlines()[-1]
        with tarfile.open(tarball) as tar:
            member = tar.extractfile("package/src/telegram-web-apps.js")
            assert member is not None
            target.write_bytes(io.BytesIO(member.read()).getvalue())
    return target.read_text()


class Example:
    """The example app, served on 127.0.0.1 with the sandbox playing Telegram."""

    def __init__(self, app: Any, base: str, sandbox: Sandbox) -> None:
        self.app = app
        self.base = base
        self.tg = sandbox

    def balance(self, user_id: int) -> int:
        from example_app.models import User, db

        with self.app.app_context():
            user = db.session.get(User, user_id)
            return 0 if user is None else user.coins

    def payments(self) -> list[Any]:
        import sqlalchemy as sa

        from flask_stars.models import Payment

        with self.app.app_context():
            session = self.app.extensions["stars"].session
            rows = list(session.scalars(sa.select(Payment)))
            session.expunge_all()
            return rows

    def mini_app_url(self, user: dict[str, Any], *, tamper: bool = False) -> str:
        from urllib.parse import quote

        init_data = sign_init_data(SANDBOX_TOKEN, user)
        if tamper:
            init_data = init_data.replace("auth_date=", "auth_date=1")
        return (
            f"{self.base}/#tgWebAppData={quote(init_data, safe='')}"
            f"&tgWebAppVersion={WEB_APP_VERSION}&tgWebAppPlatform=tdesktop"
        )


@pytest.fixture
def example(tmp_path: Path) -> Iterator[Example]:
    from example_app import create_app

    with Sandbox(token=SANDBOX_TOKEN) as sandbox:
        app = create_app(
            {
                "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'example.db'}",
                "STARS_BOT_TOKEN": SANDBOX_TOKEN,
                "STARS_API_URL": sandbox.url,
                "STARS_API_TIMEOUT": 5,
                "SANDBOX": True,
            }
        )
        with serve(app) as base:
            attach_sandbox(app, sandbox, base)
            yield Example(app, base, sandbox)


# The Telegram client, for pages opened directly: Telegram's script hands every event to
# window.TelegramWebviewProxy.postEvent, as in the mobile and desktop apps.
WEBVIEW_PROXY = """
window.__tgEvents = [];
window.TelegramWebviewProxy = {
  postEvent: function (type, data) { window.__tgEvents.push([type, data ? JSON.parse(data) : null]); }
};
"""


@pytest.fixture
def mini_app(page: Any, example: Example, telegram_web_app_js: str) -> Any:
    """Open the example's Mini App as a user, as Telegram Desktop would: ``mini_app(user)``."""

    def open_as(user: dict[str, Any] = TEST_USERS[0], *, tamper: bool = False) -> Any:
        page.add_init_script(WEBVIEW_PROXY)
        page.route(
            TELEGRAM_JS, lambda route: route.fulfill(body=telegram_web_app_js, content_type="text/javascript")
        )
        page.goto(example.mini_app_url(user, tamper=tamper))
        return page

    return open_as


def buy_premium_on_sandbox_page(page: Any, example: Example, telegram_web_app_js: str) -> Any:
    """On the sandbox page (Telegram's script served locally), buy pack 2 as the first test
    user and wait for the Mini App's balance; returns the Mini App's frame."""
    from playwright.sync_api import expect

    page.route(
        TELEGRAM_JS, lambda route: route.fulfill(body=telegram_web_app_js, content_type="text/javascript")
    )
    page.set_viewport_size({"width": 1000, "height": 860})
    page.goto(example.base + "/stars/sandbox/")
    app = page.frame_locator("#miniapp")
    app.locator("#open-shop").click()
    app.locator("button.price[data-pack=stars_pack_2]").click()
    page.click("#pay")
    expect(app.locator("#balance")).to_have_text("5,000,000")
    return app


def shot(page: Any, name: str, *, full_page: bool = False) -> None:
    """Keep a screenshot of the scenario (screenshots/ is ignored by git)."""
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)


DOCS = Path(__file__).resolve().parents[2] / "docs" / "images"


def doc_shot(page: Any, name: str) -> None:
    """The README's screenshots: written to docs/images with STARS_DOC_SCREENSHOTS=1, so a
    plain test run leaves the committed images alone (and keeps a copy in screenshots/)."""
    if os.environ.get("STARS_DOC_SCREENSHOTS") == "1":
        DOCS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOCS / f"{name}.png"))
    shot(page, name)
