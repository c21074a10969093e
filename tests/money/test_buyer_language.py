"""A catalogue in the buyer's language: a pack's title and description given per language
reach the invoice (``createInvoiceLink``, ``sendInvoice``), the chat's buttons and ``GET
/stars/packs`` in the buyer's Telegram language, else English, else the first given."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask

from flask_stars import Order, Pack, StarsConfigError, stars_bp
from flask_stars.testing import make_user
from tests.support import hostapp

STARTER = {
    "id": "stars_pack_1",
    "stars": 10,
    "title": {"en": "Starter pack", "ru": "Стартовый набор", "de": "Startpaket"},
    "description": {"en": "A million coins", "ru": "Миллион монет", "de": "Eine Million Münzen"},
    "credits": 1_000_000,
}
#: No English: a buyer of another language reads the first given.
PREMIUM = {
    "id": "stars_pack_2",
    "stars": 40,
    "title": {"ru": "Премиум", "uk": "Преміум"},
    "credits": 5_000_000,
}


@pytest.fixture
def shop(make_shop: Any) -> Any:
    return make_shop(STARS_PACKS=[STARTER, PREMIUM])


def _link_call(shop: Any, user: int, language: str | None, pack_id: str = "stars_pack_1") -> dict[str, Any]:
    user_obj = make_user(user, language_code=language) if language else make_user(user)
    response = shop.http.post(shop.url("/invoice"), json={"pack_id": pack_id}, headers=shop.auth(user_obj))
    assert response.status_code == 201, response.text
    call: dict[str, Any] = shop.tg.calls_to("createInvoiceLink")[-1]
    assert response.json()["pack"]["title"] == call["title"]  # the Mini App shows what the invoice says
    return call


@pytest.mark.parametrize(
    ("language", "title", "description"),
    [
        ("ru", "Стартовый набор", "Миллион монет"),
        ("de", "Startpaket", "Eine Million Münzen"),
        ("de-AT", "Startpaket", "Eine Million Münzen"),
        ("en", "Starter pack", "A million coins"),
        ("ja", "Starter pack", "A million coins"),
        (None, "Starter pack", "A million coins"),
    ],
)
def test_the_invoice_link_is_in_the_buyers_language(
    shop: Any, language: str | None, title: str, description: str
) -> None:
    call = _link_call(shop, 42, language)
    assert (call["title"], call["description"]) == (title, description)
    assert json.loads(call["prices"]) == [{"label": title, "amount": 10}]


def test_with_no_english_another_buyer_reads_the_first_given(shop: Any) -> None:
    assert _link_call(shop, 42, "uk", "stars_pack_2")["title"] == "Преміум"
    assert _link_call(shop, 43, "es", "stars_pack_2")["title"] == "Премиум"


def test_the_pack_list_follows_init_data_then_accept_language(shop: Any) -> None:
    def titles(**headers: str) -> list[str]:
        response = shop.http.get(shop.url("/packs"), headers=headers)
        assert response.status_code == 200
        return [p["title"] for p in response.json()["packs"]]

    russian = shop.auth(make_user(42, language_code="ru"))
    assert titles(**russian) == ["Стартовый набор", "Премиум"]
    assert titles(**{"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"}) == ["Startpaket", "Премиум"]
    # initData wins over the browser's languages: Telegram knows the buyer's.
    assert titles(**russian, **{"Accept-Language": "de"}) == ["Стартовый набор", "Премиум"]
    assert titles() == ["Starter pack", "Премиум"]
    # A stale or forged initData still gets the public catalogue, by Accept-Language.
    assert titles(Authorization="tma hash=forged", **{"Accept-Language": "ru"})[0] == "Стартовый набор"


def test_the_chat_offers_and_invoices_in_the_buyers_language(shop: Any) -> None:
    ivan = make_user(11, language_code="ru")
    shop.tg.send_text(ivan, "/buy_stars")
    offer = shop.tg.calls_to("sendMessage")[-1]
    buttons = [row[0]["text"] for row in json.loads(offer["reply_markup"])["inline_keyboard"]]
    assert buttons == ["Стартовый набор — 10 ⭐", "Премиум — 40 ⭐"]
    shop.tg.press_button(ivan, "stars:buy:stars_pack_1")
    invoice = shop.tg.calls_to("sendInvoice")[-1]
    assert (invoice["title"], invoice["description"]) == ("Стартовый набор", "Миллион монет")
    attempt = shop.tg.pay(shop.tg.last_invoice(chat_id=11), ivan)
    assert attempt.ok and shop.balance(11) == 1_000_000


def test_the_ledger_records_the_english_title(shop: Any) -> None:
    _link_call(shop, 42, "ru")
    (order,) = shop.rows(Order)
    assert order.pack_title == "Starter pack"


@pytest.mark.parametrize(
    ("title", "words"),
    [
        ({"en": "Starter pack", "ru": "Стартовый набор, самый выгодный вариант"}, "'ru' must be 1-32"),
        ({"en": "Starter pack", "de": ""}, "'de' must be 1-32"),
        ({}, "title must be 1-32"),
        ({"en": 5}, "'en' must be 1-32"),
        ({"": "Starter"}, "is not a language tag"),
    ],
)
def test_every_languages_text_is_checked_at_start_up(title: Any, words: str) -> None:
    app: Flask = hostapp.bare_app(STARS_PACKS=[{"id": "p", "stars": 1, "title": title}])
    with pytest.raises(StarsConfigError, match=words):
        app.register_blueprint(stars_bp)


def test_a_long_description_in_one_language_fails_at_start_up() -> None:
    with pytest.raises(StarsConfigError, match="description in 'ru' must be 1-255"):
        Pack(id="p", stars=1, title="T", description={"en": "D", "ru": "Д" * 256})  # type: ignore[arg-type]
