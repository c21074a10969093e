"""The operator's dashboard in headless Chromium: a purchase made on the sandbox page shows
on the overview chart and in the payments list, and Refund (with its confirmation page)
gives the Mini App's balance back. The example app mounts the dashboard at /admin behind
its sandbox-only login. With STARS_DOC_SCREENSHOTS=1, screenshots of the overview and of a
payment go to docs/images/ (the README's).
"""

from __future__ import annotations

from playwright.sync_api import expect

from flask_stars.sandbox import TEST_USERS
from tests.browser.conftest import buy_premium_on_sandbox_page, doc_shot, shot

ANN = TEST_USERS[0]


def test_purchase_shows_on_the_dashboard_and_its_refund_gives_the_balance_back(
    page, example, telegram_web_app_js
):
    buy_premium_on_sandbox_page(page, example, telegram_web_app_js)
    (payment,) = example.payments()

    # The sandbox page links to the dashboard; the dashboard sends us to the app's login.
    expect(page.locator("#dashboard-link")).to_have_attribute("href", "/admin/")
    page.goto(example.base + "/admin/")
    expect(page.locator("h1")).to_have_text("Operator sign-in")
    page.fill("#password", "wrong")
    page.click("#sign-in")
    expect(page.locator("[role=alert]")).to_have_text("Wrong password.")
    page.fill("#password", example.app.config["ADMIN_PASSWORD"])
    page.click("#sign-in")

    # The overview: the purchase is a bar of the chart and a row of its table.
    page.set_viewport_size({"width": 1100, "height": 900})
    expect(page.locator("#received")).to_have_text("40 ⭐")
    expect(page.locator("svg.chart rect[data-pack=stars_pack_2]")).to_have_count(1)
    expect(page.locator("#conversion")).to_have_text("1 / 1")
    expect(page.locator("#warn-reconcile")).to_contain_text("never run successfully")
    page.locator("#chart-table-box summary").click()
    expect(page.locator("#chart-table tbody")).to_contain_text("40")
    doc_shot(page, "dashboard-overview")

    # The payments list, then the payment itself.
    page.click("text=Payments")
    row = page.locator(f"#payments tr[data-charge='{payment.telegram_payment_charge_id}']")
    expect(row).to_contain_text("paid")
    row.locator("a").first.click()
    expect(page.locator("#charge")).to_have_text(payment.telegram_payment_charge_id)
    expect(page.locator("#status")).to_have_text("paid")
    doc_shot(page, "dashboard-payment")

    # Refund: a confirmation page, then the POST with its CSRF token.
    page.click("#refund")
    expect(page.locator("h1")).to_have_text("Refund this payment?")
    assert example.balance(ANN["id"]) == 5_000_000  # nothing happened on the way
    page.click("#confirm")
    expect(page.locator("#done")).to_be_visible()
    expect(page.locator("#status")).to_have_text("refunded")
    expect(page.locator("#refund")).to_have_count(0)
    shot(page, "dashboard-refunded")
    assert example.balance(ANN["id"]) == 0
    assert [p.status for p in example.payments()] == ["refunded"]

    # The Mini App shows the balance back at 0.
    page.goto(example.base + "/stars/sandbox/")
    expect(page.frame_locator("#miniapp").locator("#balance")).to_have_text("0")
    assert len(example.tg.calls_to("refundStarPayment")) == 1
