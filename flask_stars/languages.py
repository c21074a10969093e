"""Which of several texts a buyer reads: Telegram's ``language_code`` matched to what is given.

Telegram sends the buyer's language as an IETF tag (``"ru"``, ``"pt-br"``, ``"en-US"``):
initData's ``user.language_code`` in the Mini App, ``from.language_code`` in the chat. A
text given in several languages is a mapping of such tags to text. The buyer's own tag
wins, then its language alone (``pt`` for ``pt-br``), then English, then the first given.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

__all__ = ["DEFAULT_LANGUAGE", "choose", "normalize"]

#: The language a text falls back to when the buyer's is not given.
DEFAULT_LANGUAGE = "en"
#: What a language tag may look like (``ru``, ``pt-br``, ``zh-hans``): anything else is no
#: language, never a path or a catalogue name (the tag picks gettext catalogues by folder).
TAG_RE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8}){0,2}$")


def normalize(tag: str) -> str:
    """``tag`` as the keys are compared: lower case, ``-`` between parts (``pt_BR`` → ``pt-br``).

    :param tag: a language tag as Telegram, a browser or a catalogue spells it.
    """
    return tag.strip().replace("_", "-").lower()


def candidates(language: str | None) -> Iterable[str]:
    """The tags to look for, best first, for a buyer of ``language`` (None: unknown).

    :param language: the buyer's tag, or None.
    """
    tag = normalize(language) if language else ""
    if TAG_RE.match(tag):
        yield tag
        base = tag.split("-", 1)[0]
        if base != tag:
            yield base
    yield DEFAULT_LANGUAGE


def choose(texts: Mapping[str, str], language: str | None) -> str:
    """The text of ``texts`` (normalized tag → text, at least one) for ``language``.

    :param texts: the text in each language given, keyed by ``normalize``'d tags.
    :param language: the buyer's tag, or None.
    """
    for tag in candidates(language):
        if tag in texts:
            return texts[tag]
    return next(iter(texts.values()))
