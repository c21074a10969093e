"""Prometheus metrics, off unless the host sets ``STARS_METRICS = True``.

Money outcomes are counted by receivers of the blinker signals, which are sent after the
commit, so a count never runs ahead of the ledger. What has no signal (a redelivery, a
failed update, timings) is reported by a one-line hook in the intake or the webhook view.
Every hook and receiver here swallows and logs its own errors: metrics never fail a payment.

``prometheus_client`` is imported only when metrics are on (``pip install
'flask-stars[metrics]'``). Under gunicorn with several workers, set
``PROMETHEUS_MULTIPROC_DIR`` before the server starts (see the docs' metrics guide).
flask_stars adds no route: the host serves ``render_metrics()`` from its own view or
mounts ``make_metrics_app(app)``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from flask import Flask
from werkzeug.exceptions import HTTPException

from . import signals
from .errors import StarsConfigError
from .models import UpdateLog
from .transaction import end_read

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric

    from .models import Order, Payment
    from .state import StarsState

log = logging.getLogger(__name__)

PREFIX = "flask_stars_"
#: Telegram wants a pre-checkout answered within 10 s: the buckets are fine up to there.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0)
#: Seconds the scrape-time count of failed updates may take (PostgreSQL statement_timeout).
SCRAPE_QUERY_TIMEOUT_MS = 5000
NO_PACK = "none"  # the pack label of a payment that names no order


def _import_prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError:
        raise StarsConfigError(
            "STARS_METRICS is on but prometheus_client is not installed: pip install 'flask-stars[metrics]'"
        ) from None
    return prometheus_client


def _multiprocess_dir() -> str | None:
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path and not os.path.isdir(path):
        raise StarsConfigError(
            f"PROMETHEUS_MULTIPROC_DIR={path!r} is not a directory: create an empty one "
            "before the server starts"
        )
    return path or None


def _logged(fn: Callable[..., None]) -> Callable[..., None]:
    """A receiver or hook that logs its errors and never raises (a payment must go on)."""

    def safe(*args: Any, **kwargs: Any) -> None:
        try:
            fn(*args, **kwargs)
        except Exception:
            log.exception("flask_stars metrics: %s failed", fn.__name__)

    safe.__name__ = fn.__name__
    safe.__doc__ = fn.__doc__
    return safe


class StarsMetrics:
    """One app's Prometheus metrics: the counters and histograms, and what renders them.

    Made by ``setup_app`` when ``STARS_METRICS`` is on and kept in ``state.metrics``. In
    one process, the metrics live in a registry of this app's own (``registry``); with
    ``PROMETHEUS_MULTIPROC_DIR`` set, every worker writes its values to files there and
    ``registry`` sums them all at scrape time. Either way ``registry`` also holds the
    gauges read at scrape time (failed updates, spool files).
    """

    def __init__(self, state: StarsState) -> None:
        prom = _import_prometheus()
        self.app = state.app
        self.multiprocess_dir = _multiprocess_dir()
        # In multiprocess mode the values go to files whatever the registry: registering
        # them nowhere keeps a second app in the same process from clashing on names.
        own = None if self.multiprocess_dir else prom.CollectorRegistry()
        counter, histogram = prom.Counter, prom.Histogram
        self.invoices = counter(
            PREFIX + "invoices_created", "Orders made with an invoice link, by pack", ["pack"], registry=own
        )
        self.pre_checkouts = counter(
            PREFIX + "pre_checkouts",
            "Pre-checkout queries answered: outcome is approved or the refusal's reason",
            ["outcome"],
            registry=own,
        )
        self.payments = counter(
            PREFIX + "payments",
            "Payment and refund outcomes (credited, duplicate_delivery, unmatched, "
            "order_already_paid, refunded_before_paid, refunded, refund_noted, failed)",
            ["outcome"],
            registry=own,
        )
        self.stars_received = counter(
            PREFIX + "stars_received",
            "Stars of payments recorded in the ledger, by pack",
            ["pack"],
            registry=own,
        )
        self.stars_refunded = counter(
            PREFIX + "stars_refunded", "Stars given back to buyers, by pack", ["pack"], registry=own
        )
        self.webhook_seconds = histogram(
            PREFIX + "webhook_duration_seconds",
            "Seconds the webhook took to handle an update, by kind (invalid: not an update we take)",
            ["kind"],
            buckets=BUCKETS,
            registry=own,
        )
        self.webhook_failures = counter(
            PREFIX + "webhook_failures",
            "Webhook requests answered 5xx (Telegram redelivers them), by kind",
            ["kind"],
            registry=own,
        )
        self.rate_limit_unavailable = counter(
            PREFIX + "rate_limit_unavailable",
            "Requests refused (503, or a 'try again later' in the chat) because the rate-limit "
            "storage could not be reached, by limit (invoice, subscription)",
            ["limit"],
            registry=own,
        )
        self.pre_checkout_seconds = histogram(
            PREFIX + "pre_checkout_answer_seconds",
            "Seconds from the start of a pre-checkout's decision to its answer leaving "
            "(answerPreCheckoutQuery returned, or the webhook's reply sent)",
            buckets=BUCKETS,
            registry=own,
        )
        if own is not None:
            self.registry: CollectorRegistry = own
        else:
            from prometheus_client import multiprocess

            self.registry = prom.CollectorRegistry()
            multiprocess.MultiProcessCollector(self.registry, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        self.registry.register(StateCollector(state))
        for signal, receiver in (
            (signals.order_created, self._on_order_created),
            (signals.payment_succeeded, self._on_payment_succeeded),
            (signals.payment_duplicated, self._on_payment_duplicated),
            (signals.payment_unmatched, self._on_payment_unmatched),
            (signals.payment_refunded, self._on_payment_refunded),
        ):
            signal.connect(receiver, sender=self.app)

    # --- signal receivers (after the commit) --------------------------------------------

    @_logged
    def _on_order_created(self, sender: Flask, *, order: Order, **_: Any) -> None:
        self.invoices.labels(pack=order.pack_id).inc()

    @_logged
    def _on_payment_succeeded(self, sender: Flask, *, payment: Payment, **_: Any) -> None:
        self.payments.labels(outcome="credited").inc()
        if payment.problem is None:  # a credited second payment is received under payment_duplicated
            self._received(payment)

    @_logged
    def _on_payment_duplicated(self, sender: Flask, *, payment: Payment, **_: Any) -> None:
        self.payments.labels(outcome="order_already_paid").inc()
        self._received(payment)

    @_logged
    def _on_payment_unmatched(self, sender: Flask, *, payment: Payment, **_: Any) -> None:
        self.payments.labels(outcome="unmatched").inc()
        self._received(payment)

    @_logged
    def _on_payment_refunded(self, sender: Flask, *, payment: Payment, **_: Any) -> None:
        self.payments.labels(outcome="refunded").inc()
        self.stars_refunded.labels(pack=payment.pack_id or NO_PACK).inc(payment.stars)

    def _received(self, payment: Payment) -> None:
        self.stars_received.labels(pack=payment.pack_id or NO_PACK).inc(payment.stars)


# --- hooks the intake and the webhook call (no-ops with metrics off) ----------------------


def _of(state: StarsState) -> StarsMetrics | None:
    metrics: StarsMetrics | None = state.metrics
    return metrics


@_logged
def payment_outcome(state: StarsState, outcome: str) -> None:
    """Count a money update's outcome that no signal reports (``duplicate_delivery``,
    ``refund_noted``, ``failed``)."""
    metrics = _of(state)
    if metrics is not None:
        metrics.payments.labels(outcome=outcome).inc()


@_logged
def payment_refunded_first(state: StarsState, payment: Payment) -> None:
    """A payment whose refund Telegram reported first: its Stars came and went back."""
    metrics = _of(state)
    if metrics is not None:
        metrics.payments.labels(outcome="refunded_before_paid").inc()
        metrics._received(payment)
        metrics.stars_refunded.labels(pack=payment.pack_id or NO_PACK).inc(payment.stars)


@_logged
def pre_checkout_answered(state: StarsState, outcome: str, seconds: float) -> None:
    """A pre-checkout's answer has left: ``outcome`` is ``approved`` or the refusal's reason."""
    metrics = _of(state)
    if metrics is not None:
        metrics.pre_checkouts.labels(outcome=outcome).inc()
        metrics.pre_checkout_seconds.observe(seconds)


@_logged
def rate_limit_unavailable(state: StarsState, limit: str) -> None:
    """A request was refused because the rate-limit storage could not be reached."""
    metrics = _of(state)
    if metrics is not None:
        metrics.rate_limit_unavailable.labels(limit=limit).inc()


class WebhookTimer:
    """Times one webhook request; set ``kind`` once the update is classified.

    An exception leaving the block is a 5xx unless it is an HTTP error below 500 (a wrong
    secret, a body that is not an update). The block's exception is never swallowed.
    """

    def __init__(self, metrics: StarsMetrics | None) -> None:
        self.metrics = metrics
        self.kind = "invalid"
        self.started = time.perf_counter()

    def __enter__(self) -> WebhookTimer:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if self.metrics is None:
            return
        failed = exc is not None and not (isinstance(exc, HTTPException) and (exc.code or 500) < 500)
        self._record(time.perf_counter() - self.started, failed)

    @_logged
    def _record(self, seconds: float, failed: bool) -> None:
        assert self.metrics is not None
        self.metrics.webhook_seconds.labels(kind=self.kind).observe(seconds)
        if failed:
            self.metrics.webhook_failures.labels(kind=self.kind).inc()


def webhook_timer(state: StarsState) -> WebhookTimer:
    """A ``WebhookTimer`` for one request (it records nothing with metrics off)."""
    return WebhookTimer(_of(state))


# --- read at scrape time ----------------------------------------------------------------


class StateCollector:
    """The gauges read when Prometheus scrapes, not on every request.

    ``flask_stars_failed_updates``: payment and refund updates kept unprocessed in
    ``stars_updates`` (``flask stars replay --failed`` applies them);
    ``flask_stars_spool_files``: updates in this host's spool folder. Each scrape reads
    them in an app context of its own and ends its transaction at once (a host's view that
    renders the scrape keeps its own session as it was); if the database cannot answer,
    the failed-updates gauge is left out and the error logged.
    """

    def __init__(self, state: StarsState) -> None:
        self.state = state

    def describe(self) -> Iterable[Metric]:
        """The gauges without values (no database read when a registry registers this)."""
        return self._families(None, None)

    def collect(self) -> Iterable[Metric]:
        """The gauges, read now."""
        return self._families(self._failed_updates(), self._spool_files())

    def _families(self, failed: int | None, spooled: int | None) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        describing = failed is None and spooled is None
        for name, text, value in (
            ("failed_updates", "Failed payment updates in stars_updates (unprocessed, not archived)", failed),
            ("spool_files", "Money updates in this host's spool folder, waiting for the database", spooled),
        ):
            if value is not None or describing:
                yield GaugeMetricFamily(PREFIX + name, text, value=value)

    def _failed_updates(self) -> int | None:
        try:
            # A context of its own, so its session is not the one of the request (if any)
            # that renders the scrape; the tables are made on first use, as everywhere.
            with self.state.app.app_context():
                session = self.state.session
                try:
                    if session.get_bind(UpdateLog).dialect.name == "postgresql":
                        session.execute(sa.text(f"SET LOCAL statement_timeout = {SCRAPE_QUERY_TIMEOUT_MS}"))
                    count = session.scalar(
                        sa.select(sa.func.count()).select_from(UpdateLog).where(UpdateLog.failed())
                    )
                finally:
                    end_read(self.state)
            return int(count or 0)
        except Exception:
            log.exception("flask_stars metrics: could not count failed updates")
            return None

    def _spool_files(self) -> int | None:
        try:
            return len(self.state.spool.pending())
        except OSError:
            log.exception("flask_stars metrics: could not read the spool folder")
            return None


# --- where the host exposes them --------------------------------------------------------


def _metrics_of_app(app: Flask | None) -> StarsMetrics:
    from .state import get_state

    metrics = _of(get_state(app))
    if metrics is None:
        raise StarsConfigError("flask_stars metrics are off: set STARS_METRICS = True")
    return metrics


def metrics_registry(app: Flask | None = None) -> CollectorRegistry:
    """The registry that renders ``app``'s metrics (the current app by default)."""
    return _metrics_of_app(app).registry


def render_metrics(app: Flask | None = None, accept: str | None = None) -> tuple[bytes, str]:
    """The exposition of ``app``'s metrics for the host's own view: ``(body, content_type)``.

    ``accept``: the scraper's ``Accept`` header (OpenMetrics when it asks for it)::

        @app.get("/metrics")
        def metrics():
            body, content_type = render_metrics(accept=request.headers.get("Accept"))
            return Response(body, content_type=content_type)
    """
    from prometheus_client.exposition import choose_encoder

    registry = metrics_registry(app)
    encode, content_type = choose_encoder(accept or "")
    return encode(registry), content_type


def make_metrics_app(app: Flask) -> WSGIApplication:
    """A WSGI app serving ``app``'s metrics, to mount where the host wants them::

        app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/metrics": make_metrics_app(app)})

    :param app: the Flask app whose metrics it serves.
    """
    from prometheus_client import make_wsgi_app

    wsgi: WSGIApplication = make_wsgi_app(metrics_registry(app))
    return wsgi
