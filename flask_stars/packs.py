"""The catalogue: what a user can buy, and the rules Telegram puts on it."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from .errors import StarsConfigError
from .languages import DEFAULT_LANGUAGE, choose, normalize

#: Telegram Stars' currency code: every Stars invoice and payment is in XTR.
XTR = "XTR"
PACK_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_TITLE = 32  # createInvoiceLink: title 1-32 characters
MAX_DESCRIPTION = 255  # createInvoiceLink: description 1-255 characters
MAX_SUBSCRIPTION_STARS = 10_000  # Bot API 9.0: a subscription costs at most 10,000 Stars

#: A text the buyer reads: one string, or a mapping of language tag to string.
Text = str | Mapping[str, str]


@dataclass(frozen=True)
class Pack:
    """One item of the catalogue.

    ``stars`` is the price in whole Telegram Stars (10 Stars is ``10``; XTR has no
    ×100). ``credits`` is what the host app gives for it: flask_stars only passes it on
    to the credit callback.

    ``title`` and ``description`` are one string, or the text in each language
    (``{"en": "Starter pack", "ru": "Стартовый набор"}``): the buyer reads the one of their
    Telegram language, else English, else the first given (``title_in``). Given as a
    mapping, ``title`` is then the English (or first) text and ``titles`` every one.
    """

    #: The pack's id, 1-64 of A-Z, a-z, 0-9, ``_`` and ``-`` (the Mini App asks for it).
    id: str
    #: The price in whole Stars.
    stars: int
    #: The invoice's title, 1-32 characters (in each language, when a mapping is given).
    title: str
    #: What the host gives for it (passed to the credit callback as ``payment.pack.credits``).
    credits: Any = None
    #: The invoice's description, 1-255 characters (the title when None), or a mapping.
    description: str | None = None
    #: A picture shown on the invoice.
    photo_url: str | None = None
    #: A monthly plan (``subscription_period`` of 30 days), renewed until cancelled.
    subscription: bool = False
    #: The title in each language given (normalized tag → text).
    titles: Mapping[str, str] = field(init=False, repr=False, compare=False)
    #: The description in each language given; empty when there is none.
    descriptions: Mapping[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        where = f"STARS_PACKS: pack {self.id!r}"
        if not isinstance(self.id, str) or not PACK_ID_RE.match(self.id):
            raise StarsConfigError(f"{where}: id must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-'")
        if isinstance(self.stars, bool) or not isinstance(self.stars, int) or self.stars <= 0:
            raise StarsConfigError(
                f"{where}: stars must be a positive whole number of Stars "
                f"(10 Stars is 10, never 1000), got {self.stars!r}"
            )
        if not isinstance(self.subscription, bool):  # "false" would sell a monthly plan
            raise StarsConfigError(f"{where}: subscription must be True or False, got {self.subscription!r}")
        if self.subscription and self.stars > MAX_SUBSCRIPTION_STARS:
            raise StarsConfigError(f"{where}: a subscription costs at most {MAX_SUBSCRIPTION_STARS} Stars")
        titles = _texts(f"{where}: title", self.title, MAX_TITLE)
        descriptions = (
            {}
            if self.description is None
            else _texts(f"{where}: description", self.description, MAX_DESCRIPTION)
        )
        # Frozen: the checked forms are set once, here. ``title`` and ``description`` become
        # the English (or first) text, which the ledger records and compares.
        object.__setattr__(self, "titles", titles)
        object.__setattr__(self, "descriptions", descriptions)
        object.__setattr__(self, "title", choose(titles, DEFAULT_LANGUAGE))
        if descriptions:
            object.__setattr__(self, "description", choose(descriptions, DEFAULT_LANGUAGE))

    def title_in(self, language: str | None) -> str:
        """The title a buyer of ``language`` reads (their tag, its language, English, the first).

        :param language: the buyer's Telegram ``language_code``, or None.
        """
        return choose(self.titles, language)

    def description_in(self, language: str | None) -> str:
        """The invoice's description a buyer of ``language`` reads (the title when none is given).

        :param language: the buyer's Telegram ``language_code``, or None.
        """
        return choose(self.descriptions, language) if self.descriptions else self.title_in(language)

    @property
    def invoice_description(self) -> str:
        """The description shown on the invoice: the pack's own, or its title."""
        return self.description or self.title

    @classmethod
    def from_config(cls, item: Pack | Mapping[str, Any]) -> Pack:
        """Turn one ``STARS_PACKS`` entry (a dict or a ``Pack``) into a ``Pack``."""
        if isinstance(item, Pack):
            return item
        if not isinstance(item, Mapping):
            raise StarsConfigError(f"STARS_PACKS: each pack must be a dict or a Pack, got {item!r}")
        known = {f.name for f in fields(cls) if f.init}
        unknown = set(item) - known
        if unknown:
            raise StarsConfigError(f"STARS_PACKS: pack {item.get('id')!r} has unknown keys {sorted(unknown)}")
        missing = {"id", "stars", "title"} - set(item)
        if missing:
            raise StarsConfigError(f"STARS_PACKS: pack {item.get('id')!r} lacks {sorted(missing)}")
        return cls(**item)


def _texts(what: str, given: Any, limit: int) -> dict[str, str]:
    """``given`` (a string, or language tag → string) checked against Telegram's 1-``limit``
    characters in every language, as normalized tag → text."""
    if isinstance(given, str):
        if not 1 <= len(given) <= limit:
            raise StarsConfigError(f"{what} must be 1-{limit} characters")
        return {DEFAULT_LANGUAGE: given}
    if not isinstance(given, Mapping) or not given:
        raise StarsConfigError(f"{what} must be 1-{limit} characters, or a mapping of language to such text")
    texts: dict[str, str] = {}
    for tag, text in given.items():
        if not isinstance(tag, str) or not tag.strip():
            raise StarsConfigError(f"{what}: {tag!r} is not a language tag")
        if not isinstance(text, str) or not 1 <= len(text) <= limit:
            raise StarsConfigError(f"{what} in {tag!r} must be 1-{limit} characters")
        texts[normalize(tag)] = text
    return texts


class Catalogue(Mapping[str, Pack]):
    """The packs by id, in the order the config lists them."""

    def __init__(self, items: Iterable[Pack | Mapping[str, Any]] | None) -> None:
        if not items:
            raise StarsConfigError(
                "STARS_PACKS is empty: list at least one pack, e.g. "
                '[{"id": "stars_pack_1", "stars": 10, "title": "Starter pack", "credits": 100}]'
            )
        if isinstance(items, (str, bytes, Mapping)):
            raise StarsConfigError("STARS_PACKS must be a list of packs")
        self._packs: dict[str, Pack] = {}
        for item in items:
            pack = Pack.from_config(item)
            if pack.id in self._packs:
                raise StarsConfigError(f"STARS_PACKS: duplicate pack id {pack.id!r}")
            self._packs[pack.id] = pack

    def __getitem__(self, pack_id: str) -> Pack:
        return self._packs[pack_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._packs)

    def __len__(self) -> int:
        return len(self._packs)
