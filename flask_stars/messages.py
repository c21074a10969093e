"""Short texts Telegram shows the buyer, in Russian and English (English is the fallback)."""

from __future__ import annotations

MESSAGES: dict[str, dict[str, str]] = {
    "order_not_found": {
        "en": "This invoice is not valid any more. Please start the purchase again.",
        "ru": "Этот счёт больше недействителен. Начните покупку заново.",
    },
    "pack_unavailable": {
        "en": "This offer is no longer available. Please start the purchase again.",
        "ru": "Это предложение больше недоступно. Начните покупку заново.",
    },
    "order_not_pending": {
        "en": "This order is already paid or closed.",
        "ru": "Этот заказ уже оплачен или закрыт.",
    },
    "order_replaced": {
        "en": "This invoice was replaced by a newer one. Open the shop again to buy.",
        "ru": "Этот счёт заменён новым. Откройте магазин снова, чтобы купить.",
    },
    "order_expired": {
        "en": "This invoice has expired. Please start the purchase again.",
        "ru": "Срок действия счёта истёк. Начните покупку заново.",
    },
    "wrong_currency": {
        "en": "This invoice must be paid in Telegram Stars.",
        "ru": "Этот счёт оплачивается только звёздами Telegram.",
    },
    "wrong_amount": {
        "en": "The amount does not match the order. Please start the purchase again.",
        "ru": "Сумма не совпадает с заказом. Начните покупку заново.",
    },
    "not_owner": {
        "en": "This invoice was made for another user.",
        "ru": "Этот счёт выставлен другому пользователю.",
    },
    "order_held": {
        "en": "This order is already being paid. Try again in a few minutes.",
        "ru": "Этот заказ уже оплачивается. Попробуйте через несколько минут.",
    },
    "try_again": {
        "en": "The shop is busy right now. Please try again in a moment.",
        "ru": "Магазин сейчас занят. Попробуйте ещё раз через минуту.",
    },
    "choose_pack": {
        "en": "Choose a pack to buy with Telegram Stars:",
        "ru": "Выберите пакет для покупки за звёзды Telegram:",
    },
    "unknown_pack": {
        "en": "There is no such pack.",
        "ru": "Такого пакета нет.",
    },
    "rate_limited": {
        "en": "Too many purchases started. Please try again in {seconds} s.",
        "ru": "Слишком много покупок подряд. Попробуйте через {seconds} с.",
    },
    "limit_unavailable": {
        "en": "Purchases are paused for a moment. Please try again in a few minutes.",
        "ru": "Покупки ненадолго приостановлены. Попробуйте через несколько минут.",
    },
    "shop_unavailable": {
        "en": "Payments are unavailable right now. Please try again later.",
        "ru": "Оплата сейчас недоступна. Попробуйте позже.",
    },
    "duplicate_refunded": {
        "en": "This order was already paid, so your second payment of {stars} ⭐ has been refunded.",
        "ru": "Этот заказ уже был оплачен, поэтому второй платёж на {stars} ⭐ возвращён.",
    },
}


def language_of(language_code: str | None) -> str:
    """``"ru"`` for a Russian client, else ``"en"``."""
    return "ru" if (language_code or "").split("-")[0].lower() == "ru" else "en"


def message(key: str, language_code: str | None = None, **values: object) -> str:
    """The text ``key`` in the user's language."""
    text = MESSAGES[key][language_of(language_code)]
    return text.format(**values) if values else text
