"""The Activity page: every audit entry, newest first, a keyset page at a time, filtered by
action, each linking to what it acted on; and the page of one logged update."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import pytest

from flask_stars import audit
from flask_stars.dashboard.texts import TEXTS
from flask_stars.models import AuditEntry, UpdateLog, utcnow
from flask_stars.sandbox import Sandbox
from flask_stars.state import get_state
from tests.support.admin_app import AdminShop, served_admin


@pytest.fixture
def admin(database_url: str, sandbox: Sandbox) -> Iterator[AdminShop]:
    with served_admin(database_url, sandbox, actor=lambda: "ops@example.com") as shop:
        yield shop


def _record(shop: AdminShop, action: str, target: str | None, **kwargs: str) -> int:
    with shop.app.app_context():
        entry_id = audit.record(get_state(), audit.Actor("eve", audit.CLI), action, target=target, **kwargs)
    assert entry_id is not None
    return entry_id


def _get(shop: AdminShop, path: str, **headers: str) -> str:
    response = shop.client(**headers).get(path)
    assert response.status_code == 200, response.data[:300]
    return html.unescape(response.get_data(as_text=True))


def _shown(page: str) -> list[int]:
    return [int(n) for n in re.findall(r'<tr id="entry-(\d+)"', page)]


def test_each_entry_links_to_what_it_acted_on(admin: AdminShop) -> None:
    _, attempt = admin.buy(701)
    charge = attempt.charge_id
    (row,) = [u for u in admin.updates() if u.kind == "successful_payment"]
    pid = admin.payment_id(charge)
    refund = _record(admin, "refund", charge, reason="asked", detail="10 Stars back to user 701")
    replay = _record(admin, "replay", str(row.id), detail="already recorded")
    archive = _record(admin, "archive", str(row.id), reason="a test delivery")
    run = _record(admin, "reconcile", "7", outcome=audit.WARNING, detail="the list started over")
    rebind = _record(admin, "rebind", "123:production", detail="from 1:sandbox to 123:production")

    page = _get(admin, "/admin/activity")
    assert _shown(page) == [rebind, run, archive, replay, refund]  # newest first
    rows = {n: page[page.index(f'<tr id="entry-{n}"') :].split("</tr>", 1)[0] for n in _shown(page)}
    assert f'href="/admin/payments/{pid}"' in rows[refund] and "asked" in rows[refund]
    assert f'href="/admin/updates/{row.id}"' in rows[replay]
    assert f'href="/admin/updates/{row.id}"' in rows[archive] and "a test delivery" in rows[archive]
    assert 'href="/admin/reconcile#run-7"' in rows[run] and "look at it" in rows[run]
    assert "<a href" not in rows[rebind] and "hand-over of the tables" in rows[rebind]
    assert 'aria-current="page">Activity' in page

    # The update's page: what Telegram sent, the payment it recorded, who replayed and archived it.
    update = _get(admin, f"/admin/updates/{row.id}")
    assert charge in update and f'id="payment" href="/admin/payments/{pid}"' in update
    assert _shown(update) == [archive, replay]
    # The payment's page lists its refund and the replays and archives of its update.
    assert _shown(_get(admin, f"/admin/payments/{pid}")) == [archive, replay, refund]


def test_filter_by_action_and_keyset_pages(admin: AdminShop) -> None:
    ids = [_record(admin, "replay" if n % 3 else "refund", f"stx{n}") for n in range(130)]
    refunds = [i for n, i in enumerate(ids) if n % 3 == 0]
    first = _get(admin, "/admin/activity")
    assert _shown(first) == ids[::-1][:50]
    older = re.search(r'id="older" href="([^"]+)"', first)
    assert older
    second = _get(admin, older.group(1))
    assert _shown(second) == ids[::-1][50:100]
    newer = re.search(r'id="newer" href="([^"]+)"', second)
    assert newer
    assert _shown(_get(admin, newer.group(1))) == ids[::-1][:50]

    only = _get(admin, "/admin/activity?action=refund")
    assert _shown(only) == refunds[::-1][:50] and 'value="refund" selected' in only
    more = re.search(r'id="older" href="([^"]+)"', only)
    assert (more is None) == (len(refunds) <= 50)
    if more:
        assert "action=refund" in more.group(1)
        assert _shown(_get(admin, more.group(1))) == refunds[::-1][50:]


def test_the_activity_page_speaks_russian(admin: AdminShop) -> None:
    _record(admin, "reconcile", "3", outcome=audit.FAILED, detail="getStarTransactions failed")
    page = _get(admin, "/admin/activity", **{"Accept-Language": "ru"})
    assert "Журнал действий" in page and "сверка" in page and "ошибка" in page
    assert _get(admin, "/admin/").count("Журнал действий") == 0


def test_an_empty_trail_says_so(admin: AdminShop) -> None:
    page = _get(admin, "/admin/activity")
    assert "Nothing recorded." in page and 'id="older"' not in page


def test_an_archived_update_shows_who_archived_it_and_why(admin: AdminShop) -> None:
    admin.credit_log.fail_next = 1
    admin.buy(702)
    (failed,) = [u for u in admin.updates(processed=False) if u.kind == "successful_payment"]
    with admin.app.app_context():
        session = get_state().session
        row = session.get(UpdateLog, failed.id)
        assert row is not None
        row.archived_at, row.archived_by, row.archived_reason = utcnow(), "ops@example.com", "a test buyer"
        session.commit()
    page = _get(admin, f"/admin/updates/{failed.id}")
    assert 'id="archived"' in page and "ops@example.com" in page and "a test buyer" in page
    assert 'id="processed">no' in page and "the host's credit callback failed" in page


def test_entries_recorded_by_a_newer_version_still_show(admin: AdminShop) -> None:
    with admin.app.app_context():
        session = get_state().session
        session.add(AuditEntry(actor="x", source="cron", action="sweep", outcome="ok"))
        session.commit()
    page = _get(admin, "/admin/activity")
    assert "sweep" in page and "cron" in page


def test_every_dashboard_text_is_in_both_languages() -> None:
    assert [
        key for key, value in TEXTS.items() if set(value) != {"en", "ru"} or not all(value.values())
    ] == []
    for action in audit.ACTIONS:  # each action the filter offers has its label
        assert f"audit_action_{action}" in TEXTS
