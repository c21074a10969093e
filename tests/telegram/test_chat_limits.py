"""The chat path (``/buy_stars`` and its buttons) is limited per user like the Mini App."""

from __future__ import annotations

from typing import Any

from flask_stars.sandbox import make_user

INVOICE_METHODS = ("sendInvoice", "createInvoiceLink")


def _invoices_sent(shop: Any) -> int:
    return sum(len(shop.tg.calls_to(method)) for method in INVOICE_METHODS)


def test_chat_button_presses_past_the_invoice_limit_send_no_invoice(shop: Any) -> None:
    """60 presses of a pack button: at most STARS_INVOICE_RATE_LIMIT (20/minute) invoices."""
    for _ in range(60):
        assert shop.tg.press_button(7, "stars:buy:stars_pack_1").status == 200
    assert _invoices_sent(shop) == 20
    # Every press still gets its callback answer; past the limit it says why, and no
    # extra message is sent.
    answers = shop.tg.calls_to("answerCallbackQuery")
    assert len(answers) == 60
    assert all(not a.get("text") for a in answers[:20])
    assert all("Too many purchases" in a["text"] for a in answers[20:])
    assert shop.tg.calls_to("sendMessage") == []
    # Another user is not held back by user 7.
    shop.tg.press_button(8, "stars:buy:stars_pack_2")
    assert _invoices_sent(shop) == 21


def test_chat_and_mini_app_share_one_invoice_limit(make_shop: Any) -> None:
    """The chat spends the same per-user budget as POST /stars/invoice, both ways round."""
    shop = make_shop(STARS_INVOICE_RATE_LIMIT="3/minute")
    for _ in range(3):
        shop.tg.press_button(7, "stars:buy:stars_pack_1")
    limited = shop.invoice(7)
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1

    for _ in range(3):
        assert shop.invoice(9).status_code in (200, 201)
    shop.tg.press_button(9, "stars:buy:stars_pack_1")
    assert len(shop.tg.calls_to("sendInvoice")) == 3  # user 7's three, none for user 9


def test_chat_command_past_the_invoice_limit_answers_in_the_users_language(make_shop: Any) -> None:
    """``/buy_stars PACK`` typed past the limit sends a short line, never an invoice."""
    shop = make_shop(STARS_INVOICE_RATE_LIMIT="2/minute")
    ivan = make_user(11, language_code="ru")
    for _ in range(5):
        shop.tg.send_text(ivan, "/buy_stars stars_pack_1")
    assert _invoices_sent(shop) == 2
    notices = shop.tg.calls_to("sendMessage")
    assert len(notices) == 3
    assert all(n["text"].startswith("Слишком много покупок") for n in notices)


def test_chat_purchase_within_the_limit_still_credits(make_shop: Any) -> None:
    """The limit leaves an ordinary chat purchase alone."""
    shop = make_shop(STARS_INVOICE_RATE_LIMIT="2/minute")
    shop.tg.press_button(7, "stars:buy:stars_pack_1")
    attempt = shop.tg.pay(shop.tg.last_invoice(chat_id=7), 7)
    assert attempt.ok and shop.balance(7) == 1_000_000
