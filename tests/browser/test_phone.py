"""The dashboard and the sandbox page on a phone: at 390 × 844, in English and in Russian, no
page is wider than the screen (a wide table scrolls in its own box), and the error pages are
the dashboard's own, with a way back. With STARS_DOC_SCREENSHOTS=1 the overview at phone width
goes to docs/images/ (the README's)."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from flask_stars.models import UpdateLog
from flask_stars.sandbox import TEST_USERS
from tests.browser.conftest import TELEGRAM_JS, buy_premium_on_sandbox_page, doc_shot, shot

PHONE = {"width": 390, "height": 844}
IVAN = TEST_USERS[1]


def _document_width(page: Any) -> int:
    return int(
        page.evaluate("() => Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)")
    )


def _fits(page: Any, what: str) -> None:
    width = _document_width(page)
    assert width <= PHONE["width"], f"{what} is {width} px wide on a {PHONE['width']} px screen"


def _sign_in(page: Any, example: Any) -> None:
    page.goto(example.base + "/admin/")
    page.fill("#password", example.app.config["ADMIN_PASSWORD"])
    page.click("#sign-in")
    expect(page.locator("header.top")).to_be_visible()


@pytest.mark.parametrize("language", ["en", "ru"])
def test_every_dashboard_page_fits_a_phone(
    browser: Any, example: Any, telegram_web_app_js: str, language: str
) -> None:
    context = browser.new_context(
        viewport=PHONE, locale=language, extra_http_headers={"Accept-Language": language}
    )
    page = context.new_page()
    buy_premium_on_sandbox_page(page, example, telegram_web_app_js)
    (payment,) = example.payments()
    with example.app.app_context():
        row = example.app.extensions["stars"].session.scalars(sa.select(UpdateLog.id)).first()
    _sign_in(page, example)
    page.set_viewport_size(PHONE)
    pages = [
        "/admin/",
        "/admin/?days=90",
        "/admin/payments",
        "/admin/payments?date_from=2026-12-05&date_to=2026-12-01",
        f"/admin/payments/{payment.id}",
        f"/admin/payments/{payment.id}/refund",
        "/admin/updates",
        f"/admin/updates/{row}",
        f"/admin/updates/{row}/replay",
        f"/admin/updates/{row}/archive",
        "/admin/updates/replay-failed",
        "/admin/subscriptions",
        "/admin/reconcile",
        "/admin/reconcile/run",
        "/admin/activity",
        "/admin/payments/999999999",
        "/admin/payments/not-an-id",
    ]
    for n, path in enumerate(pages):
        page.goto(example.base + path)
        expect(page.locator("html")).to_have_attribute("lang", language)
        _fits(page, path)
        shot(page, f"phone-{language}-{n:02d}", full_page=True)
    # The navigation fits: every link is on the screen, none cut at its edge.
    page.goto(example.base + "/admin/")
    for link in page.locator("header.top nav a").all():
        box = link.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], (
            link.inner_text()
        )
    # The chart keeps readable day labels: fewer of them, none smaller than 8 px on the screen.
    sizes = page.evaluate(
        "() => [...document.querySelectorAll('svg.chart text.day')]"
        ".filter(t => getComputedStyle(t).display !== 'none').map(t => t.getBoundingClientRect().height)"
    )
    assert sizes and min(sizes) >= 8, sizes
    if language == "en":
        doc_shot(page, "dashboard-phone")
    else:
        shot(page, "dashboard-phone-ru")
        expect(page.locator("body")).not_to_contain_text("Spool")

    # An inverted date range is named, not shown as "nothing here".
    page.goto(example.base + "/admin/payments?date_from=2026-12-05&date_to=2026-12-01")
    expect(page.locator("#inverted-range")).to_be_visible()
    # The 404 page is the dashboard's own, styled, with a way back to the overview.
    page.goto(example.base + "/admin/payments/999999999")
    expect(page.locator("header.top")).to_be_visible()
    page.click("#back")
    expect(page).to_have_url(example.base + "/admin/")
    # Only a destructive confirmation is red: Refund is, Run reconcile is not.
    page.goto(example.base + f"/admin/payments/{payment.id}/refund")
    assert "danger" in (page.locator("#confirm").get_attribute("class") or "")
    page.goto(example.base + "/admin/reconcile/run")
    assert "danger" not in (page.locator("#confirm").get_attribute("class") or "")
    # Sign out: the example passes sign_out=, and the header posts there.
    page.click("#sign-out")
    expect(page.locator("#password")).to_be_visible()
    context.close()


@pytest.mark.parametrize("user", [TEST_USERS[0], IVAN], ids=["en", "ru"])
def test_the_sandbox_page_fits_a_phone(
    browser: Any, example: Any, telegram_web_app_js: str, user: dict[str, Any]
) -> None:
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    page.route(
        TELEGRAM_JS, lambda route: route.fulfill(body=telegram_web_app_js, content_type="text/javascript")
    )
    page.goto(example.base + f"/stars/sandbox/?user={user['id']}")
    expect(page.frame_locator("#miniapp").locator("#balance")).to_have_text("0")
    _fits(page, "the sandbox page")
    shot(page, f"sandbox-phone-{user['language_code']}")
    context.close()
