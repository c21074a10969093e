"""Replay tells the truth: an update still not applied afterwards is reported failed (CLI exit
1, the dashboard's message not in the success style), a polling bot's failed payment is taken
over by its replay (one row, credited once), and every replay is in the audit trail."""

from __future__ import annotations

import getpass
import hashlib
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from telebot import TeleBot, types

from flask_stars.audit import CLI, DASHBOARD, PYTHON
from flask_stars.models import AuditEntry, UpdateLog
from flask_stars.polling import register_handlers
from flask_stars.sandbox import Sandbox
from flask_stars.testing import TEST_TOKEN
from flask_stars.updates import replay
from tests.support.admin_app import AdminShop, form_token, served_admin
from tests.support.shop import Shop, load_update

MALFORMED = {"update_id": 77, "message": {"from": {"id": 1}, "successful_payment": {"currency": "XTR"}}}


def _cli(shop: Shop, *args: str) -> Any:
    return shop.app.test_cli_runner().invoke(args=["stars", *args])


def _audit(shop: Shop, action: str = "replay") -> list[AuditEntry]:
    return sorted(shop.rows(AuditEntry, action=action), key=lambda e: e.id)


def _payment_rows(shop: Shop) -> list[UpdateLog]:
    return [u for u in shop.updates() if u.kind == "successful_payment"]


@pytest.fixture
def admin(database_url: str, sandbox: Sandbox) -> Iterator[AdminShop]:
    """The dashboard at /admin; the host names its operator alice."""
    with served_admin(database_url, sandbox, actor=lambda: "alice@example.com") as shop:
        yield shop


# --- the CLI --------------------------------------------------------------------------------


def test_a_replay_whose_callback_fails_again_is_reported_failed_and_exits_1(shop: Shop) -> None:
    shop.credit_log.fail_next = 2  # the delivery and the first replay
    _, attempt = shop.buy(42)
    assert attempt.payment.status == 500
    (row,) = _payment_rows(shop)

    failed = _cli(shop, "replay", "--failed")
    assert failed.exit_code == 1, failed.output
    assert f"row {row.id} (update {row.update_id}): failed: RuntimeError" in failed.output
    assert "replayed 0 of 1 update(s); 1 failed" in failed.output
    (kept,) = _payment_rows(shop)
    assert not kept.processed and kept.attempts == 2 and "credit callback failed" in kept.error
    assert shop.balance(42) == 0

    done = _cli(shop, "replay", "--failed")
    assert done.exit_code == 0, done.output
    assert f"row {row.id} (update {row.update_id}): credited" in done.output
    assert done.output.strip().endswith("replayed 1 of 1 update(s)")
    assert shop.balance(42) == 1_000_000 and shop.credit_log.credits.count(attempt.charge_id) == 1

    user = getpass.getuser()
    entries = _audit(shop)
    assert [(e.target, e.outcome, e.actor, e.source) for e in entries] == [
        (str(row.id), "failed", user, CLI),
        (str(row.id), "ok", user, CLI),
    ]
    assert "credit callback failed" in (entries[0].detail or "") and entries[1].detail == "credited"


def test_a_malformed_payment_kept_again_by_its_replay_is_failed_not_replayed(shop: Shop) -> None:
    """The intake answers 2xx and keeps it ("malformed: kept for replay"): no exception, yet
    the replay did not apply it, and says so."""
    assert shop.post_webhook(MALFORMED).json()["detail"] == "malformed: kept for replay"
    (row,) = shop.updates()
    result = _cli(shop, "replay", "77")
    assert result.exit_code == 1, result.output
    assert f"row {row.id} (update 77): failed: malformed: kept for replay: MalformedUpdate" in result.output
    assert "replayed 0 of 1 update(s); 1 failed" in result.output
    (again,) = shop.updates()  # the same row, one more attempt: never a copy
    assert again.id == row.id and not again.processed and again.attempts == 2
    (entry,) = _audit(shop)
    assert entry.outcome == "failed" and entry.target == str(row.id)


def test_a_spooled_update_kept_as_failed_is_reported_failed(make_shop: Any, tmp_path: Any) -> None:
    """The database takes a spooled body, but only as a failed update: the file goes (the row
    holds it now), and the replay says it failed, naming that row."""
    shop = make_shop(STARS_SPOOL_DIR=str(tmp_path / "spool"))
    state = shop.app.extensions["stars"]
    path = state.spool.put(77, json.dumps(MALFORMED))
    assert path is not None
    result = _cli(shop, "replay", "--failed")
    assert result.exit_code == 1, result.output
    (row,) = shop.updates()
    assert f"spooled {path.name}: failed: malformed: kept for replay" in result.output
    assert "replayed 0 of 1 update(s); 1 failed" in result.output  # not handled twice in one run
    assert not row.processed and state.spool.pending() == []
    (entry,) = _audit(shop)
    assert entry.target == str(row.id) and entry.outcome == "failed"


def test_replaying_what_is_not_there_fails_and_names_it(shop: Shop) -> None:
    result = _cli(shop, "replay", "12345", "--row", "999", "--row", str(2**63))
    assert result.exit_code == 1
    assert "update 12345: failed: no such update in stars_updates" in result.output
    assert "row 999: failed: no such row in stars_updates" in result.output
    assert "replayed 0 of 3 update(s); 3 failed" in result.output
    assert _cli(shop, "replay").exit_code == 2  # nothing named: a usage error


def test_the_python_api_reports_each_outcome_and_records_its_actor(shop: Shop) -> None:
    shop.credit_log.fail_next = 2
    _, attempt = shop.buy(43)
    (row,) = _payment_rows(shop)
    with shop.app.app_context():
        state = shop.app.extensions["stars"]
        (first,) = replay(state, rows=(row.id,), actor="ops-bot")
        (second,) = replay(state, rows=(row.id,), actor="ops-bot")
        assert list(replay(state, failed=True)) == []  # applied: no longer failed
        (third,) = replay(state, (row.update_id,))
    assert not first.ok and first.row_id == row.id and isinstance(first.error, RuntimeError)
    assert second.ok and second.detail == "credited" and second.outcome is not None
    assert third.ok and third.detail == "duplicate update"
    assert shop.balance(43) == 1_000_000 and shop.credit_log.credits.count(attempt.charge_id) == 1
    assert [(e.outcome, e.actor, e.source) for e in _audit(shop)] == [
        ("failed", "ops-bot", PYTHON),
        ("ok", "ops-bot", PYTHON),
        ("ok", "python", PYTHON),
    ]


# --- the dashboard ----------------------------------------------------------------------------


def test_the_dashboard_says_a_replay_failed_and_not_in_the_success_style(admin: Shop) -> None:
    admin.credit_log.fail_next = 2
    _, attempt = admin.buy(501)
    (row,) = _payment_rows(admin)
    client = admin.app.test_client()
    path = f"/admin/updates/{row.id}/replay"
    token = form_token(client, path)

    page = client.post(path, data={"confirm": "yes", "csrf_token": token})
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'id="replayed"' not in html and 'class="ok"' not in html
    alert = re.search(r'<p role="alert" class="warn" id="replay-failed">([^<]*)</p>', html)
    assert alert, html
    assert "Replayed 0 of 1: 1 failed" in alert.group(1) and f"row {row.id}" in alert.group(1)
    assert "credit callback failed" in html
    assert "1 payment update(s) failed" in client.get("/admin/").get_data(as_text=True)

    all_failed = client.post("/admin/updates/replay-failed", data={"confirm": "yes", "csrf_token": token})
    html = all_failed.get_data(as_text=True)
    assert 'id="replayed"' in html and "Replayed 1 of 1." in html and 'id="replay-failed"' not in html
    assert admin.balance(501) == 1_000_000 and admin.credit_log.credits.count(attempt.charge_id) == 1
    assert [(e.target, e.outcome, e.actor, e.source) for e in _audit(admin)] == [
        (str(row.id), "failed", "alice@example.com", DASHBOARD),
        (str(row.id), "ok", "alice@example.com", DASHBOARD),
    ]


def test_the_dashboard_replays_a_row_without_update_id(admin: Shop) -> None:
    """A polling bot's failed update has no update_id: its row still has Replay…, by row id."""
    bot = TeleBot(TEST_TOKEN, threaded=False)
    register_handlers(bot, admin.app)
    update, charge = _polling_payment(admin, 502)
    admin.credit_log.fail_next = 1
    with pytest.raises(RuntimeError):
        bot.process_new_updates([types.Update.de_json(update)])
    (row,) = _payment_rows(admin)
    assert row.update_id is None and not row.processed
    client = admin.app.test_client()
    assert f"/admin/updates/{row.id}/replay" in client.get("/admin/updates").get_data(as_text=True)
    path = f"/admin/updates/{row.id}/replay"
    result = client.post(path, data={"confirm": "yes", "csrf_token": form_token(client, path)})
    assert "Replayed 1 of 1." in result.get_data(as_text=True)
    (after,) = _payment_rows(admin)
    assert after.id == row.id and after.processed
    assert admin.balance(502) == 1_000_000 and admin.credit_log.credits.count(charge) == 1


# --- polling: taken over, never copied ------------------------------------------------------


def _polling_payment(shop: Shop, user_id: int) -> tuple[dict[str, Any], str]:
    """A ``successful_payment`` update for a fresh order of ``user_id``, as getUpdates gives it."""
    order = shop.invoice(user_id).json()
    invoice = shop.tg.invoice(order["invoice_url"])
    update = load_update("successful_payment")
    msg = update["message"]
    msg["from"]["id"] = msg["chat"]["id"] = user_id
    charge = f"stxPolling{user_id}"
    msg["successful_payment"].update(
        invoice_payload=invoice.payload, total_amount=10, telegram_payment_charge_id=charge
    )
    return update, charge


def test_a_polling_bots_failed_payment_is_taken_over_by_its_replays(make_shop: Any) -> None:
    shop = make_shop(mount="extension", STARS_BUY_COMMAND=None)
    bot = TeleBot(TEST_TOKEN, threaded=False)
    shop.app.extensions["test_stars"].register_handlers(bot, shop.app)
    update, charge = _polling_payment(shop, 11)

    shop.credit_log.fail_next = 2  # the delivery and the first replay fail
    with pytest.raises(RuntimeError):
        bot.process_new_updates([types.Update.de_json(update)])
    (row,) = _payment_rows(shop)
    assert row.update_id is None and not row.processed and row.attempts == 1

    first = _cli(shop, "replay", "--failed")
    assert first.exit_code == 1 and f"row {row.id}: failed: RuntimeError" in first.output
    (kept,) = _payment_rows(shop)
    assert kept.id == row.id and not kept.processed and kept.attempts == 2

    second = _cli(shop, "replay", "--failed")
    assert second.exit_code == 0 and f"row {row.id}: credited" in second.output
    again = _cli(shop, "replay", "--row", str(row.id))
    assert again.exit_code == 0 and f"row {row.id}: duplicate update" in again.output
    bot.process_new_updates([types.Update.de_json(update)])  # getUpdates hands it over again
    assert _cli(shop, "replay", "--failed").output.strip().endswith("replayed 0 of 0 update(s)")

    (done,) = _payment_rows(shop)  # one row, processed: never a copy
    assert done.id == row.id and done.processed and done.error is None and done.attempts == 3
    assert shop.balance(11) == 1_000_000 and shop.credit_log.credits.count(charge) == 1
    assert len(shop.payments(telegram_payment_charge_id=charge)) == 1
    assert [e.outcome for e in _audit(shop)] == ["failed", "ok", "ok"]


def test_an_older_copy_of_a_polling_update_does_not_hide_the_failed_row(make_shop: Any) -> None:
    """Rows an earlier release copied (same body, no update_id): replaying the failed one takes
    over that row, and the charge is still credited once."""
    shop = make_shop(mount="extension", STARS_BUY_COMMAND=None)
    update, charge = _polling_payment(shop, 12)
    body = json.dumps({"message": update["message"]}, ensure_ascii=False)
    with shop.app.app_context():
        session = shop.app.extensions["stars"].session
        for processed in (False, False):
            session.execute(
                sa.insert(UpdateLog).values(
                    update_id=None,
                    digest=hashlib.sha256(body.encode()).hexdigest(),
                    kind="successful_payment",
                    body=body,
                    processed=processed,
                    attempts=1,
                    error="RuntimeError: earlier",
                )
            )
        session.commit()
    older, newer = sorted(_payment_rows(shop), key=lambda u: u.id)
    result = _cli(shop, "replay", "--row", str(newer.id))
    assert result.exit_code == 0 and f"row {newer.id}: credited" in result.output
    by_id = {u.id: u for u in _payment_rows(shop)}
    assert by_id[newer.id].processed and not by_id[older.id].processed
    rest = _cli(shop, "replay", "--failed")  # the other copy: already in the ledger
    assert rest.exit_code == 0 and f"row {older.id}: duplicate charge" in rest.output
    assert len(_payment_rows(shop)) == 2 and all(u.processed for u in _payment_rows(shop))
    assert shop.balance(12) == 1_000_000 and shop.credit_log.credits.count(charge) == 1
