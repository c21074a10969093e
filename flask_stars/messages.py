"""Short texts Telegram shows the buyer, in the buyer's language.

The English texts below are the message ids of gettext catalogues: ``flask_stars/locale/<lang>/
LC_MESSAGES/flask_stars.po`` (the translations, edited by hand or in any PO editor) and their
compiled ``.mo`` files, which ship in the wheel and are read with the standard library's
``gettext``. Babel is the development tool that extracts and compiles them (``pybabel extract
-k N_ -o flask_stars/locale/flask_stars.pot flask_stars/messages.py``, then ``pybabel update``
and ``pybabel compile -d flask_stars/locale -D flask_stars``); it is not needed at run time.
A host adds or overrides a language with catalogues of its own in ``STARS_TRANSLATIONS_DIR``
(the same layout, domain ``flask_stars``), looked at first.
"""

from __future__ import annotations

import functools
import gettext
from collections.abc import Mapping
from pathlib import Path

from .languages import candidates

__all__ = ["DOMAIN", "LANGUAGES", "LOCALE_DIR", "MESSAGES", "language_of", "message", "translation"]

#: The gettext domain of flask_stars' catalogues.
DOMAIN = "flask_stars"
#: Where the shipped catalogues are.
LOCALE_DIR = Path(__file__).parent / "locale"
#: The languages flask_stars ships besides English (its catalogues' folder names).
LANGUAGES = ("de", "es", "id", "pt_BR", "ru", "tr", "uk")


def N_(text: str) -> str:
    """Mark ``text`` for ``pybabel extract`` without translating it here.

    :param text: an English message id.
    """
    return text


#: Each message's English text (its gettext id), by the key the code uses.
MESSAGES: Mapping[str, str] = {
    "order_not_found": N_("This invoice is not valid any more. Please start the purchase again."),
    "pack_unavailable": N_("This offer is no longer available. Please start the purchase again."),
    "order_not_pending": N_("This order is already paid or closed."),
    "order_replaced": N_("This invoice was replaced by a newer one. Open the shop again to buy."),
    "order_expired": N_("This invoice has expired. Please start the purchase again."),
    "wrong_currency": N_("This invoice must be paid in Telegram Stars."),
    "wrong_amount": N_("The amount does not match the order. Please start the purchase again."),
    "not_owner": N_("This invoice was made for another user."),
    "order_held": N_("This order is already being paid. Try again in a few minutes."),
    "try_again": N_("The shop is busy right now. Please try again in a moment."),
    "choose_pack": N_("Choose a pack to buy with Telegram Stars:"),
    "unknown_pack": N_("There is no such pack."),
    "rate_limited": N_("Too many purchases started. Please try again in {seconds} s."),
    "limit_unavailable": N_("Purchases are paused for a moment. Please try again in a few minutes."),
    "shop_unavailable": N_("Payments are unavailable right now. Please try again later."),
    "duplicate_refunded": N_(
        "This order was already paid, so your second payment of {stars} ⭐ has been refunded."
    ),
}


@functools.lru_cache(maxsize=64)
def translation(language_code: str | None, extra_dir: str | None = None) -> gettext.NullTranslations:
    """The catalogue for a buyer of ``language_code``: the host's (``extra_dir``) first, then
    flask_stars', each tried for the buyer's tag and then its language; English when none.

    :param language_code: Telegram's ``language_code`` (``"pt-br"``), or None.
    :param extra_dir: the host's catalogue folder (``STARS_TRANSLATIONS_DIR``), or None.
    """
    tags = [tag for tag in candidates(language_code) if tag != "en"]
    names: list[str] = []
    for tag in tags:
        language, _, region = tag.partition("-")
        names += [f"{language}_{region.upper()}", language] if region else [language]
    found: gettext.NullTranslations = gettext.NullTranslations()
    for folder in (extra_dir, str(LOCALE_DIR)):
        if folder is None:
            continue
        catalogue = gettext.translation(DOMAIN, folder, languages=names, fallback=True)
        if type(catalogue) is not gettext.NullTranslations:
            if type(found) is gettext.NullTranslations:
                found = catalogue
            else:
                found.add_fallback(catalogue)
    return found


def message(
    key: str, language_code: str | None = None, extra_dir: str | None = None, **values: object
) -> str:
    """The text ``key`` of ``MESSAGES`` in the buyer's language, its ``{placeholders}`` filled.

    :param key: a key of ``MESSAGES``.
    :param language_code: the buyer's Telegram ``language_code``; None: English.
    :param extra_dir: the host's catalogue folder, looked at first.
    :param values: the placeholders' values (``seconds=``, ``stars=``).
    """
    text = translation(language_code, extra_dir).gettext(MESSAGES[key])
    return text.format(**values) if values else text


def language_of(language_code: str | None) -> str:
    """``"ru"`` for a Russian client, else ``"en"``: the dashboard's two languages.

    :param language_code: a language tag, or None.
    """
    return "ru" if (language_code or "").split("-")[0].lower() == "ru" else "en"
