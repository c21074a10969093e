"""Reconciliation: read the bot's Stars transactions from Telegram and mend the ledger.

``getStarTransactions`` lists every transaction, oldest first, ``limit`` at a time. An
incoming ``invoice_payment`` whose charge id is not in the ledger is a payment whose
webhook never arrived: if its payload names one of our orders it is recorded and credited
through ``ledger.record_payment``, the webhook's own path, so exactly-once still holds,
dated when Telegram charged it (``paid_at``; ``found_at`` says when reconcile found it).
An outgoing one is a refund: if the ledger still shows the payment as paid, the refund is
applied (debit callback once), dated the same way. Anything else that cannot be matched
is reported, never "fixed". Pages are handled one at a time, so memory stays flat.

**The position** (``position``). How far a run read is kept per bot and environment
(``stars_meta`` row ``reconcile:<bot_id>:<environment>``): the offset, and the transaction
found at the last position read. Telegram's list belongs to one bot in one environment:
another bot on the same tables, the test server's bot after the production one, or a
sandbox that started afresh lists other transactions, and an offset alone would skip the
new list's first ones for good. So before resuming at offset N, a run asks for the page
that starts at N - 1 (one call) and checks that its first transaction is the one saved;
if it is not, or the list is shorter than that, the run reads from 0 and its report says
so with a warning (a run with a warning never reports a plain "ok"). A ``full`` run reads
from 0 anyway and checks the saved transaction as it passes it. Re-reading is harmless:
what the ledger holds is skipped.

**Runs take turns** (``runs``): every run that may change the ledger is recorded in
``stars_reconcile_runs``, refused with ``ReconcileBusy`` while another is under way, and
taken as dead when its heartbeat stops. Each run ends with an entry in the audit trail.

The modules: ``transactions`` (what a ``StarTransaction`` says), ``position``, ``report``
(``ReconcileReport``), ``runs`` and ``run`` (``reconcile`` itself, page by page).
"""

from .position import (
    LEGACY,
    LEGACY_OFFSET_KEY,
    MOVED,
    PAST_END,
    POSITION_PREFIX,
    UNREADABLE,
    Position,
    position_key,
    save_position,
    saved_position,
)
from .report import MAX_EXAMPLES, ReconcileReport
from .run import PAGE_SIZE, reconcile
from .runs import (
    ERROR_CHARS,
    HEARTBEAT_SECONDS,
    KEEP_RUNS,
    RUN_LOCK,
    STALE_AFTER,
    record_end,
    record_start,
    stale_after,
)

__all__ = [
    "ERROR_CHARS",
    "HEARTBEAT_SECONDS",
    "KEEP_RUNS",
    "LEGACY",
    "LEGACY_OFFSET_KEY",
    "MAX_EXAMPLES",
    "MOVED",
    "PAGE_SIZE",
    "PAST_END",
    "POSITION_PREFIX",
    "RUN_LOCK",
    "STALE_AFTER",
    "UNREADABLE",
    "Position",
    "ReconcileReport",
    "position_key",
    "reconcile",
    "record_end",
    "record_start",
    "save_position",
    "saved_position",
    "stale_after",
]
