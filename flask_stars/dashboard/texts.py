"""The dashboard's texts in English and Russian, and how the page's language is chosen.

The language is picked the project's way (``messages.language_of``): from the host's
choice when it gave one (``language=`` at registration: a code or a callable returning
one), else from the browser's ``Accept-Language``; anything but Russian reads English.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import request

from ..messages import language_of

LanguageChoice = str | Callable[[], str | None] | None

TEXTS: dict[str, dict[str, str]] = {
    "title": {"en": "Stars dashboard", "ru": "Панель звёзд"},
    "overview": {"en": "Overview", "ru": "Обзор"},
    "payments": {"en": "Payments", "ru": "Платежи"},
    "failed_updates": {"en": "Failed updates", "ru": "Сбойные обновления"},
    "subscriptions": {"en": "Subscriptions", "ru": "Подписки"},
    "last_days": {"en": "Last {days} days", "ru": "Последние {days} дн."},
    "received": {"en": "Stars received", "ru": "Получено звёзд"},
    "refunded": {"en": "Refunded", "ru": "Возвращено"},
    "net": {"en": "Net", "ru": "Итого"},
    "payments_count": {"en": "Payments", "ru": "Платежей"},
    "chart_title": {
        "en": "Stars received per day, by pack, with refunds and the net",
        "ru": "Звёзды по дням и пакетам, возвраты и итог",
    },
    "chart_note": {
        "en": "Bars: Stars paid that day, one pattern per pack; below the line: Stars of that "
        "day's payments refunded since; dots: the net. The table below has every figure.",
        "ru": "Столбцы: звёзды за день, у каждого пакета свой узор; ниже линии: возвраты платежей "
        "этого дня; точки: итог. В таблице ниже все числа.",
    },
    "chart_table": {"en": "The chart as a table", "ru": "График в виде таблицы"},
    "day": {"en": "Day", "ru": "День"},
    "pack": {"en": "Pack", "ru": "Пакет"},
    "no_order": {"en": "(no order)", "ru": "(без заказа)"},
    "invoices": {"en": "Invoices", "ru": "Счета"},
    "opened": {"en": "opened", "ru": "выставлено"},
    "paid": {"en": "paid", "ru": "оплачено"},
    "conversion": {"en": "conversion", "ru": "конверсия"},
    "active_subscriptions": {"en": "Active subscriptions", "ru": "Активные подписки"},
    "renewals_due": {"en": "renewals due in 7 days", "ru": "продлений за 7 дней"},
    "health": {"en": "Health", "ru": "Состояние"},
    "all_well": {
        "en": "No failed updates, the spool is empty, no payments to refund.",
        "ru": "Сбойных обновлений нет, спул пуст, возвратов нет.",
    },
    "warn_failed": {
        "en": "{count} payment update(s) failed and are not processed: replay them.",
        "ru": "Не обработано обновлений о платежах: {count}. Повторите их.",
    },
    "warn_spool": {
        "en": "{count} update(s) wait in the spool (the database could not take them): replay them.",
        "ru": "В спуле ждут обновления ({count}): база не смогла их принять. Повторите их.",
    },
    "warn_due": {
        "en": "{count} second payment(s) for a paid order still to refund (flask stars refund --due).",
        "ru": "Повторные платежи к оплаченным заказам ещё не возвращены: {count} (flask stars refund --due).",
    },
    "reconcile_never": {
        "en": "Reconcile has never run successfully here (no run recorded): run flask stars "
        "reconcile daily, or Run now.",
        "ru": "Сверка здесь ещё ни разу не прошла успешно (запусков не записано): запускайте "
        "flask stars reconcile ежедневно или нажмите «Запустить сейчас».",
    },
    "reconcile_stale": {
        "en": "Reconcile has not run for a day: the last successful run finished {when} UTC.",
        "ru": "Сверка не запускалась больше суток: последний успешный запуск завершён {when} UTC.",
    },
    "reconcile_last_failed": {
        "en": "The last reconcile run failed ({when} UTC): {error}",
        "ru": "Последний запуск сверки завершился ошибкой ({when} UTC): {error}",
    },
    "reconcile_ok": {
        "en": "Reconcile ran {when} UTC.",
        "ru": "Сверка прошла {when} UTC.",
    },
    "reconcile": {"en": "Reconcile", "ru": "Сверка"},
    "reconcile_runs": {"en": "Reconcile runs", "ru": "Запуски сверки"},
    "reconcile_page_note": {
        "en": "Every run of flask stars reconcile, FlaskStars.reconcile() or Run now (dry runs "
        "aside) is recorded here; the newest 100 are kept. Read so far: {offset} transaction(s).",
        "ru": "Здесь записан каждый запуск flask stars reconcile, FlaskStars.reconcile() или "
        "«Запустить сейчас» (кроме пробных); хранятся последние 100. Прочитано транзакций: {offset}.",
    },
    "run_now": {"en": "Run now…", "ru": "Запустить сейчас…"},
    "reconcile_title": {"en": "Run reconcile now?", "ru": "Запустить сверку сейчас?"},
    "reconcile_explain": {
        "en": "It reads the bot's Stars transactions from Telegram (getStarTransactions) from where "
        "the last run stopped, as flask stars reconcile does: a payment whose webhook never arrived "
        "is recorded and credited once, a refund the ledger missed is applied (your debit callback "
        "once), due refunds of second payments are finished; anything else is only reported. "
        "The run is recorded below. With many new transactions it may take a while.",
        "ru": "Она читает транзакции звёзд бота в Telegram (getStarTransactions) с места, где "
        "остановился прошлый запуск, как flask stars reconcile: платёж, чей вебхук не дошёл, "
        "записывается и зачисляется один раз, пропущенный возврат применяется (обратный вызов "
        "списания один раз), незавершённые возвраты повторных платежей завершаются; остальное только "
        "попадает в отчёт. Запуск записывается ниже. При большом числе транзакций это может занять время.",
    },
    "confirm_reconcile": {"en": "Yes, run reconcile", "ru": "Да, запустить сверку"},
    "reconcile_done": {
        "en": "Reconcile ran: it is the first row below.",
        "ru": "Сверка выполнена: это первая строка ниже.",
    },
    "reconcile_failed": {
        "en": "Reconcile failed: {why}. The run is recorded with its error.",
        "ru": "Сверка не удалась: {why}. Запуск записан вместе с ошибкой.",
    },
    "started_at": {"en": "Started (UTC)", "ru": "Начало (UTC)"},
    "took": {"en": "Took", "ru": "Заняло"},
    "result": {"en": "Result", "ru": "Итог"},
    "run_ok": {"en": "ok", "ru": "успешно"},
    "run_failed": {"en": "failed", "ru": "ошибка"},
    "run_unfinished": {"en": "running or interrupted", "ru": "идёт или прерван"},
    "no_runs": {"en": "No run recorded yet.", "ru": "Запусков ещё не записано."},
    "tx_read": {"en": "Read", "ru": "Прочитано"},
    "tx_known": {"en": "Already in the ledger", "ru": "Уже в журнале"},
    "tx_credited": {"en": "Missed payments credited", "ru": "Зачислено пропущенных"},
    "tx_not_credited": {"en": "Recorded, not credited", "ru": "Записано без зачисления"},
    "tx_refunds": {"en": "Missed refunds applied", "ru": "Применено возвратов"},
    "tx_refunds_kept": {"en": "Refunds kept for unseen payments", "ru": "Отложено возвратов"},
    "tx_due": {"en": "Due refunds finished", "ru": "Завершено возвратов"},
    "tx_unmatched": {"en": "Unmatched", "ru": "Не сопоставлено"},
    "filters": {"en": "Filters", "ru": "Фильтры"},
    "user": {"en": "User", "ru": "Пользователь"},
    "status": {"en": "Status", "ru": "Статус"},
    "any": {"en": "any", "ru": "любой"},
    "date_from": {"en": "From", "ru": "С"},
    "date_to": {"en": "To", "ru": "По"},
    "charge_id": {"en": "Charge id", "ru": "Id платежа"},
    "apply": {"en": "Apply", "ru": "Применить"},
    "reset": {"en": "Reset", "ru": "Сбросить"},
    "export_csv": {"en": "Export CSV", "ru": "Выгрузить CSV"},
    "newer": {"en": "← Newer", "ru": "← Новее"},
    "older": {"en": "Older →", "ru": "Старее →"},
    "newest": {"en": "Newest", "ru": "Самые новые"},
    "nothing": {"en": "Nothing here.", "ru": "Здесь ничего нет."},
    "stars": {"en": "Stars", "ru": "Звёзды"},
    "credited": {"en": "Credited", "ru": "Зачислено"},
    "problem": {"en": "Problem", "ru": "Проблема"},
    "paid_at": {"en": "Paid at", "ru": "Оплачен"},
    "refunded_at": {"en": "Refunded at", "ru": "Возвращён"},
    "payer": {"en": "Payer", "ru": "Плательщик"},
    "yes": {"en": "yes", "ru": "да"},
    "no": {"en": "no", "ru": "нет"},
    "payment": {"en": "Payment", "ru": "Платёж"},
    "order": {"en": "Order", "ru": "Заказ"},
    "created_at": {"en": "Created at", "ru": "Создан"},
    "raw_updates": {"en": "Raw updates behind it", "ru": "Исходные обновления"},
    "raw_note": {
        "en": "stars_updates rows with this payment's update_id",
        "ru": "строки stars_updates с update_id этого платежа",
    },
    "no_raw": {
        "en": "No logged update (found by reconcile, or the log was pruned).",
        "ru": "Нет записанного обновления (найден сверкой или журнал очищен).",
    },
    "received_at": {"en": "Received", "ru": "Получено"},
    "kind": {"en": "Kind", "ru": "Вид"},
    "processed": {"en": "Processed", "ru": "Обработано"},
    "attempts": {"en": "Attempts", "ru": "Попыток"},
    "error": {"en": "Error", "ru": "Ошибка"},
    "refund": {"en": "Refund…", "ru": "Вернуть…"},
    "refund_title": {"en": "Refund this payment?", "ru": "Вернуть этот платёж?"},
    "refund_explain": {
        "en": "Telegram gives {stars} ⭐ back to user {payer} (refundStarPayment), then the ledger "
        "marks the payment refunded and your debit callback runs once. This cannot be undone.",
        "ru": "Telegram вернёт {stars} ⭐ пользователю {payer} (refundStarPayment), затем платёж "
        "помечается возвращённым и ваш обратный вызов списания выполняется один раз. Отменить нельзя.",
    },
    "reason": {"en": "Reason (optional)", "ru": "Причина (необязательно)"},
    "confirm_refund": {"en": "Yes, refund {stars} ⭐", "ru": "Да, вернуть {stars} ⭐"},
    "cancel": {"en": "Cancel", "ru": "Отмена"},
    "refund_done": {"en": "Refunded.", "ru": "Возвращено."},
    "already_refunded": {"en": "This payment is refunded.", "ru": "Этот платёж возвращён."},
    "refund_failed": {"en": "The refund failed: {why}", "ru": "Возврат не удался: {why}"},
    "replay": {"en": "Replay…", "ru": "Повторить…"},
    "replay_all": {"en": "Replay all failed…", "ru": "Повторить все сбойные…"},
    "replay_title": {"en": "Replay these updates?", "ru": "Повторить эти обновления?"},
    "replay_explain": {
        "en": "They are handled again by the webhook's own code, as flask stars replay does: a "
        "charge already in the ledger is skipped, so nothing is credited twice.",
        "ru": "Они обрабатываются заново кодом вебхука, как flask stars replay: платёж, который уже "
        "есть в журнале, пропускается, поэтому ничего не зачисляется дважды.",
    },
    "replay_one": {"en": "Update {update_id} (row {row})", "ru": "Обновление {update_id} (строка {row})"},
    "replay_every": {
        "en": "{count} spooled file(s) and every logged payment update not processed yet",
        "ru": "Файлы в спуле ({count}) и все необработанные обновления о платежах",
    },
    "confirm_replay": {"en": "Yes, replay", "ru": "Да, повторить"},
    "replay_result": {"en": "Replayed {ok} of {total}.", "ru": "Повторено {ok} из {total}."},
    "spool": {"en": "Spool", "ru": "Спул"},
    "spool_empty": {"en": "The spool is empty.", "ru": "Спул пуст."},
    "no_failed": {"en": "No failed updates.", "ru": "Сбойных обновлений нет."},
    "no_update_id": {
        "en": "no update_id: use Replay all",
        "ru": "нет update_id: повторите все",
    },
    "state": {"en": "State", "ru": "Состояние"},
    "expires_at": {"en": "Expires", "ru": "Истекает"},
    "renewals": {"en": "Payments", "ru": "Платежей"},
    "forbidden": {"en": "You may not see this dashboard.", "ru": "У вас нет доступа к этой панели."},
    "bad_request": {"en": "This request is not valid.", "ru": "Запрос неверен."},
    "bad_argument": {
        "en": "This request is not valid: not a valid value for {name}.",
        "ru": "Запрос неверен: недопустимое значение {name}.",
    },
    "server_error": {
        "en": "Something went wrong on the server; the error was logged. Reload the page to "
        "see what changed before trying again.",
        "ru": "Ошибка на сервере; она записана в журнал. Обновите страницу и проверьте, "
        "что изменилось, прежде чем повторить.",
    },
    "not_found": {"en": "Not found.", "ru": "Не найдено."},
    "csrf_failed": {
        "en": "The form's security token is missing or wrong: reload the page and try again. "
        "Nothing changed.",
        "ru": "Токен безопасности формы отсутствует или неверен: обновите страницу. Ничего не изменено.",
    },
    "confirm_missing": {
        "en": "Not confirmed: nothing changed.",
        "ru": "Не подтверждено: ничего не изменено.",
    },
    "bad_filter": {
        "en": "Ignored a filter that is not valid: {name}",
        "ru": "Неверный фильтр пропущен: {name}",
    },
    "back": {"en": "Back", "ru": "Назад"},
}


def choose_language(choice: LanguageChoice) -> str:
    """``"ru"`` or ``"en"``: the host's choice if it made one, else the browser's."""
    code = choice() if callable(choice) else choice
    if not code:
        code = request.accept_languages.best_match(["en", "ru"], default="en")
    return language_of(code)


def text(key: str, language: str, **values: object) -> str:
    """The text ``key`` in ``language`` (English when missing)."""
    entry = TEXTS[key]
    value = entry.get(language) or entry["en"]
    return value.format(**values) if values else value
