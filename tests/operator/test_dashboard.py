"""The operator's dashboard (flask_stars.dashboard) with Flask's test client, on SQLite.

Purchases go through the sandbox and the real webhook; the dashboard is read and driven
with ``app.test_client()``.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from flask_stars import StarsConfigError
from flask_stars.dashboard import dashboard_bp
from flask_stars.models import Payment, ReconcileRun, UpdateLog, utcnow
from flask_stars.sandbox import Sandbox
from flask_stars.testing import TEST_TOKEN, connect, serve
from tests.support import hostapp
from tests.support.admin_app import AdminShop, form_token, served_admin
from tests.support.rows import payment_row
from tests.support.shop import Shop

PAGES = [
    "/admin/",
    "/admin/?days=90",
    "/admin/payments",
    "/admin/payments.csv",
    "/admin/payments/1",
    "/admin/payments/1/refund",
    "/admin/updates",
    "/admin/updates/replay-failed",
    "/admin/subscriptions",
    "/admin/reconcile",
    "/admin/reconcile/run",
    "/admin/static/dashboard.css",
]


@pytest.fixture
def admin(database_url: str, sandbox: Sandbox) -> Iterator[AdminShop]:
    with served_admin(database_url, sandbox) as shop:
        yield shop


def _payment_id(shop: Shop, charge_id: str) -> int:
    (payment,) = shop.payments(telegram_payment_charge_id=charge_id)
    return payment.id


# --- access ---------------------------------------------------------------------------------


def test_registering_without_an_access_check_fails() -> None:
    app = Flask(__name__)
    with pytest.raises(StarsConfigError, match="needs an access check"):
        app.register_blueprint(dashboard_bp, url_prefix="/admin")
    assert "stars_dashboard" not in app.blueprints
    with pytest.raises(StarsConfigError, match="must be callable"):
        Flask(__name__).register_blueprint(dashboard_bp, url_prefix="/admin", access=True)


def test_a_check_that_says_no_answers_403_on_every_page_and_shows_no_data(admin: AdminShop) -> None:
    _, attempt = admin.buy(101)
    charge = attempt.charge_id
    assert charge
    admin.allowed = False
    client = admin.client()
    for path in PAGES:
        response = client.get(path)
        assert response.status_code == 403, path
        assert charge.encode() not in response.data and b"101" not in response.data
    for path in (
        "/admin/payments/1/refund",
        "/admin/updates/replay-failed",
        "/admin/updates/1/replay",
        "/admin/reconcile/run",
    ):
        response = client.post(path, data={"confirm": "yes"})
        assert response.status_code == 403, path
    assert [p.status for p in admin.payments()] == ["paid"]
    admin.allowed = True
    assert client.get("/admin/").status_code == 200


def test_a_decorator_can_guard_it_and_answer_instead(database_url: str) -> None:
    from flask import redirect, session

    def login_required(view: Any) -> Any:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            return view(*args, **kwargs) if session.get("in") else redirect("/login")

        return wrapped

    app = Flask(__name__)
    app.config.update(
        SECRET_KEY="x",
        SQLALCHEMY_DATABASE_URI=database_url,
        STARS_BOT_TOKEN=TEST_TOKEN,
        STARS_PACKS=hostapp.PACKS,
        STARS_CREDIT_CALLBACK="tests.support.hostapp:credit_coins",
    )
    from flask_stars import stars_bp

    app.register_blueprint(stars_bp)
    app.register_blueprint(dashboard_bp, url_prefix="/ops", decorator=login_required)
    client = app.test_client()
    assert client.get("/ops/payments").headers["Location"] == "/login"
    with client.session_transaction() as s:
        s["in"] = True
    assert client.get("/ops/payments").status_code == 200


# --- overview and payments --------------------------------------------------------------------


def test_a_sandbox_purchase_shows_on_the_overview_and_in_the_payments(admin: AdminShop) -> None:
    _, attempt = admin.buy(201, "stars_pack_2")
    client = admin.client()
    page = client.get("/admin/").get_data(as_text=True)
    assert 'id="received">40 ⭐' in page
    assert 'data-pack="stars_pack_2"' in page  # a bar segment of the chart
    assert 'id="conversion">1 / 1' in page
    today = utcnow().date().isoformat()
    assert re.search(rf"<th scope=\"row\">{today}</th>.*?<td>40 <small>\(1\)</small></td>", page, re.S)
    assert "Reconcile has never run" in page  # no run of reconcile recorded: said so
    listing = client.get("/admin/payments").get_data(as_text=True)
    assert attempt.charge_id in listing
    detail = client.get(f"/admin/payments/{_payment_id(admin, attempt.charge_id)}").get_data(as_text=True)
    assert "successful_payment" in detail and attempt.charge_id in detail  # the raw update behind it
    assert 'id="refund"' in detail


def test_the_overview_speaks_russian_by_accept_language(admin: AdminShop) -> None:
    page = admin.client(**{"Accept-Language": "ru-RU,ru;q=0.9,en;q=0.5"}).get("/admin/")
    assert "Получено звёзд" in page.get_data(as_text=True)
    assert '<html lang="ru">' in page.get_data(as_text=True)
    assert "Stars received" in admin.client().get("/admin/").get_data(as_text=True)


def _add_history(shop: Shop, count: int, **values: Any) -> None:
    """Ledger rows written straight to the table (history for pages and filters)."""
    now = utcnow()
    with shop.app.app_context():
        session = shop.app.extensions["stars"].session
        rows = [
            {
                "telegram_payment_charge_id": f"hist-{values.get('pack_id', 'p')}-{i}-{now.timestamp()}",
                "user_id": values.get("user_id", 300 + i % 3),
                "payer_id": values.get("user_id", 300 + i % 3),
                "pack_id": values.get("pack_id", "stars_pack_1"),
                "stars": 10,
                "currency": "XTR",
                "invoice_payload": "order:x",
                "status": values.get("status", "paid"),
                "credited": True,
                "paid_at": values.get("paid_at", now - timedelta(minutes=count - i)),
            }
            for i in range(count)
        ]
        session.execute(sa.insert(Payment), rows)
        session.commit()


def test_filters_and_keyset_pages(admin: AdminShop) -> None:
    _add_history(admin, 120)
    _add_history(admin, 5, pack_id="stars_pack_2", status="refunded", user_id=999)
    _add_history(admin, 3, paid_at=utcnow() - timedelta(days=40))
    client = admin.client()

    def ids(path: str) -> tuple[list[int], Any]:
        html = client.get(path).get_data(as_text=True)
        found = [int(x) for x in re.findall(r'href="/admin/payments/(\d+)"', html)]
        older = re.search(r'id="older" href="([^"]+)"', html)
        newer = re.search(r'id="newer" href="([^"]+)"', html)
        return found, (
            older and older.group(1).replace("&amp;", "&"),
            newer and newer.group(1).replace("&amp;", "&"),
        )

    first, (older, newer) = ids("/admin/payments")
    assert len(first) == 50 and first == sorted(first, reverse=True) and newer is None
    second, (older2, newer2) = ids(older)
    assert len(second) == 50 and max(second) < min(first)
    third, (older3, _) = ids(older2)
    assert len(third) == 28 and older3 is None  # 128 rows in all
    back, _ = ids(newer2)
    assert back == first  # "newer" from page 2 is page 1 again

    assert len(ids("/admin/payments?user=999")[0]) == 5
    assert len(ids("/admin/payments?pack=stars_pack_2&status=refunded")[0]) == 5
    assert ids("/admin/payments?status=paid&user=999")[0] == []
    old_day = (utcnow() - timedelta(days=40)).date().isoformat()
    assert len(ids(f"/admin/payments?date_from={old_day}&date_to={old_day}")[0]) == 3
    charge = admin.payments(user_id=999)[0].telegram_payment_charge_id
    assert len(ids(f"/admin/payments?charge={charge}")[0]) == 1
    html = client.get("/admin/payments?user=abc&date_from=yesterday").get_data(as_text=True)
    assert "not valid: user" in html and "not valid: date_from" in html
    # The overview's 30 days leave out the 40-day-old rows, 90 days count them.
    assert 'id="received">1,250 ⭐' in client.get("/admin/").get_data(as_text=True)
    assert 'id="received">1,280 ⭐' in client.get("/admin/?days=90").get_data(as_text=True)


def test_csv_streams_the_filtered_rows(admin: AdminShop) -> None:
    _add_history(admin, 2_300)
    _add_history(admin, 4, pack_id="stars_pack_2")
    client = admin.client()
    response = client.get("/admin/payments.csv")
    assert response.is_streamed and response.mimetype == "text/csv"
    chunks = list(response.response)
    assert len(chunks) > 10  # written as it is read, not built whole
    rows = list(csv.reader(io.StringIO("".join(c.decode() if isinstance(c, bytes) else c for c in chunks))))
    assert rows[0][:3] == ["id", "charge_id", "user_id"] and len(rows) == 1 + 2_304
    ids = [int(r[0]) for r in rows[1:]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids)
    filtered = list(
        csv.reader(io.StringIO(client.get("/admin/payments.csv?pack=stars_pack_2").get_data(as_text=True)))
    )
    assert len(filtered) == 5 and {r[4] for r in filtered[1:]} == {"stars_pack_2"}


# --- actions that move money ------------------------------------------------------------------


def test_refund_from_the_dashboard_needs_csrf_and_confirmation_and_debits_once(admin: AdminShop) -> None:
    _, attempt = admin.buy(401)
    charge = attempt.charge_id
    assert admin.balance(401) == 1_000_000
    pid = _payment_id(admin, charge)
    client = admin.client()
    path = f"/admin/payments/{pid}/refund"
    token = form_token(client, path)  # the confirmation page

    assert client.post(path, data={"confirm": "yes"}).status_code == 400  # no CSRF token
    assert client.post(path, data={"confirm": "yes", "csrf_token": "forged" * 8}).status_code == 400
    other = admin.client()
    form_token(other, path)
    assert (
        other.post(path, data={"confirm": "yes", "csrf_token": token}).status_code == 400
    )  # another session's
    assert client.post(path, data={"csrf_token": token}).status_code == 400  # not confirmed
    assert [p.status for p in admin.payments()] == ["paid"]
    assert admin.balance(401) == 1_000_000 and admin.credit_log.debits == []
    assert admin.tg.calls_to("refundStarPayment") == []

    done = client.post(path, data={"confirm": "yes", "csrf_token": token, "reason": "asked by the buyer"})
    assert done.status_code == 303 and done.headers["Location"].endswith(
        f"/admin/payments/{pid}?done=refunded"
    )
    assert admin.balance(401) == 0
    assert admin.credit_log.debits == [charge]
    assert len(admin.tg.calls_to("refundStarPayment")) == 1
    page = client.get(done.headers["Location"]).get_data(as_text=True)
    assert 'id="done"' in page and 'id="status" class="status-refunded">refunded' in page
    assert 'id="refund"' not in page

    again = client.post(path, data={"confirm": "yes", "csrf_token": token})
    assert again.status_code == 303
    assert admin.credit_log.debits == [charge] and admin.balance(401) == 0  # once


def test_replay_of_a_failed_update_credits_once(admin: AdminShop) -> None:
    admin.credit_log.fail_next = 1
    _, attempt = admin.buy(501)
    assert admin.balance(501) == 0
    (failed,) = [u for u in admin.updates(processed=False) if u.kind == "successful_payment"]
    client = admin.client()
    assert "1 payment update(s) failed" in client.get("/admin/").get_data(as_text=True)
    listing = client.get("/admin/updates").get_data(as_text=True)
    assert f"/admin/updates/{failed.id}/replay" in listing

    path = f"/admin/updates/{failed.id}/replay"
    token = form_token(client, path)
    assert client.post(path, data={"confirm": "yes"}).status_code == 400
    assert client.post(path, data={"csrf_token": token}).status_code == 400
    assert admin.balance(501) == 0

    result = client.post(path, data={"confirm": "yes", "csrf_token": token})
    assert result.status_code == 200 and "Replayed 1 of 1." in result.get_data(as_text=True)
    assert admin.balance(501) == 1_000_000
    assert admin.credit_log.credits.count(attempt.charge_id) == 1
    assert client.post(path, data={"confirm": "yes", "csrf_token": token}).status_code == 200
    all_failed = client.post("/admin/updates/replay-failed", data={"confirm": "yes", "csrf_token": token})
    assert all_failed.status_code == 200
    assert admin.credit_log.credits.count(attempt.charge_id) == 1 and admin.balance(501) == 1_000_000
    assert "No failed updates" in client.get("/admin/updates").get_data(as_text=True)
    assert admin.updates(processed=False) == [] or all(
        u.kind == "pre_checkout_query" for u in admin.updates(processed=False)
    )


def test_flask_wtf_csrf_is_used_when_the_host_has_it(database_url: str, sandbox: Sandbox) -> None:
    csrf_mod = pytest.importorskip("flask_wtf.csrf")
    app = hostapp.create_app(database_url, STARS_API_URL=sandbox.url, SECRET_KEY="wtf")
    from flask_stars import stars_bp

    csrf_mod.CSRFProtect(app).exempt(stars_bp)  # set up after the blueprint: exempted by hand
    app.register_blueprint(dashboard_bp, url_prefix="/admin", access=lambda: True)
    with serve(app) as base:
        connect(app, sandbox, base)
        shop = Shop(app, base, sandbox)
        _, attempt = shop.buy(601)
        client = app.test_client()
        pid = _payment_id(shop, attempt.charge_id)
        path = f"/admin/payments/{pid}/refund"
        token = form_token(client, path)
        assert client.post(path, data={"confirm": "yes"}).status_code == 400
        assert shop.balance(601) == 1_000_000
        assert client.post(path, data={"confirm": "yes", "csrf_token": token}).status_code == 303
        assert shop.balance(601) == 0
    with app.app_context():
        for engine in hostapp.db.engines.values():
            engine.dispose()


def test_update_rows_of_a_payment_are_found_by_its_update_id(admin: AdminShop) -> None:
    _, attempt = admin.buy(701)
    (payment,) = admin.payments(telegram_payment_charge_id=attempt.charge_id)
    rows = [u for u in admin.updates() if u.update_id == payment.update_id]
    assert rows and all(isinstance(u, UpdateLog) for u in rows)
    page = admin.client().get(f"/admin/payments/{payment.id}").get_data(as_text=True)
    assert f"#{rows[0].id} · successful_payment" in page


# --- reconcile: the runs, Run now, and the overview's warning ----------------------------------


def _set_run(shop: Shop, **values: Any) -> None:
    """Move the newest recorded run (its times, its outcome) as a test needs it."""
    with shop.app.app_context():
        session = shop.app.extensions["stars"].session
        newest = session.scalar(sa.select(sa.func.max(ReconcileRun.id)))
        session.execute(sa.update(ReconcileRun).where(ReconcileRun.id == newest).values(**values))
        session.commit()


def test_run_now_needs_csrf_and_confirmation_and_is_recorded(admin: AdminShop) -> None:
    order = admin.invoice(801).json()
    admin.tg.pay(order["invoice_url"], 801, deliver_payment=False)  # the webhook never came
    client = admin.client()
    page = client.get("/admin/reconcile").get_data(as_text=True)
    assert "No run recorded yet." in page and 'id="run-now"' in page
    assert 'href="/admin/reconcile" aria-current="page"' in page  # in the nav
    assert 'href="/admin/reconcile"' in client.get("/admin/").get_data(as_text=True)

    path = "/admin/reconcile/run"
    token = form_token(client, path)  # the confirmation page
    assert client.post(path, data={"confirm": "yes"}).status_code == 400  # no CSRF token
    assert client.post(path, data={"confirm": "yes", "csrf_token": "forged" * 8}).status_code == 400
    assert client.post(path, data={"csrf_token": token}).status_code == 400  # not confirmed
    assert admin.rows(ReconcileRun) == [] and admin.tg.calls_to("getStarTransactions") == []
    assert admin.balance(801) == 0

    done = client.post(path, data={"confirm": "yes", "csrf_token": token})
    assert done.status_code == 303 and done.headers["Location"].endswith("/admin/reconcile?done=ran")
    assert admin.balance(801) == 1_000_000  # credited once, by reconcile's own code
    (run,) = admin.rows(ReconcileRun)
    assert run.ok is True and run.report is not None and run.report["credited"] == 1
    page = client.get(done.headers["Location"]).get_data(as_text=True)
    assert 'id="done"' in page and f'id="run-{run.id}"' in page
    row = re.search(rf'<tr id="run-{run.id}">(.*?)</tr>', page, re.S)
    assert row and ">ok<" in row.group(1) and "<td>1</td>" in row.group(1)
    assert "Reconcile ran" in client.get("/admin/").get_data(as_text=True)

    ru = admin.client(**{"Accept-Language": "ru"}).get("/admin/reconcile").get_data(as_text=True)
    assert "Запуски сверки" in ru and "успешно" in ru


def test_a_failed_run_now_shows_and_records_its_error(admin: AdminShop) -> None:
    client = admin.client()
    path = "/admin/reconcile/run"
    token = form_token(client, path)
    admin.tg.fail("getStarTransactions", 400, "Bad Request: no transactions today")
    answer = client.post(path, data={"confirm": "yes", "csrf_token": token})
    assert answer.status_code == 502
    page = answer.get_data(as_text=True)
    assert "Reconcile failed" in page and "no transactions today" in page
    (run,) = admin.rows(ReconcileRun)
    assert run.ok is False and run.error and "no transactions today" in run.error
    overview = client.get("/admin/").get_data(as_text=True)
    assert 'id="warn-reconcile-failed"' in overview and "no transactions today" in overview
    assert "Reconcile has never run" in overview  # nor has one ever succeeded


def test_the_overview_warning_follows_the_last_run(admin: AdminShop) -> None:
    client = admin.client()
    runner = admin.app.test_cli_runner()
    assert 'id="warn-reconcile"' in client.get("/admin/").get_data(as_text=True)

    assert runner.invoke(args=["stars", "reconcile"]).exit_code == 0  # the CLI's runs count too
    page = client.get("/admin/").get_data(as_text=True)
    assert 'id="reconcile-ok"' in page and 'id="warn-reconcile"' not in page

    long_ago = utcnow() - timedelta(days=2)
    finished = long_ago + timedelta(seconds=3)
    _set_run(admin, started_at=long_ago, finished_at=finished)
    page = client.get("/admin/").get_data(as_text=True)
    assert 'id="warn-reconcile"' in page and "has not run for a day" in page
    assert finished.strftime("%Y-%m-%d %H:%M") in page  # when it last finished (not started)
    ru = admin.client(**{"Accept-Language": "ru"}).get("/admin/").get_data(as_text=True)
    assert "Сверка не запускалась больше суток" in ru

    # A newer run that failed: the warning stays, and the failure is named too.
    admin.tg.fail("getStarTransactions", 400, "Bad Request: down")
    assert runner.invoke(args=["stars", "reconcile"]).exit_code == 1
    page = client.get("/admin/").get_data(as_text=True)
    assert "has not run for a day" in page and 'id="warn-reconcile-failed"' in page

    assert runner.invoke(args=["stars", "reconcile"]).exit_code == 0
    page = client.get("/admin/").get_data(as_text=True)
    assert 'id="reconcile-ok"' in page and "warn-reconcile" not in page
    listing = client.get("/admin/reconcile").get_data(as_text=True)
    assert listing.count('<tr id="run-') == 3 and "down" in listing and "3.0 s" in listing


# --- bad input, errors, and what a page costs ---------------------------------------------------

HUGE = "99999999999999999999"  # past a signed 64-bit integer


def _engine(shop: Shop) -> sa.Engine:
    with shop.app.app_context():
        bind = shop.app.extensions["stars"].session.get_bind()
    assert isinstance(bind, sa.Engine)
    return bind


class _Statements:
    """The SQL statements an engine runs while counting (a before_cursor_execute listener)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.seen: list[str] = []

    def _record(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.seen.append(statement)

    def __enter__(self) -> _Statements:
        sa.event.listen(self.engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *exc: object) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._record)

    def selects(self, table: str) -> list[str]:
        return [s for s in self.seen if s.lstrip().upper().startswith("SELECT") and f"FROM {table}" in s]


@pytest.mark.parametrize(
    ("path", "query", "status"),
    [
        ("/admin/payments", {"user": HUGE}, 400),
        ("/admin/payments", {"user": "²"}, 400),
        ("/admin/payments", {"user": "--5"}, 400),
        ("/admin/subscriptions", {"user": HUGE}, 400),
        ("/admin/subscriptions", {"user": "²"}, 400),
        ("/admin/payments", {"before": HUGE}, 400),
        ("/admin/payments", {"after": HUGE}, 400),
        ("/admin/updates", {"before": HUGE}, 400),
        ("/admin/updates", {"after": "²"}, 400),
        ("/admin/subscriptions", {"before": HUGE}, 400),
        ("/admin/payments", {"date_to": "9999-12-31"}, 400),
        ("/admin/payments.csv", {"date_to": "9999-12-31"}, 400),
        ("/admin/payments.csv", {"user": HUGE}, 400),
        ("/admin/payments.csv", {"date_from": "yesterday"}, 400),
        (f"/admin/payments/{HUGE}", {}, 404),
        (f"/admin/payments/{HUGE}/refund", {}, 404),
        (f"/admin/updates/{HUGE}/replay", {}, 404),
    ],
)
def test_bad_input_is_a_clear_400_or_404_never_a_500(
    admin: AdminShop, path: str, query: dict[str, str], status: int
) -> None:
    admin.app.config["PROPAGATE_EXCEPTIONS"] = False  # an exception must show as the 500 it is
    client = admin.client()
    response = client.get(path, query_string=query)
    assert response.status_code == status, (path, query, response.data[:300])
    assert response.mimetype == "text/html"  # the error page, not the start of a CSV
    page = response.get_data(as_text=True)
    assert 'id="message"' in page or "not valid" in page
    if path.endswith(("/refund", "/replay")):
        assert client.post(path, data={"confirm": "yes"}).status_code == 404


def test_the_csv_refuses_a_bad_filter_before_it_streams_and_names_it(admin: AdminShop) -> None:
    _add_history(admin, 3)
    response = admin.client().get("/admin/payments.csv?user=abc")
    assert response.status_code == 400 and response.mimetype == "text/html"
    assert "not a valid value for user" in response.get_data(as_text=True)
    page = admin.client().get("/admin/payments?date_to=9999-12-31")
    assert page.status_code == 400 and "not valid: date_to" in page.get_data(as_text=True)
    assert 'href="/admin/payments/' not in page.get_data(as_text=True)  # no rows of another query


def test_an_unexpected_error_says_so_and_is_logged(
    admin: AdminShop, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from flask_stars import reports

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(reports, "revenue", broken)
    admin.app.config["PROPAGATE_EXCEPTIONS"] = False
    with caplog.at_level("ERROR"):
        response = admin.client().get("/admin/")
    assert response.status_code == 500
    page = response.get_data(as_text=True)
    assert "This request is not valid" not in page and "went wrong on the server" in page
    assert any("the database went away" in (r.exc_text or r.getMessage()) for r in caplog.records) or any(
        r.exc_info and "the database went away" in str(r.exc_info[1]) for r in caplog.records
    )


def test_the_csv_holds_no_transaction_while_the_client_reads_and_reads_one_select_a_chunk(
    admin: AdminShop,
) -> None:
    _add_history(admin, 2_300)
    engine = _engine(admin)
    assert isinstance(engine.pool, sa.pool.QueuePool)
    with _Statements(engine) as statements:
        response = admin.client().get("/admin/payments.csv")
        assert response.status_code == 200 and response.is_streamed
        chunks = 0
        for _ in response.response:
            chunks += 1
            # Between chunks the client reads: no connection (so no transaction) is held.
            assert engine.pool.checkedout() == 0, f"a transaction is open at chunk {chunks}"
        response.close()
    assert chunks > 10
    # 2,300 rows: three chunks of at most 1,000, one SELECT each, no SELECT per row.
    assert len(statements.selects("stars_payments")) == 3, statements.selects("stars_payments")[:5]


def test_the_payments_page_costs_a_bounded_number_of_statements(admin: AdminShop) -> None:
    _add_history(admin, 30)
    client = admin.client()
    client.get("/admin/payments")  # warm: the first request may prepare the database
    with _Statements(_engine(admin)) as statements:
        page = client.get("/admin/payments")
    assert page.status_code == 200
    assert len(re.findall(r'href="/admin/payments/(\d+)"', page.get_data(as_text=True))) == 30
    assert len(statements.selects("stars_payments")) == 1, statements.seen
    assert len(statements.seen) <= 5, statements.seen  # not one per row
    pid = admin.payments()[0].id
    with _Statements(_engine(admin)) as statements:
        assert client.get(f"/admin/payments/{pid}").status_code == 200
    assert len(statements.selects("stars_payments")) == 1, statements.seen


def test_all_well_is_not_shown_next_to_a_refund_still_due(admin: AdminShop) -> None:
    from flask_stars import ledger
    from flask_stars.rules import refund_due

    client = admin.client()
    assert 'id="all-well"' in client.get("/admin/").get_data(as_text=True)
    with admin.app.app_context():
        state = admin.app.extensions["stars"]
        session = state.session
        session.execute(
            sa.insert(Payment),
            [payment_row("second-pay", credited=False, problem="order_already_paid", paid_at=utcnow())],
        )
        session.commit()
        # The overview counts what ``ledger.due_refunds`` would give back: one clause for both.
        assert ledger.due_refunds(state) == ["second-pay"]
        assert session.scalar(sa.select(sa.func.count()).where(refund_due.clause())) == 1
    page = client.get("/admin/").get_data(as_text=True)
    assert 'id="warn-due"' in page
    assert 'id="all-well"' not in page and "No failed updates" not in page
