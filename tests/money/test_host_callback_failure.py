"""The host's credit or debit callback failing: one error type inside, the host's own error outside.

``StarsState.credit``/``debit`` raise ``HostCallbackFailed`` around whatever the callback
raised, so the intake, reconcile and the edges tell the host's failure from the database's
by type. What the host sees is unchanged: ``stars.refund`` raises the callback's own
exception, and a database error raised inside the callback is kept like the database's own.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from flask_stars.errors import HostCallbackFailed
from flask_stars.models import AuditEntry
from flask_stars.state import get_state
from tests.support import hostapp
from tests.support.shop import Shop


def _broken(payment: object) -> None:
    raise RuntimeError("the coins table is locked")


LOCKED: list[BaseException] = []


def credit_unless_locked(payment: Any) -> None:
    """Raises the next error of ``LOCKED`` (as a host's own database call would), then credits."""
    if LOCKED:
        raise LOCKED.pop(0)
    hostapp.credit_coins(payment)


def test_a_failing_callback_is_one_error_that_names_it_and_keeps_the_original(
    make_shop: Callable[..., Shop],
) -> None:
    shop = make_shop(STARS_CREDIT_CALLBACK=_broken, STARS_DEBIT_CALLBACK=_broken)
    with shop.app.app_context():
        state = get_state()
        for which, call in (("credit", state.credit), ("debit", state.debit)):
            with pytest.raises(HostCallbackFailed) as caught:
                call(object())  # type: ignore[arg-type]
            failed = caught.value
            assert failed.callback == which and failed.error == "host_callback_failed"
            assert isinstance(failed.original, RuntimeError) and failed.__cause__ is failed.original
            assert failed.reason == "RuntimeError: the coins table is locked"
            assert failed.message == (
                f"the {which} callback (tests.money.test_host_callback_failure._broken) failed: "
                "RuntimeError: the coins table is locked"
            )


def test_stars_refund_raises_the_debit_callbacks_own_error_and_changes_nothing(
    make_shop: Callable[..., Shop],
) -> None:
    shop = make_shop(mount="extension")
    stars = shop.app.extensions["test_stars"]
    stars.debit(_broken)  # the decorated callback, in place of the host app's
    _, attempt = shop.buy(42)
    assert shop.balance(42) == 1_000_000
    with shop.app.app_context(), pytest.raises(RuntimeError, match="the coins table is locked") as caught:
        stars.refund(attempt.charge_id, reason="chargeback")
    assert not isinstance(caught.value, HostCallbackFailed)  # the host's own exception, as documented
    (payment,) = shop.payments()
    assert payment.status == "paid" and shop.balance(42) == 1_000_000
    (entry,) = shop.rows(AuditEntry, action="refund")
    assert entry.outcome == "failed" and entry.detail is not None
    assert "Telegram gave the Stars back, but the ledger is unchanged: RuntimeError: the coins table" in (
        entry.detail
    )


def test_a_database_error_raised_inside_the_credit_callback_is_spooled_like_the_databases_own(
    make_shop: Callable[..., Shop], tmp_path: Path
) -> None:
    """The host's error decides what is kept, as before: a locked database (``OperationalError``)
    is not asked a second time; the body waits in the spool, Telegram is answered 500, and
    ``replay --failed`` credits it once."""
    shop = make_shop(
        STARS_CREDIT_CALLBACK="tests.money.test_host_callback_failure:credit_unless_locked",
        STARS_SPOOL_DIR=str(tmp_path / "spool"),
    )
    order = shop.invoice(42).json()
    attempt = shop.tg.pay(order["invoice_url"], 42, deliver_payment=False)
    update = copy.deepcopy(attempt.payment_update)
    LOCKED[:] = [OperationalError("UPDATE users", {}, Exception("database is locked"))]

    assert shop.post_webhook(update).status_code == 500
    assert shop.balance(42) == 0 and shop.payments() == [] and shop.updates() == []
    (spooled,) = shop.app.extensions["stars"].spool.pending()
    assert json.loads(spooled.read_text(encoding="utf-8")) == update

    replayed = shop.app.test_cli_runner().invoke(args=["stars", "replay", "--failed"])
    assert replayed.exit_code == 0, replayed.output
    assert f"spooled {spooled.name}: credited" in replayed.output
    assert shop.balance(42) == 1_000_000 and shop.credit_log.credits == [attempt.charge_id]
    assert shop.post_webhook(update).json()["detail"] == "duplicate update"  # Telegram redelivers
    assert shop.balance(42) == 1_000_000
