"""Archiving a failed update: with a reason, from the CLI, the dashboard or Python; it stays in
stars_updates, stops counting as failed (overview warning, gauge, replay --failed), is listed
under the archived filter with who, when and why, and is in the audit trail."""

from __future__ import annotations

import getpass
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from flask_stars.archive import archive_update
from flask_stars.audit import CLI, DASHBOARD, PYTHON
from flask_stars.errors import InvalidRequest, UpdateNotArchivable, UpdateNotFound
from flask_stars.metrics import metrics_registry
from flask_stars.models import AuditEntry, UpdateLog
from flask_stars.sandbox import Sandbox
from tests.support.admin_app import AdminShop, form_token, served_admin
from tests.support.shop import Shop

MALFORMED = {"update_id": 77, "message": {"from": {"id": 1}, "successful_payment": {"currency": "XTR"}}}


def _cli(shop: Shop, *args: str) -> Any:
    return shop.app.test_cli_runner().invoke(args=["stars", *args])


def _failed_gauge(shop: Shop) -> float | None:
    return metrics_registry(shop.app).get_sample_value("flask_stars_failed_updates")


def _archives(shop: Shop) -> list[AuditEntry]:
    return sorted(shop.rows(AuditEntry, action="archive"), key=lambda e: e.id)


def _kept_malformed(shop: Shop) -> UpdateLog:
    assert shop.post_webhook(MALFORMED).json()["detail"] == "malformed: kept for replay"
    (row,) = shop.updates(update_id=77)
    assert not row.processed
    return row


@pytest.fixture
def admin(database_url: str, sandbox: Sandbox) -> Iterator[AdminShop]:
    """The dashboard at /admin; the host names its operator bob."""
    with served_admin(database_url, sandbox, actor=lambda: "bob@example.com", STARS_METRICS=True) as shop:
        yield shop


# --- the CLI --------------------------------------------------------------------------------


def test_archiving_from_the_cli_clears_the_count_and_keeps_the_row(make_shop: Any) -> None:
    shop = make_shop(STARS_METRICS=True)
    row = _kept_malformed(shop)
    assert _failed_gauge(shop) == 1
    listed = json.loads(_cli(shop, "updates", "--json").output)
    assert [(r["row"], r["update_id"], r["kind"]) for r in listed] == [(row.id, 77, "successful_payment")]

    no_reason = _cli(shop, "archive", str(row.id))
    assert no_reason.exit_code == 2 and "--reason" in no_reason.output
    blank = _cli(shop, "archive", str(row.id), "--reason", "   ")
    assert blank.exit_code != 0 and "reason" in blank.output
    assert not shop.updates(update_id=77)[0].archived_at

    result = _cli(shop, "archive", str(row.id), "--reason", "forged: no such charge at Telegram")
    assert result.exit_code == 0, result.output
    assert f"row {row.id}: archived (successful_payment, update 77)" in result.output

    (kept,) = shop.updates(update_id=77)  # still there, as it was, with who and why
    assert not kept.processed and kept.body == row.body and "malformed" in (kept.error or "")
    assert kept.archived_at is not None and kept.archived_by == getpass.getuser()
    assert kept.archived_reason == "forged: no such charge at Telegram"
    assert _failed_gauge(shop) == 0
    assert json.loads(_cli(shop, "updates", "--json").output) == []
    archived = json.loads(_cli(shop, "updates", "--archived", "--json").output)
    assert [(r["row"], r["archived_by"], r["reason"]) for r in archived] == [
        (row.id, getpass.getuser(), "forged: no such charge at Telegram")
    ]
    replayed = _cli(shop, "replay", "--failed")
    assert replayed.exit_code == 0 and replayed.output.strip().endswith("replayed 0 of 0 update(s)")

    (entry,) = _archives(shop)
    assert (entry.target, entry.outcome, entry.actor, entry.source) == (
        str(row.id),
        "ok",
        getpass.getuser(),
        CLI,
    )
    assert entry.reason == "forged: no such charge at Telegram"


def test_archiving_what_is_not_a_failed_update_is_refused(shop: Shop) -> None:
    shop.buy(42)
    (paid,) = [u for u in shop.updates() if u.kind == "successful_payment"]
    assert paid.processed
    row = _kept_malformed(shop)
    assert _cli(shop, "archive", str(row.id), "--reason", "settled by hand").exit_code == 0

    result = _cli(shop, "archive", str(paid.id), str(row.id), "999999", "--reason", "tidy up")
    assert result.exit_code == 1
    assert f"row {paid.id}: refused: row {paid.id} is processed" in result.output
    assert f"row {row.id}: refused: row {row.id} is archived already" in result.output
    assert "settled by hand" in result.output  # says by whom and why it was archived
    assert "row 999999: refused: no row 999999 in stars_updates" in result.output
    (still,) = shop.updates(id=paid.id)
    assert still.archived_at is None and still.processed
    assert shop.balance(42) == 1_000_000
    assert [(e.target, e.outcome) for e in _archives(shop)] == [
        (str(row.id), "ok"),
        (str(paid.id), "failed"),
        (str(row.id), "failed"),
        ("999999", "failed"),
    ]


def test_the_python_api_needs_a_reason_and_refuses_a_pre_checkout(shop: Shop) -> None:
    order = shop.invoice(42).json()
    shop.tg.pay(order["invoice_url"], 42, total_amount=1, deliver_payment=False)  # refused: logged
    (pre,) = shop.updates(kind="pre_checkout_query")
    row = _kept_malformed(shop)
    with shop.app.app_context():
        state = shop.app.extensions["stars"]
        with pytest.raises(InvalidRequest, match="reason"):
            archive_update(state, row.id, reason=" \n ", actor="carol")
        with pytest.raises(UpdateNotArchivable, match="pre-checkout"):
            archive_update(state, pre.id, reason="noise", actor="carol")
        with pytest.raises(UpdateNotFound):
            archive_update(state, 2**63, reason="noise", actor="carol")
        done = archive_update(state, row.id, reason="a\x00b \udc80", actor="carol")
    assert done.archived_by == "carol" and done.archived_reason == "a\ufffdb ?"
    assert [(e.actor, e.source, e.outcome) for e in _archives(shop)] == [
        ("carol", PYTHON, "failed"),
        ("carol", PYTHON, "failed"),
        ("carol", PYTHON, "ok"),
    ]


def test_an_archived_update_can_still_be_replayed_by_its_row(shop: Shop) -> None:
    shop.credit_log.fail_next = 1
    _, attempt = shop.buy(44)
    (row,) = [u for u in shop.updates() if u.kind == "successful_payment"]
    assert _cli(shop, "archive", str(row.id), "--reason", "looking into it").exit_code == 0
    assert _cli(shop, "replay", "--failed").output.strip().endswith("replayed 0 of 0 update(s)")
    assert shop.balance(44) == 0
    result = _cli(shop, "replay", "--row", str(row.id))
    assert result.exit_code == 0 and "credited" in result.output
    (done,) = [u for u in shop.updates() if u.kind == "successful_payment"]
    assert done.processed and done.archived_reason == "looking into it"  # its history stays
    assert shop.balance(44) == 1_000_000 and shop.credit_log.credits.count(attempt.charge_id) == 1


# --- the dashboard ----------------------------------------------------------------------------


def test_archiving_from_the_dashboard_clears_the_warning_and_lists_it_archived(admin: Shop) -> None:
    row = _kept_malformed(admin)
    client = admin.app.test_client()
    overview = client.get("/admin/").get_data(as_text=True)
    assert 'id="warn-failed"' in overview and 'id="all-well"' not in overview
    listing = client.get("/admin/updates").get_data(as_text=True)
    path = f"/admin/updates/{row.id}/archive"
    assert f'href="{path}"' in listing
    assert f'href="{path}"' in client.get(f"/admin/updates/{row.id}").get_data(as_text=True)

    form = client.get(path).get_data(as_text=True)
    assert 'name="reason" required' in form and 'name="confirm" value="yes"' in form
    token = form_token(client, path)
    assert client.post(path, data={"confirm": "yes", "reason": "forged"}).status_code == 400  # no CSRF
    assert client.post(path, data={"csrf_token": token, "reason": "forged"}).status_code == 400
    no_reason = client.post(path, data={"confirm": "yes", "csrf_token": token, "reason": "  "})
    assert no_reason.status_code == 400 and "Give a reason" in no_reason.get_data(as_text=True)
    assert admin.updates(update_id=77)[0].archived_at is None and _archives(admin) == []

    done = client.post(path, data={"confirm": "yes", "csrf_token": token, "reason": "forged update"})
    assert done.status_code == 303
    assert done.headers["Location"].endswith("/admin/updates?show=archived&done=archived")
    archived = client.get(done.headers["Location"]).get_data(as_text=True)
    assert 'id="done"' in archived
    found = re.search(rf'<tr id="row-{row.id}">(.*?)</tr>', archived, re.S)
    assert found and "bob@example.com" in found.group(1) and "forged update" in found.group(1)

    overview = client.get("/admin/").get_data(as_text=True)
    assert 'id="warn-failed"' not in overview and 'id="all-well"' in overview
    assert "No failed updates." in client.get("/admin/updates").get_data(as_text=True)
    assert _failed_gauge(admin) == 0
    (entry,) = _archives(admin)
    assert (entry.actor, entry.source, entry.reason, entry.outcome) == (
        "bob@example.com",
        DASHBOARD,
        "forged update",
        "ok",
    )

    again = client.post(path, data={"confirm": "yes", "csrf_token": token, "reason": "twice"})
    assert again.status_code == 400 and "archived already" in again.get_data(as_text=True)
    assert client.get(path).status_code == 400


def test_the_dashboard_refuses_to_archive_a_processed_update(admin: Shop) -> None:
    admin.buy(45)
    (paid,) = [u for u in admin.updates() if u.kind == "successful_payment"]
    client = admin.app.test_client()
    path = f"/admin/updates/{paid.id}/archive"
    page = client.get(path)
    assert page.status_code == 400 and "is processed" in page.get_data(as_text=True)
    token = form_token(client, "/admin/updates/replay-failed")
    refused = client.post(path, data={"confirm": "yes", "csrf_token": token, "reason": "x"})
    assert refused.status_code == 400 and "is processed" in refused.get_data(as_text=True)
    assert admin.updates(kind="successful_payment")[0].archived_at is None
    assert client.get("/admin/updates/999999/archive").status_code == 404
    assert client.get(f"/admin/updates/{2**63}/archive").status_code == 404
    assert client.get("/admin/updates?show=nonsense").status_code == 400


def test_the_extension_object_archives_and_replays_with_its_actor(make_shop: Any) -> None:
    shop = make_shop(mount="extension")
    row = _kept_malformed(shop)
    stars = shop.app.extensions["test_stars"]
    with shop.app.app_context():
        (result,) = stars.replay(rows=(row.id,), actor="dave")
        done = stars.archive_update(row.id, reason="malformed, forged", actor="dave")
        assert stars.replay(failed=True) == []
    assert not result.ok and "malformed" in result.detail
    assert done.archived_by == "dave" and done.archived_reason == "malformed, forged"
    entries = sorted(shop.rows(AuditEntry), key=lambda e: e.id)
    assert [(e.action, e.actor, e.outcome) for e in entries] == [
        ("replay", "dave", "failed"),
        ("archive", "dave", "ok"),
    ]
