"""Prometheus metrics (STARS_METRICS): what moves them, what they read, and what they never do.

Each app gets a registry of its own, so no count leaks from one test into another. The
multiprocess test runs in a subprocess of its own, with PROMETHEUS_MULTIPROC_DIR set
before prometheus_client is imported, as gunicorn's workers would have it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from typing import Any

import pytest
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.test import Client

from flask_stars import StarsConfigError, signals
from flask_stars.metrics import make_metrics_app, metrics_registry, render_metrics
from tests.support import hostapp

METRICS = {"STARS_METRICS": True}


def sample(shop: Any, name: str, **labels: str) -> float:
    value = metrics_registry(shop.app).get_sample_value(name, labels)
    return 0.0 if value is None else value


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Some counts land after the reply is sent (the webhook's after-work): wait, bounded."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_purchase_moves_the_counters(make_shop):
    shop = make_shop(**METRICS)
    _, attempt = shop.buy(42)
    assert attempt.ok and attempt.payment is not None and attempt.payment.status == 200
    assert shop.balance(42) == 1_000_000
    assert sample(shop, "flask_stars_invoices_created_total", pack="stars_pack_1") == 1
    assert sample(shop, "flask_stars_payments_total", outcome="credited") == 1
    assert sample(shop, "flask_stars_stars_received_total", pack="stars_pack_1") == 10
    assert sample(shop, "flask_stars_stars_refunded_total", pack="stars_pack_1") == 0
    wait_for(lambda: sample(shop, "flask_stars_pre_checkouts_total", outcome="approved") == 1)
    assert sample(shop, "flask_stars_pre_checkout_answer_seconds_count") == 1
    assert 0 < sample(shop, "flask_stars_pre_checkout_answer_seconds_sum") < 10
    for kind in ("pre_checkout_query", "successful_payment"):
        assert sample(shop, "flask_stars_webhook_duration_seconds_count", kind=kind) == 1
        assert sample(shop, "flask_stars_webhook_failures_total", kind=kind) == 0
    assert sample(shop, "flask_stars_failed_updates") == 0
    assert sample(shop, "flask_stars_spool_files") == 0

    # A second purchase of the other pack counts under its own label.
    shop.buy(43, "stars_pack_2")
    assert sample(shop, "flask_stars_stars_received_total", pack="stars_pack_2") == 40
    assert sample(shop, "flask_stars_payments_total", outcome="credited") == 2


def test_answer_in_response_times_the_reply(make_shop):
    shop = make_shop(STARS_ANSWER_IN_RESPONSE=True, **METRICS)
    _, attempt = shop.buy(42)
    assert attempt.ok
    wait_for(lambda: sample(shop, "flask_stars_pre_checkout_answer_seconds_count") == 1)
    assert sample(shop, "flask_stars_pre_checkouts_total", outcome="approved") == 1


def test_a_refusal_counts_its_reason(make_shop):
    shop = make_shop(**METRICS)
    resp = shop.invoice(42)
    attempt = shop.tg.pay(resp.json()["invoice_url"], 42, total_amount=3)
    assert not attempt.ok
    wait_for(lambda: sample(shop, "flask_stars_pre_checkouts_total", outcome="wrong_amount") == 1)
    assert sample(shop, "flask_stars_pre_checkouts_total", outcome="approved") == 0
    assert sample(shop, "flask_stars_payments_total", outcome="credited") == 0


def test_a_refund_counts_refunded_stars(make_shop):
    shop = make_shop(**METRICS)
    _, attempt = shop.buy(42, "stars_pack_2")
    shop.tg.refund(attempt.charge_id)  # Telegram reports it: refunded_payment at the webhook
    wait_for(lambda: shop.balance(42) == 0)
    assert sample(shop, "flask_stars_payments_total", outcome="refunded") == 1
    assert sample(shop, "flask_stars_stars_refunded_total", pack="stars_pack_2") == 40
    assert sample(shop, "flask_stars_stars_received_total", pack="stars_pack_2") == 40
    assert sample(shop, "flask_stars_webhook_duration_seconds_count", kind="refunded_payment") == 1


def test_a_redelivery_counts_a_duplicate_and_no_second_credit(make_shop):
    shop = make_shop(**METRICS)
    _, attempt = shop.buy(42)
    assert attempt.payment_update is not None
    assert shop.post_webhook(attempt.payment_update).status_code == 200  # the same update again
    again = json.loads(json.dumps(attempt.payment_update))
    again["update_id"] += 1000  # the same charge in a new update
    assert shop.post_webhook(again).status_code == 200
    assert shop.balance(42) == 1_000_000
    assert sample(shop, "flask_stars_payments_total", outcome="credited") == 1
    assert sample(shop, "flask_stars_payments_total", outcome="duplicate_delivery") == 2
    assert sample(shop, "flask_stars_stars_received_total", pack="stars_pack_1") == 10
    assert sample(shop, "flask_stars_webhook_duration_seconds_count", kind="successful_payment") == 3


def test_failed_updates_and_spool_gauges_read_the_real_state(make_shop, tmp_path):
    shop = make_shop(STARS_SPOOL_DIR=str(tmp_path / "spool"), **METRICS)
    shop.credit_log.fail_next = 1
    _, attempt = shop.buy(42)
    assert attempt.payment is not None and attempt.payment.status == 500
    assert sample(shop, "flask_stars_failed_updates") == 1
    assert sample(shop, "flask_stars_payments_total", outcome="failed") == 1
    assert sample(shop, "flask_stars_webhook_failures_total", kind="successful_payment") == 1
    assert sample(shop, "flask_stars_payments_total", outcome="credited") == 0

    state = shop.app.extensions["stars"]
    state.spool.put(7, '{"update_id": 7}')
    state.spool.put(8, '{"update_id": 8}')
    assert sample(shop, "flask_stars_spool_files") == 2

    # The replay applies the kept update: the gauge reads 0 at the next scrape.
    result = shop.app.test_cli_runner().invoke(args=["stars", "replay", "--failed"])
    assert result.exit_code == 0, result.output
    assert shop.balance(42) == 1_000_000
    assert sample(shop, "flask_stars_failed_updates") == 0
    assert sample(shop, "flask_stars_payments_total", outcome="credited") == 1


def test_a_wrong_secret_is_timed_as_invalid_and_is_no_failure(make_shop):
    shop = make_shop(**METRICS)
    assert shop.post_webhook({"update_id": 1}, secret="wrong").status_code == 403
    assert sample(shop, "flask_stars_webhook_duration_seconds_count", kind="invalid") == 1
    assert sample(shop, "flask_stars_webhook_failures_total", kind="invalid") == 0


def test_a_broken_metric_never_fails_a_payment(make_shop, caplog):
    shop = make_shop(**METRICS)
    metrics = shop.app.extensions["stars"].metrics
    metrics.payments = metrics.stars_received = metrics.webhook_seconds = None  # every use raises
    _, attempt = shop.buy(42)
    assert attempt.ok and attempt.payment is not None and attempt.payment.status == 200
    assert shop.balance(42) == 1_000_000
    assert "flask_stars metrics" in caplog.text


def test_render_and_the_wsgi_app(make_shop):
    shop = make_shop(**METRICS)
    shop.buy(42)
    body, content_type = render_metrics(shop.app)
    assert content_type.startswith("text/plain")
    assert b'flask_stars_payments_total{outcome="credited"} 1.0' in body
    body, content_type = render_metrics(shop.app, accept="application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")

    # Mounted by the host where it wants it; flask_stars itself adds no route.
    assert not [r for r in shop.app.url_map.iter_rules() if "metrics" in r.rule]
    wsgi = DispatcherMiddleware(shop.app.wsgi_app, {"/internal/metrics": make_metrics_app(shop.app)})
    resp = Client(wsgi).get("/internal/metrics")
    assert resp.status_code == 200
    assert b"flask_stars_stars_received_total" in resp.data
    assert b"flask_stars_failed_updates 0.0" in resp.data


def test_metrics_are_off_by_default(make_shop):
    # Receivers of earlier tests' apps are held weakly and may go at any moment: compare
    # which receivers there are, so the claim is exactly "this app connected none".
    before = {s: set(s.receivers) for s in _all_signals()}
    shop = make_shop()
    state = shop.app.extensions["stars"]
    assert shop.app.config["STARS_METRICS"] is False
    assert state.metrics is None
    assert all(set(s.receivers) <= before[s] for s in _all_signals())
    _, attempt = shop.buy(42)
    assert attempt.payment is not None and attempt.payment.status == 200
    with pytest.raises(StarsConfigError, match="STARS_METRICS"):
        render_metrics(shop.app)


def _all_signals() -> list[Any]:
    return [
        signals.order_created,
        signals.payment_succeeded,
        signals.payment_duplicated,
        signals.payment_unmatched,
        signals.payment_refunded,
        signals.pre_checkout_rejected,
    ]


def test_metrics_on_without_prometheus_client_fail_at_start_up(database_url, monkeypatch):
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # import raises ImportError
    with pytest.raises(StarsConfigError, match=r"pip install 'flask-stars\[metrics\]'"):
        hostapp.create_app(database_url, **METRICS)


def test_metrics_must_be_a_flag(database_url):
    with pytest.raises(StarsConfigError, match="STARS_METRICS must be True or False"):
        hostapp.create_app(database_url, STARS_METRICS="yes")


def test_the_package_works_without_prometheus_client(tmp_path):
    code = textwrap.dedent(
        f"""
        import sys
        sys.modules["prometheus_client"] = None  # as if it were not installed
        from tests.support import hostapp
        app = hostapp.create_app("sqlite:///{tmp_path / "db.sqlite"}")
        assert app.extensions["stars"].metrics is None
        assert "prometheus_client" not in [m for m in sys.modules if sys.modules[m] is not None]
        """
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr


def test_a_missing_multiprocess_dir_fails_at_start_up(tmp_path):
    code = textwrap.dedent(
        f"""
        from flask_stars import StarsConfigError
        from tests.support import hostapp
        try:
            hostapp.create_app("sqlite:///{tmp_path / "db.sqlite"}", STARS_METRICS=True)
        except StarsConfigError as exc:
            assert "PROMETHEUS_MULTIPROC_DIR" in str(exc), exc
        else:
            raise SystemExit("no error")
        """
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "missing")}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert run.returncode == 0, run.stdout + run.stderr


MULTIPROCESS_SCRIPT = """
import multiprocessing
import sys
import types

from prometheus_client import multiprocess

from flask_stars import signals
from flask_stars.metrics import pre_checkout_answered, render_metrics, payment_outcome
from tests.support import hostapp

DB = sys.argv[1]


def worker(user_id):
    # One gunicorn worker: its own app (made after the fork, as with gunicorn's default).
    app = hostapp.create_app(DB, STARS_METRICS=True)
    state = app.extensions["stars"]
    order = types.SimpleNamespace(pack_id="stars_pack_1")
    payment = types.SimpleNamespace(pack_id="stars_pack_1", stars=10, problem=None)
    signals.order_created.send(app, order=order)
    signals.payment_succeeded.send(app, payment=payment, order=order)
    payment_outcome(state, "duplicate_delivery")
    pre_checkout_answered(state, "approved", 0.2 * user_id)


if __name__ == "__main__":
    ctx = multiprocessing.get_context("fork")
    pids = []
    for user_id in (1, 2):
        proc = ctx.Process(target=worker, args=(user_id,))
        proc.start()
        proc.join(30)
        assert proc.exitcode == 0, proc.exitcode
        pids.append(proc.pid)
    for pid in pids:
        multiprocess.mark_process_dead(pid)  # what gunicorn's child_exit hook does
    scraper = hostapp.create_app(DB, STARS_METRICS=True)  # another worker answers the scrape
    body, _ = render_metrics(scraper)
    sys.stdout.write(body.decode())
"""


def test_multiprocess_mode_sums_every_worker(tmp_path):
    prom_dir = tmp_path / "prom"
    prom_dir.mkdir()
    script = tmp_path / "workers.py"
    script.write_text(MULTIPROCESS_SCRIPT)
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(prom_dir), "PYTHONPATH": os.getcwd()}
    run = subprocess.run(
        [sys.executable, str(script), f"sqlite:///{tmp_path / 'db.sqlite'}"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    lines = set(run.stdout.splitlines())
    assert 'flask_stars_invoices_created_total{pack="stars_pack_1"} 2.0' in lines
    assert 'flask_stars_payments_total{outcome="credited"} 2.0' in lines
    assert 'flask_stars_payments_total{outcome="duplicate_delivery"} 2.0' in lines
    assert 'flask_stars_stars_received_total{pack="stars_pack_1"} 20.0' in lines
    assert 'flask_stars_pre_checkouts_total{outcome="approved"} 2.0' in lines
    assert "flask_stars_pre_checkout_answer_seconds_count 2.0" in lines
    assert 'flask_stars_pre_checkout_answer_seconds_bucket{le="0.25"} 1.0' in lines
    # The scrape-time gauges come from the scraping process, once.
    assert "flask_stars_failed_updates 0.0" in lines
    assert "flask_stars_spool_files 0.0" in lines
    assert list(prom_dir.glob("*.db")), "the workers wrote their values to files"
