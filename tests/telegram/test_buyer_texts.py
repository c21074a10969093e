"""flask_stars' buyer texts in Telegram's big languages: gettext catalogues that miss no
message and no placeholder, compiled catalogues that match their sources, a buyer who reads
their own language (English when it is not shipped), and a host's own catalogue read first."""

from __future__ import annotations

import gettext
import re
from pathlib import Path
from typing import Any

import pytest
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from flask_stars.messages import DOMAIN, LANGUAGES, LOCALE_DIR, MESSAGES, message
from flask_stars.testing import make_user

PLACEHOLDER = re.compile(r"\{(\w*)\}")
#: Telegram's big languages, as the issue names them: each must ship.
REQUIRED = {"en", "ru", "uk", "es", "pt_BR", "id", "tr", "de"}


def _po(language: str) -> Catalog:
    with (LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po").open("rb") as f:
        return read_po(f, locale=language)


def test_the_big_languages_ship() -> None:
    assert REQUIRED - {"en"} <= set(LANGUAGES)
    assert {p.parent.parent.name for p in LOCALE_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.po")} == set(LANGUAGES)


def test_the_template_holds_every_message_and_nothing_else() -> None:
    with (LOCALE_DIR / f"{DOMAIN}.pot").open("rb") as f:
        template = read_po(f)
    assert {m.id for m in template if m.id} == set(MESSAGES.values())


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_catalogue_misses_no_message_and_no_placeholder(language: str) -> None:
    catalogue = _po(language)
    translated = {m.id: m for m in catalogue if m.id}
    assert set(translated) == set(MESSAGES.values()), "messages missing or left over"
    for english, entry in translated.items():
        assert entry.string and not entry.fuzzy, f"{language}: {english!r} is not translated"
        assert sorted(PLACEHOLDER.findall(entry.string)) == sorted(PLACEHOLDER.findall(english)), (
            f"{language}: {entry.string!r} does not keep the placeholders of {english!r}"
        )


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_compiled_catalogue_is_its_source(language: str) -> None:
    """``pybabel compile -d flask_stars/locale -D flask_stars`` after editing a .po."""
    mo = LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.mo"
    with mo.open("rb") as f:
        compiled = gettext.GNUTranslations(f)
    for entry in _po(language):
        if entry.id:
            assert compiled.gettext(entry.id) == entry.string, f"{mo} is older than its .po"


def test_the_messages_in_each_language() -> None:
    assert message("rate_limited", "ru", seconds=5) == "Слишком много покупок подряд. Попробуйте через 5 с."
    assert (
        message("rate_limited", "de", seconds=5)
        == "Zu viele Käufe hintereinander. Versuche es in 5 s erneut."
    )
    assert message("rate_limited", "pt-br", seconds=5).startswith("Muitas compras seguidas")
    assert message("rate_limited", "uk-UA", seconds=5).startswith("Забагато покупок")
    for unknown in (None, "", "ja", "xx-YY"):
        assert (
            message("rate_limited", unknown, seconds=5)
            == "Too many purchases started. Please try again in 5 s."
        )


def _host_catalogue(folder: Path, language: str, texts: dict[str, str]) -> None:
    catalogue = Catalog(locale=language, domain=DOMAIN)
    for english, translated in texts.items():
        catalogue.add(english, translated)
    out = folder / language / "LC_MESSAGES"
    out.mkdir(parents=True)
    with (out / f"{DOMAIN}.mo").open("wb") as f:
        write_mo(f, catalogue)


def test_a_host_adds_a_language_and_overrides_one_text(make_shop: Any, tmp_path: Path) -> None:
    _host_catalogue(
        tmp_path, "fr", {MESSAGES["choose_pack"]: "Choisissez un pack à acheter en Telegram Stars :"}
    )
    _host_catalogue(tmp_path, "ru", {MESSAGES["choose_pack"]: "Что купим?"})
    shop = make_shop(STARS_TRANSLATIONS_DIR=str(tmp_path))
    for user, language, text in (
        (21, "fr", "Choisissez un pack à acheter en Telegram Stars :"),
        (22, "ru", "Что купим?"),
        (23, "de", "Wähle ein Paket, das du mit Telegram Stars kaufen möchtest:"),
        (24, "ja", "Choose a pack to buy with Telegram Stars:"),
    ):
        shop.tg.send_text(make_user(user, language_code=language), "/buy_stars")
        assert shop.tg.calls_to("sendMessage")[-1]["text"] == text
    # Texts the host's Russian catalogue does not hold stay flask_stars' own.
    shop.tg.send_text(make_user(22, language_code="ru"), "/buy_stars no_such_pack")
    assert shop.tg.calls_to("sendMessage")[-1]["text"] == "Такого пакета нет."


def test_a_refusal_at_pre_checkout_reads_in_the_buyers_language(shop: Any) -> None:
    order = shop.invoice(42).json()
    attempt = shop.tg.pay(order["invoice_url"], make_user(77, language_code="tr"))
    assert not attempt.ok
    assert attempt.error_message == "Bu fatura başka bir kullanıcı için oluşturuldu."


@pytest.mark.parametrize("tag", ["../../etc", "ru/../de", "de\x00", "x" * 300, "ru_RU.UTF-8"])
def test_a_tag_that_is_no_language_reads_english_and_names_no_folder(tag: str) -> None:
    """The buyer's tag picks catalogue folders: one that is not a language tag is ignored."""
    assert message("unknown_pack", tag) == "There is no such pack."
