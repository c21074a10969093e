"""The dashboard's texts in English and Russian, and how the page's language is chosen.

The language is picked the project's way (``messages.language_of``): from the host's
choice when it gave one (``language=`` at registration: a code or a callable returning
one), else from the browser's ``Accept-Language``; anything but Russian reads English.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

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
        "ru": "Сбойных обновлений нет, очередь на диске пуста, возвратов нет.",
    },
    "warn_failed": {
        "en": "{count} payment update(s) failed and are not processed: replay them.",
        "ru": "Не обработано обновлений о платежах: {count}. Повторите их.",
    },
    "warn_spool": {
        "en": "{count} update(s) wait in the spool (the database could not take them): replay them.",
        "ru": "В очереди на диске ждут обновления ({count}): база не смогла их принять. Повторите их.",
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
        "aside) is recorded here; the newest 100 are kept. Read so far of {bot}'s transactions: "
        "{offset}.",
        "ru": "Здесь записан каждый запуск flask stars reconcile, FlaskStars.reconcile() или "
        "«Запустить сейчас» (кроме пробных); хранятся последние 100. Прочитано транзакций "
        "({bot}): {offset}.",
    },
    "run_now": {"en": "Run now…", "ru": "Запустить сейчас…"},
    "reconcile_title": {"en": "Run reconcile now?", "ru": "Запустить сверку сейчас?"},
    "reconcile_explain": {
        "en": "It reads all the bot's Stars transactions from Telegram (getStarTransactions) from "
        "the first, as flask stars reconcile --full does: a payment whose webhook never arrived "
        "is recorded and credited once, a refund the ledger missed is applied (your debit callback "
        "once), due refunds of second payments are finished; anything else is only reported. "
        "The run is recorded below. With many new transactions it may take a while.",
        "ru": "Она читает все транзакции звёзд бота в Telegram (getStarTransactions) с первой, "
        "как flask stars reconcile --full: платёж, чей вебхук не дошёл, "
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
    "run_warning": {"en": "warning", "ru": "предупреждение"},
    "started_by": {"en": "Started by", "ru": "Кто запустил"},
    "tx_from": {"en": "From position", "ru": "С позиции"},
    "tx_to": {"en": "To position", "ru": "По позицию"},
    "position_moved": {
        "en": "Telegram no longer lists the transaction saved at position {saved} (another bot or "
        "environment on these tables, or a sandbox that started afresh): every transaction was read "
        "again from the start.",
        "ru": "Telegram больше не показывает транзакцию, сохранённую на позиции {saved} (другой бот "
        "или среда на этих таблицах либо песочница, начатая заново): все транзакции прочитаны заново "
        "с начала.",
    },
    "position_past_end": {
        "en": "The saved position {saved} is past the end of Telegram's list (another bot or "
        "environment on these tables, or a sandbox that started afresh): every transaction was read "
        "again from the start.",
        "ru": "Сохранённая позиция {saved} дальше конца списка Telegram (другой бот или среда на этих "
        "таблицах либо песочница, начатая заново): все транзакции прочитаны заново с начала.",
    },
    "position_unreadable": {
        "en": "The saved position could not be read: every transaction was read from the start.",
        "ru": "Сохранённую позицию не удалось прочитать: все транзакции прочитаны с начала.",
    },
    "position_legacy": {
        "en": "The position an earlier flask_stars saved names no transaction to check it by: every "
        "transaction was read from the start, once.",
        "ru": "Позиция, сохранённая прежней версией flask_stars, не называет транзакцию для проверки: "
        "все транзакции прочитаны с начала, один раз.",
    },
    "no_new_since": {
        "en": "No new transactions since position {offset}.",
        "ru": "Новых транзакций с позиции {offset} нет.",
    },
    "reconcile_done_warning": {
        "en": "Reconcile ran, with a warning (the first row below): {message}",
        "ru": "Сверка выполнена с предупреждением (первая строка ниже): {message}",
    },
    "reconcile_busy": {
        "en": "A reconcile run is under way (run {id}, started {when} UTC by {who}): try again when "
        "it has finished. A run silent for {minutes} minutes is taken as dead.",
        "ru": "Уже идёт сверка (запуск {id}, начат {when} UTC, запустил {who}): повторите, когда она "
        "закончится. Запуск, молчащий {minutes} мин., считается прерванным.",
    },
    "reconcile_warning": {
        "en": "The last reconcile run ({when} UTC) ended with a warning: {message}",
        "ru": "Последний запуск сверки ({when} UTC) завершился с предупреждением: {message}",
    },
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
        "charge already in the ledger is skipped, so nothing is credited twice. The next page "
        "says what became of each; one that fails again stays among the failed updates.",
        "ru": "Они обрабатываются заново кодом вебхука, как flask stars replay: платёж, который уже "
        "есть в журнале, пропускается, поэтому ничего не зачисляется дважды. На следующей странице "
        "видно, что стало с каждым; снова не удавшееся остаётся среди сбойных.",
    },
    "replay_one": {
        "en": "Row {row}: {kind}, update {update_id}",
        "ru": "Строка {row}: {kind}, обновление {update_id}",
    },
    "replay_every": {
        "en": "{count} spooled file(s) and every failed payment update (archived ones aside)",
        "ru": "Файлы в очереди на диске ({count}) и все сбойные обновления о платежах (кроме архивных)",
    },
    "confirm_replay": {"en": "Yes, replay", "ru": "Да, повторить"},
    "replay_result": {"en": "Replayed {ok} of {total}.", "ru": "Повторено {ok} из {total}."},
    "replay_result_failed": {
        "en": "Replayed {ok} of {total}: {failed} failed ({names}). A failed update stays among the "
        "failed updates with its error: fix the cause and replay it again, or archive it.",
        "ru": "Повторено {ok} из {total}, не удалось: {failed} ({names}). Такое обновление остаётся "
        "среди сбойных вместе с ошибкой: устраните причину и повторите его или уберите в архив.",
    },
    "replay_failed_one": {"en": "failed:", "ru": "не удалось:"},
    "show_failed": {"en": "Failed", "ru": "Сбойные"},
    "show_archived": {"en": "Archived", "ru": "В архиве"},
    "failed_note": {
        "en": "Payment updates whose handling failed, kept with their error. Replay applies one "
        "(a charge already in the ledger is skipped); Archive sets aside one that needs no replay.",
        "ru": "Обновления о платежах, обработка которых не удалась, с их ошибкой. «Повторить» "
        "применяет обновление (платёж, уже записанный в журнал, пропускается); «В архив» откладывает "
        "то, которое повторять не нужно.",
    },
    "archived_note": {
        "en": "Failed updates an operator archived, with who, when and why: they are kept in "
        "stars_updates and no longer count as failed. Replay still applies one.",
        "ru": "Сбойные обновления, которые оператор убрал в архив: кто, когда и почему. Они хранятся "
        "в stars_updates и больше не считаются сбойными. «Повторить» по-прежнему применяет их.",
    },
    "no_archived": {"en": "No archived updates.", "ru": "В архиве ничего нет."},
    "archived_at": {"en": "Archived (UTC)", "ru": "В архиве с (UTC)"},
    "archived_by": {"en": "By", "ru": "Кем"},
    "archive_reason_col": {"en": "Why", "ru": "Почему"},
    "archive": {"en": "Archive…", "ru": "В архив…"},
    "archive_title": {"en": "Archive this failed update?", "ru": "Убрать это сбойное обновление в архив?"},
    "archive_explain": {
        "en": "It stays in stars_updates as it is, with your name, the time and your reason, and "
        "no longer counts as failed: not in the overview's warning, the flask_stars_failed_updates "
        "gauge or Replay all failed. Nothing is credited or refunded. It can still be replayed "
        "(flask stars replay --row {row}).",
        "ru": "Оно остаётся в stars_updates как есть, с вашим именем, временем и причиной, и больше "
        "не считается сбойным: ни в предупреждении обзора, ни в метрике flask_stars_failed_updates, "
        "ни в «Повторить все сбойные». Ничего не зачисляется и не возвращается. Его по-прежнему "
        "можно повторить (flask stars replay --row {row}).",
    },
    "archive_reason": {
        "en": "Reason (required): what was done about it, or why it needs no replay",
        "ru": "Причина (обязательно): что с ним сделано или почему его не нужно повторять",
    },
    "confirm_archive": {"en": "Yes, archive it", "ru": "Да, в архив"},
    "archive_reason_missing": {
        "en": "Give a reason to archive it. Nothing changed.",
        "ru": "Укажите причину, чтобы убрать его в архив. Ничего не изменено.",
    },
    "archive_refused": {"en": "Not archived: {why}", "ru": "Не убрано в архив: {why}"},
    "archive_not_payment": {
        "en": "row {row} is a pre-checkout query: only a failed payment update can be archived",
        "ru": "строка {row} — запрос pre-checkout: в архив убирается только сбойное обновление о платеже",
    },
    "archive_already": {
        "en": "row {row} is archived already ({when} UTC, by {who})",
        "ru": "строка {row} уже в архиве ({when} UTC, {who})",
    },
    "archive_processed": {
        "en": "row {row} is processed: only a failed update can be archived",
        "ru": "строка {row} обработана: в архив убирается только сбойное обновление",
    },
    "archive_done": {
        "en": "Archived: it is listed below and no longer counts as failed.",
        "ru": "Убрано в архив: оно в списке ниже и больше не считается сбойным.",
    },
    "spool": {"en": "Spool", "ru": "Очередь на диске"},
    "spool_empty": {"en": "The spool is empty.", "ru": "Очередь на диске пуста."},
    "no_failed": {"en": "No failed updates.", "ru": "Сбойных обновлений нет."},
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
    "pack_credits": {"en": "gives {credits}", "ru": "даёт {credits}"},
    "seconds_short": {"en": "s", "ru": "с"},
    "sign_out": {"en": "Sign out", "ru": "Выйти"},
    "back_to_overview": {"en": "← Back to the overview", "ru": "← Назад к обзору"},
    "inverted_range": {
        "en": "The date range is inverted: “from” ({date_from}) is after “to” ({date_to}). Swap them.",
        "ru": "Даты перепутаны: «с» ({date_from}) позже, чем «по» ({date_to}). Поменяйте их местами.",
    },
    # The audit trail: the Activity page, and the entries on a payment's and an update's page.
    "activity": {"en": "Activity", "ru": "Журнал действий"},
    "activity_note": {
        "en": "What operators did: every refund, replay, archive, reconcile run and hand-over of "
        "the tables, from the dashboard, flask stars or the Python API, failed ones too. Newest "
        "first; times in UTC.",
        "ru": "Что делали операторы: каждый возврат, повтор, архивирование, запуск сверки и передача "
        "таблиц из панели, flask stars или Python API, в том числе неудачные. Новые сверху; время UTC.",
    },
    "audit_heading": {"en": "What operators did", "ru": "Действия операторов"},
    "payment_audit_note": {
        "en": "Refunds of this payment and replays or archives of the updates behind it, failed ones too.",
        "ru": "Возвраты этого платежа, повторы и архивирование его обновлений, в том числе неудачные.",
    },
    "audit_none": {"en": "Nothing recorded.", "ru": "Ничего не записано."},
    "audit_at": {"en": "When (UTC)", "ru": "Когда (UTC)"},
    "audit_who": {"en": "Who", "ru": "Кто"},
    "audit_action": {"en": "Action", "ru": "Действие"},
    "audit_target": {"en": "On", "ru": "Над чем"},
    "audit_reason": {"en": "Reason given", "ru": "Указанная причина"},
    "audit_outcome": {"en": "Outcome", "ru": "Итог"},
    "audit_detail": {"en": "What happened", "ru": "Что произошло"},
    "audit_outcome_ok": {"en": "ok", "ru": "успешно"},
    "audit_outcome_failed": {"en": "failed", "ru": "ошибка"},
    "audit_outcome_warning": {"en": "look at it", "ru": "требует внимания"},
    "audit_action_refund": {"en": "refund", "ru": "возврат"},
    "audit_action_replay": {"en": "replay", "ru": "повтор"},
    "audit_action_archive": {"en": "archive", "ru": "в архив"},
    "audit_action_reconcile": {"en": "reconcile run", "ru": "сверка"},
    "audit_action_rebind": {"en": "hand-over of the tables", "ru": "передача таблиц"},
    "audit_source_cli": {"en": "flask stars", "ru": "flask stars"},
    "audit_source_dashboard": {"en": "dashboard", "ru": "панель"},
    "audit_source_python": {"en": "Python API", "ru": "Python API"},
    "audit_source_system": {"en": "automatic", "ru": "автоматически"},
    "found_by_reconcile": {
        "en": "(Telegram's date: found by reconcile at {when} UTC, its webhook never came)",
        "ru": "(дата Telegram: найден сверкой {when} UTC, вебхук не пришёл)",
    },
    "refund_found_by_reconcile": {
        "en": "(Telegram's date: the refund was found by reconcile at {when} UTC)",
        "ru": "(дата Telegram: возврат найден сверкой {when} UTC)",
    },
    "update_title": {"en": "Logged update #{row}", "ru": "Записанное обновление №{row}"},
    "update_body": {"en": "What Telegram sent", "ru": "Что прислал Telegram"},
    "update_open": {"en": "Logged update #{row}: its page", "ru": "Страница обновления №{row}"},
    "update_archived": {"en": "Archived", "ru": "В архиве"},
    "update_archived_by": {"en": "{when} UTC by {who}", "ru": "{when} UTC, {who}"},
}


#: What the ledger's codes (statuses, states, problems) read as on a page.
WORDS: dict[str, dict[str, str]] = {
    "pending": {"en": "pending", "ru": "ожидает оплаты"},
    "paid": {"en": "paid", "ru": "оплачен"},
    "refunded": {"en": "refunded", "ru": "возвращён"},
    "expired": {"en": "expired", "ru": "истёк"},
    "failed": {"en": "failed", "ru": "сбой"},
    "active": {"en": "active", "ru": "активна"},
    "canceled": {"en": "cancelled", "ru": "отменена"},
    "unknown_order": {"en": "unknown order", "ru": "неизвестный заказ"},
    "amount_mismatch": {"en": "amount mismatch", "ru": "сумма не совпадает"},
    "pack_unavailable": {"en": "pack unavailable", "ru": "пакет недоступен"},
    "order_already_paid": {"en": "order already paid", "ru": "заказ уже оплачен"},
    "refunded_before_paid": {"en": "refunded before paid", "ru": "возврат до оплаты"},
}


#: Counted nouns: English one/other, Russian one/few/many (1 платёж, 2 платежа, 5 платежей).
PLURALS: dict[str, dict[str, tuple[str, ...]]] = {
    "payments": {
        "en": ("{n} payment", "{n} payments"),
        "ru": ("{n} платёж", "{n} платежа", "{n} платежей"),
    },
}


def count(noun: str, n: int, language: str) -> str:
    """``n`` of ``noun`` (a key of ``PLURALS``) in ``language``'s plural form, the number grouped.

    :param noun: the counted thing.
    :param n: how many.
    :param language: ``"en"`` or ``"ru"``.
    """
    shown = number(n, language)
    if language == "ru":
        one, few, many = PLURALS[noun]["ru"]
        tail, tens = n % 10, n % 100
        form = one if tail == 1 and tens != 11 else few if 2 <= tail <= 4 and not 12 <= tens <= 14 else many
    else:
        one, other = PLURALS[noun]["en"]
        form = one if n == 1 else other
    return form.format(n=shown)


def word(code: str | None, language: str) -> str:
    """A ledger code (``paid``, ``order_already_paid``) in ``language``; an unknown one as it is.

    :param code: the code as the ledger stores it, or None ("—").
    :param language: ``"en"`` or ``"ru"``.
    """
    if not code:
        return "—"
    entry = WORDS.get(code)
    return (entry.get(language) or entry["en"]) if entry else code


def number(value: float | int | None, language: str, digits: int = 0) -> str:
    """``value`` with the language's group and decimal marks (1,000,000.5 / 1 000 000,5).

    :param value: the number, or None ("—").
    :param language: ``"en"`` or ``"ru"``.
    :param digits: decimals to show.
    """
    if value is None:
        return "—"
    shown = f"{value:,.{digits}f}"
    if language == "ru":
        shown = shown.replace(",", "\u202f").replace(".", ",")
    return shown


def when(moment: datetime | None, language: str) -> str:
    """A timestamp (UTC), the same on every page: ``2026-12-05 08:40:00`` / ``05.12.2026 08:40:00``.

    :param moment: the time, or None ("—").
    :param language: ``"en"`` or ``"ru"``.
    """
    if moment is None:
        return "—"
    return moment.strftime("%d.%m.%Y %H:%M:%S" if language == "ru" else "%Y-%m-%d %H:%M:%S")


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
