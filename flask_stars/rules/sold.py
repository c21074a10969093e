"""What an order sells.

In words: an order made since revision ``stars_0003`` sells what it recorded when it was
made (``Order.sold_pack``), whatever the catalogue says now. An older order, which recorded
nothing, sells the catalogue's pack of its ``pack_id`` only while that pack costs what the
order costs; otherwise it sells nothing (``pack_unavailable``).

``clause`` is the SQL form of "sells something", ``pack_of`` the Python form (the pack itself).
"""

from __future__ import annotations

from collections.abc import Mapping

import sqlalchemy as sa

from ..models import Order
from ..packs import Pack

#: A catalogue as the SQL forms take it: ``(pack id, Stars)`` pairs, hashable, so that a
#: statement can be built once per catalogue and cached.
Prices = tuple[tuple[str, int], ...]


def prices(packs: Mapping[str, Pack]) -> Prices:
    """``packs`` (the catalogue, by pack id) as the SQL forms take it."""
    return tuple((pack_id, pack.stars) for pack_id, pack in packs.items())


def clause(prices: Prices) -> sa.ColumnElement[bool]:
    """SQL: the order sells something (``pack_of(order, packs) is not None``)."""
    recorded = Order.pack_title.is_not(None)
    in_catalogue_at_its_price = (
        sa.and_(Order.pack_id == pack_id, Order.stars == stars) for pack_id, stars in prices
    )
    return sa.or_(recorded, *in_catalogue_at_its_price)


def pack_of(order: Order, packs: Mapping[str, Pack]) -> Pack | None:
    """Python: what ``order`` sells, or None when it sells nothing."""
    recorded = order.sold_pack
    if recorded is not None:
        return recorded
    current = packs.get(order.pack_id)
    in_catalogue_at_its_price = current is not None and current.stars == order.stars
    return current if in_catalogue_at_its_price else None
