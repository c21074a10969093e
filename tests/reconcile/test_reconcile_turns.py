"""Reconcile runs take turns: a second run is refused while one is under way, whoever starts
it (cron, Run now, two CLIs), and a run whose process died does not block for long
(issue 18, point 1)."""

from __future__ import annotations

import re
import threading
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from flask_stars import ReconcileBusy
from flask_stars.audit import python_actor
from flask_stars.botapi import BotGateway
from flask_stars.models import ReconcileRun, utcnow
from flask_stars.reconcile import STALE_AFTER, reconcile
from flask_stars.state import get_state
from tests.support.example_shop import ExampleShop, drop_example_tables, example_run


@pytest.fixture
def example(database_url: str) -> Any:
    drop_example_tables(database_url)
    with example_run(database_url) as shop:
        yield shop


class HeldTelegram:
    """getStarTransactions that waits for ``release`` (a run held mid-way, as a slow Telegram
    holds it), counting the runs that got that far."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.release = threading.Event()
        self.entered = threading.Semaphore(0)
        self.runs_inside = 0
        self._lock = threading.Lock()
        original = BotGateway.star_transactions

        def held(gateway: BotGateway, offset: int, limit: int = 100) -> list[dict[str, Any]]:
            with self._lock:
                self.runs_inside += 1
            self.entered.release()
            assert self.release.wait(30), "the test never released Telegram"
            return original(gateway, offset, limit)

        monkeypatch.setattr(BotGateway, "star_transactions", held)


def _run_in_thread(shop: ExampleShop, name: str, errors: list[BaseException]) -> threading.Thread:
    def run() -> None:
        with shop.app.app_context():
            try:
                reconcile(get_state(), actor=python_actor(name))
            except BaseException as exc:
                errors.append(exc)

    thread = threading.Thread(target=run, name=name)
    thread.start()
    return thread


def test_a_second_run_is_refused_while_one_is_under_way(example: ExampleShop, monkeypatch):
    example.buy(8001, deliver_payment=False)
    telegram = HeldTelegram(monkeypatch)
    errors: list[BaseException] = []
    cron = _run_in_thread(example, "nightly job", errors)
    assert telegram.entered.acquire(timeout=10)  # the cron's run is asking Telegram
    (running,) = example.rows(ReconcileRun)
    assert running.finished_at is None and running.ok is None
    assert running.report is not None and running.report["heartbeat_at"]  # its heartbeat
    assert running.report["actor"] == "nightly job (python)"

    # The CLI: one line, exit code 1, naming the run under way.
    result = example.app.test_cli_runner().invoke(args=["stars", "reconcile"])
    assert result.exit_code == 1
    assert f"A reconcile run is under way: run {running.id}, started " in result.output
    assert "by nightly job (python)" in result.output and "Traceback" not in result.output

    # The dashboard's Run now: refused on the page (409, not green, not a 500).
    admin = example.admin()
    answer = example.run_now(admin)
    assert answer.status_code == 409
    page = answer.get_data(as_text=True)
    alert = re.search(r'<p role="alert" class="warn" id="error">(.*?)</p>', page, re.S)
    assert alert and f"A reconcile run is under way (run {running.id}" in alert.group(1)
    assert "nightly job (python)" in alert.group(1) and 'id="done"' not in page

    # The Python API: the domain error, with the run it names.
    with example.app.app_context(), pytest.raises(ReconcileBusy) as refused:
        reconcile(get_state())
    assert refused.value.run_id == running.id and refused.value.started_by == "nightly job (python)"

    assert telegram.runs_inside == 1 and len(example.rows(ReconcileRun)) == 1  # no run was started
    telegram.release.set()
    cron.join(30)
    assert not cron.is_alive() and errors == []
    assert example.balance(8001) == 1_000_000  # the cron's run credited the lost payment, once
    (done,) = example.rows(ReconcileRun)
    assert done.ok is True and done.report["credited"] == 1

    # Its turn over, the next run goes.
    assert example.app.test_cli_runner().invoke(args=["stars", "reconcile"]).exit_code == 0
    assert [r.ok for r in example.rows(ReconcileRun)] == [True, True]


def test_runs_starting_at_the_same_moment_never_both_start(example: ExampleShop, monkeypatch):
    example.buy(8002, deliver_payment=False)
    telegram = HeldTelegram(monkeypatch)
    errors: list[BaseException] = []
    threads = [_run_in_thread(example, f"runner {n}", errors) for n in range(4)]
    # Every runner either got in (and waits in Telegram) or was refused.
    for _ in range(100):
        if len(errors) + telegram.runs_inside == len(threads):
            break
        threading.Event().wait(0.1)
    assert telegram.runs_inside == 1
    assert len(errors) == 3 and all(isinstance(e, ReconcileBusy) for e in errors)
    telegram.release.set()
    for thread in threads:
        thread.join(30)
    assert len(example.rows(ReconcileRun)) == 1
    assert example.balance(8002) == 1_000_000


def _add_run(example: ExampleShop, started_ago: timedelta, heartbeat_ago: timedelta | None) -> int:
    now = utcnow()
    report: dict[str, Any] | None = None
    if heartbeat_ago is not None:
        report = {"actor": "somebody (cli)", "heartbeat_at": (now - heartbeat_ago).isoformat()}
    with example.app.app_context():
        session = get_state().session
        run_id = session.execute(
            sa.insert(ReconcileRun)
            .values(started_at=now - started_ago, report=report)
            .returning(ReconcileRun.id)
        ).scalar_one()
        session.commit()
    return run_id


def test_a_run_whose_process_died_does_not_block_for_long(example: ExampleShop):
    example.buy(8003, deliver_payment=False)
    runner = example.app.test_cli_runner()
    # A run that still beats (its last page a minute ago) blocks.
    alive = _add_run(example, timedelta(minutes=30), timedelta(minutes=1))
    result = runner.invoke(args=["stars", "reconcile"])
    assert result.exit_code == 1 and f"run {alive}" in result.output and "somebody (cli)" in result.output

    # Its heartbeat grows stale (the process died): the next run marks it failed and goes.
    with example.app.app_context():
        session = get_state().session
        old = (utcnow() - STALE_AFTER - timedelta(minutes=1)).isoformat()
        session.execute(
            sa.update(ReconcileRun)
            .where(ReconcileRun.id == alive)
            .values(report={"actor": "somebody (cli)", "heartbeat_at": old})
        )
        session.commit()
    # And a run of an older release, with no heartbeat, started an hour ago.
    legacy = _add_run(example, timedelta(hours=1), None)
    result = runner.invoke(args=["stars", "reconcile"])
    assert result.exit_code == 0, result.output
    assert example.balance(8003) == 1_000_000
    runs = {run.id: run for run in example.rows(ReconcileRun)}
    for dead in (alive, legacy):
        assert runs[dead].ok is False and runs[dead].error.startswith("did not finish: no sign of life since")
        assert runs[dead].finished_at is not None and runs[dead].finished_at <= utcnow() - STALE_AFTER
    assert max(runs) not in (alive, legacy) and runs[max(runs)].ok is True
    page = example.admin().get("/admin/reconcile").get_data(as_text=True)
    assert "did not finish" in page
