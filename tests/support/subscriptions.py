"""A monthly plan in the catalogue, and buying it through the sandbox."""

from __future__ import annotations

from typing import Any

from flask_stars.sandbox import PaymentAttempt

MONTHLY = {
    "id": "monthly",
    "stars": 250,
    "title": "Monthly coins",
    "credits": 3_000_000,
    "subscription": True,
}


def subscribe(shop: Any, user: int = 42) -> tuple[dict[str, Any], PaymentAttempt]:
    """Buy ``MONTHLY`` as ``user`` in the Mini App and pay it in the sandbox; (order, payment)."""
    order = shop.invoice(user, "monthly").json()
    call = shop.tg.calls_to("createInvoiceLink")[-1]
    assert call["subscription_period"] == "2592000"
    attempt = shop.tg.pay(order["invoice_url"], user)
    assert attempt.ok and attempt.payment.body["detail"] == "credited"
    return order, attempt
