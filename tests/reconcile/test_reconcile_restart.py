"""The example app restarted on its own database, a fresh sandbox, a lost webhook: Run now
credits the payment once and says that Telegram's list started over (issue 18, point 1)."""

from __future__ import annotations

import re

from flask_stars.audit import entries
from flask_stars.models import Payment, ReconcileRun
from flask_stars.reconcile import saved_position
from flask_stars.state import get_state
from tests.support.example_shop import drop_example_tables, example_run

BUYER, LATE_BUYER = 7001, 7002
PACK_CREDITS = 1_000_000  # stars_pack_1 of the example


def test_run_now_after_a_restart_credits_a_lost_payment_once_and_says_the_list_started_over(database_url):
    drop_example_tables(database_url)
    # The first run of `python -m example_app`: a purchase, and the nightly reconcile.
    with example_run(database_url) as first:
        paid = first.buy(BUYER)
        assert first.balance(BUYER) == PACK_CREDITS
        cron = first.app.test_cli_runner().invoke(args=["stars", "reconcile"])
        assert cron.exit_code == 0, cron.output
        with first.app.app_context():
            position = saved_position(get_state())
        assert position is not None and (position.offset, position.last_id) == (1, paid.charge_id)

    # Restarted on the same database: a fresh sandbox, whose transaction list starts empty.
    with example_run(database_url) as second:
        assert second.tg.transactions == []
        lost = second.buy(LATE_BUYER, deliver_payment=False)  # Telegram charged; the webhook is lost
        assert second.balance(LATE_BUYER) == 0

        admin = second.admin()
        done = admin.post("/admin/reconcile/run")  # no CSRF token, no confirmation: nothing runs
        assert done.status_code == 400 and second.balance(LATE_BUYER) == 0
        done = second.run_now(admin)
        assert done.status_code == 303, done.data
        assert second.balance(LATE_BUYER) == PACK_CREDITS  # credited, once
        assert second.balance(BUYER) == PACK_CREDITS  # the first buyer: not credited again
        (payment,) = second.rows(Payment, telegram_payment_charge_id=lost.charge_id)
        assert payment.credited and payment.found_at is not None

        runs = second.rows(ReconcileRun)
        run = runs[-1]
        assert run.ok is True and run.report is not None
        assert run.report["warning"] and run.report["position_problem"] == "moved"
        assert run.report["saved_offset"] == 1 and run.report["start_offset"] == 0
        assert run.report["full"] is True and run.report["credited"] == 1 and run.report["read"] == 1
        assert run.report["actor"] == "admin (dashboard)"

        page = admin.get(done.headers["Location"]).get_data(as_text=True)
        banner = re.search(r'<p role="status" class="(\w+)" id="done">(.*?)</p>', page, re.S)
        assert banner and banner.group(1) == "warn"  # not green
        assert "Telegram no longer lists the transaction saved at position 1" in banner.group(2)
        row = re.search(rf'<tr id="run-{run.id}">(.*?)</tr>', page, re.S)
        assert row and "warning" in row.group(1) and ">ok<" not in row.group(1)
        assert "read again from the start" in row.group(1)
        overview = admin.get("/admin/").get_data(as_text=True)
        assert 'id="warn-reconcile-warning"' in overview and 'id="reconcile-ok"' not in overview

        with second.app.app_context():
            (audit,) = entries(get_state(), target=str(run.id))
        assert (audit.action, audit.actor, audit.source, audit.outcome) == (
            "reconcile",
            "admin",
            "dashboard",
            "warning",
        )
        assert "no longer lists the transaction saved at position 1" in (audit.detail or "")

        # The webhook comes late after all: a duplicate, nothing more is credited.
        late = second.tg.deliver(lost.payment_update)
        assert late.status == 200
        assert second.balance(LATE_BUYER) == PACK_CREDITS
        assert len(second.rows(Payment, telegram_payment_charge_id=lost.charge_id)) == 1

        # The next nightly run resumes where Run now stopped, and says there is nothing new.
        cron = second.app.test_cli_runner().invoke(args=["stars", "reconcile"])
        assert cron.exit_code == 0, cron.output
        assert "no new transactions since position 1" in cron.output and "Warning" not in cron.output
        assert second.rows(ReconcileRun)[-1].report["warning"] is None
        overview = admin.get("/admin/").get_data(as_text=True)
        assert 'id="reconcile-ok"' in overview and "warn-reconcile-warning" not in overview
