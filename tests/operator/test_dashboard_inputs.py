"""Every id and filter the dashboard takes answers 400 or 404 when it is not one a row can
have, never 500: on PostgreSQL too, where a NUL cannot even be sent and ids past 2^31 once
overflowed 32-bit columns."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from flask_stars.sandbox import Sandbox
from tests.support.admin_app import AdminShop, served_admin

INT32_PAST = str(2**31)  # past the 32-bit INTEGER the ids once were on PostgreSQL
INT64_MAX = str(2**63 - 1)  # the largest id a BIGINT holds: no such row
INT64_PAST = str(2**63)  # past it: not an id at all
HUGE = "9" * 40

NOT_FOUND = [f"/admin/payments/{n}" for n in ("0", INT32_PAST, INT64_MAX, INT64_PAST, HUGE)] + [
    f"/admin/payments/{INT32_PAST}/refund",
    f"/admin/payments/{INT64_PAST}/refund",
    f"/admin/updates/{INT32_PAST}",
    f"/admin/updates/{INT64_PAST}",
    f"/admin/updates/{HUGE}",
    "/admin/updates/0",
    f"/admin/updates/{INT32_PAST}/replay",
    f"/admin/updates/{INT64_PAST}/replay",
    f"/admin/updates/{INT32_PAST}/archive",
    f"/admin/updates/{INT64_PAST}/archive",
    "/admin/updates/0/archive",
]
# No route takes these (the int converter has no sign): the host app's own 404.
UNROUTED = ["/admin/payments/-1", "/admin/updates/-1", "/admin/payments/1.5", "/admin/payments/%00"]

BAD_ARGUMENTS = [
    ("/admin/payments", {"pack": "\x00"}),
    ("/admin/payments", {"pack": "stars\x00pack_1"}),
    ("/admin/payments", {"charge": "\x00"}),
    ("/admin/payments", {"charge": "stx\x00"}),
    ("/admin/payments.csv", {"pack": "\x00"}),
    ("/admin/payments.csv", {"charge": "stx\x00"}),
    ("/admin/subscriptions", {"user": "\x00"}),
    ("/admin/activity", {"action": "\x00"}),
    ("/admin/activity", {"action": "refund\x00"}),
    ("/admin/activity", {"action": "drop table"}),
    ("/admin/updates", {"show": "\x00"}),
    ("/admin/updates", {"show": "everything"}),
]
for _path in ("/admin/payments", "/admin/updates", "/admin/subscriptions", "/admin/activity"):
    for _name in ("before", "after"):
        BAD_ARGUMENTS += [
            (_path, {_name: value}) for value in ("0", "-1", INT64_PAST, HUGE, "1e3", "\x00", "²")
        ]

GOOD_ARGUMENTS = [
    ("/admin/payments", {"before": INT32_PAST}),
    ("/admin/payments", {"after": INT64_MAX}),
    ("/admin/payments", {"user": INT32_PAST, "charge": "stx" + "é" * 10, "pack": "пакет"}),
    ("/admin/payments.csv", {"charge": "%ED%B2%80"}),  # invalid UTF-8 stays text, matches nothing
    ("/admin/updates", {"before": INT64_MAX}),
    ("/admin/updates", {"show": "archived", "after": INT32_PAST}),
    ("/admin/subscriptions", {"before": INT32_PAST, "user": INT64_MAX}),
    ("/admin/activity", {"before": INT64_MAX, "action": "reconcile"}),
    ("/admin/activity", {"after": INT32_PAST}),
]


@pytest.fixture
def admin(database_url: str, sandbox: Sandbox) -> Iterator[AdminShop]:
    with served_admin(database_url, sandbox) as shop:
        shop.app.config["PROPAGATE_EXCEPTIONS"] = False  # an exception must show as the 500 it is
        shop.buy(801)  # a row in each table, so every query reads something
        yield shop


def test_ids_no_row_can_have_answer_404(admin: AdminShop) -> None:
    client = admin.client()
    for path in NOT_FOUND:
        response = client.get(path)
        assert response.status_code == 404, (path, response.data[:300])
        assert response.mimetype == "text/html" and 'id="message"' in response.get_data(as_text=True)
        if path.endswith(("/refund", "/replay", "/archive")):
            assert client.post(path, data={"confirm": "yes"}).status_code == 404, path
    for path in UNROUTED:
        assert client.get(path).status_code == 404, path
    assert [p.status for p in admin.payments()] == ["paid"]


def test_arguments_no_row_can_match_answer_400_and_name_themselves(admin: AdminShop) -> None:
    client = admin.client()
    for path, query in BAD_ARGUMENTS:
        response = client.get(path, query_string=query)
        assert response.status_code == 400, (path, query, response.data[:300])
        assert response.mimetype == "text/html", (path, query)  # the page, not the start of a CSV
        page = response.get_data(as_text=True)
        (name,) = query
        assert f"not valid: {name}" in page or f"not a valid value for {name}" in page, (path, query)
        assert "\x00" not in page  # what could not be read is not echoed back


def test_arguments_a_row_can_match_are_answered(admin: AdminShop) -> None:
    client = admin.client()
    for path, query in GOOD_ARGUMENTS:
        response = client.get(path, query_string=query)
        assert response.status_code == 200, (path, query, response.data[:300])
        response.close()
