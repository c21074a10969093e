"""Two app hosts, one database: every payment credited once past one machine.

Two gunicorn masters, each on its own port with its own spool folder, on one PostgreSQL
through PgBouncer in transaction mode and one Redis for the limits. 10,000 payments (one
order each), a third of them delivered two or three times, each delivery to a random host in
random order; one host killed with ``kill -9`` (master and workers) mid-run and restarted on
its port, then its spool replayed with ``flask stars replay --failed``. Balances exact, every
charge credited once, the invoice limit shared across the hosts, and no non-2xx answer but
the killed host's own while it was down.

It needs the set-up of the several-hosts guide, so it runs in ``.ci/run``'s PgBouncer pass
(``STARS_TEST_PGBOUNCER=1``, ``STARS_TEST_DATABASE_URL`` through PgBouncer, Redis on
127.0.0.1:6379) and is skipped elsewhere. Every loop is bounded in count and time.
"""

from __future__ import annotations

import copy
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from flask_stars.config import default_webhook_secret
from flask_stars.models import payload_for, utcnow
from flask_stars.orders import new_order
from flask_stars.sandbox import Sandbox
from flask_stars.state import get_state
from flask_stars.testing import TEST_TOKEN, init_data_header
from flask_stars.transaction import unit_of_work
from tests.support import hostapp
from tests.support.gunicorn_run import gunicorn
from tests.support.servers import free_port
from tests.support.shop import load_update

PAYMENTS = int(os.environ.get("STARS_TWO_HOSTS_PAYMENTS", "10000"))
REDIS_URL = os.environ.get("STARS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
INVOICE_LIMIT = 20  # per user and day, counted in Redis by both hosts
CREDITS = 1_000_000  # stars_pack_1's
FIRST_USER = 100_000
SECRET = default_webhook_secret(TEST_TOKEN)
HEADERS = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET}

pytestmark = pytest.mark.skipif(
    not (os.environ.get("STARS_TEST_PGBOUNCER") and os.environ.get("STARS_TEST_DATABASE_URL")),
    reason="needs PostgreSQL through PgBouncer and Redis (.ci/run's PgBouncer pass)",
)


@dataclass
class Host:
    """One app host: a gunicorn master with its workers, its port and its spool folder."""

    name: str
    port: int
    spool: Path
    log: Path
    database_url: str
    api_url: str
    stack: ExitStack = field(default_factory=ExitStack)
    proc: subprocess.Popen[str] | None = None
    down_since: float | None = None
    up_again: float | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        return {
            "SERVED_RATE_LIMIT_STORAGE": REDIS_URL,
            "SERVED_INVOICE_RATE_LIMIT": f"{INVOICE_LIMIT}/day",
            "STARS_TEST_PGBOUNCER": "1",
        }

    def start(self) -> None:
        served = gunicorn(
            self.database_url,
            self.api_url,
            self.spool,
            workers=2,
            threads=4,
            env=self.env,
            port=self.port,
            log=self.log,
        )
        self.proc, _ = self.stack.enter_context(served)

    def kill(self) -> None:
        """``kill -9`` of the whole host: the master and every worker, mid-request."""
        assert self.proc is not None
        self.down_since = time.monotonic()
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.stack.close()
        self.stack = ExitStack()

    def restart(self) -> None:
        self.start()
        self.up_again = time.monotonic()

    def replay_spool(self) -> subprocess.CompletedProcess[str]:
        """``flask stars replay --failed`` with this host's config (its spool folder)."""
        env = {
            **os.environ,
            **self.env,
            "PYTHONPATH": os.getcwd(),
            "SERVED_DB_URL": self.database_url,
            "SERVED_API_URL": self.api_url,
            "SERVED_SPOOL_DIR": str(self.spool),
        }
        command = [sys.executable, "-m", "flask", "--app", "tests.support.served_app", "stars"]
        return subprocess.run(
            [*command, "replay", "--failed"], env=env, capture_output=True, text=True, timeout=120
        )


@dataclass
class Answer:
    host: str
    code: int
    at: float


def _deliver(host: Host, update: dict[str, Any]) -> Answer:
    try:
        code = requests.post(
            host.base + "/stars/webhook", data=json.dumps(update), headers=HEADERS, timeout=60
        ).status_code
    except requests.RequestException:
        code = 599  # no answer: the host is down, or died with the request
    return Answer(host.name, code, time.monotonic())


def _orders(database_url: str, sandbox: Sandbox) -> list[tuple[int, str]]:
    """One pending order of stars_pack_1 for each of PAYMENTS users: (user, order id)."""
    app = hostapp.create_app(database_url, STARS_API_URL=sandbox.url)
    with app.app_context():
        state = get_state()
        pack, now = state.packs["stars_pack_1"], utcnow()
        with unit_of_work(state):
            made = [new_order(state, user, pack, now) for user in range(FIRST_USER, FIRST_USER + PAYMENTS)]
            state.session.flush()
            pairs = [(order.user_id, order.id) for order in made]
        hostapp.db.engine.dispose()
    return pairs


def _payment_update(update_id: int, user: int, order_id: str) -> dict[str, Any]:
    update = copy.deepcopy(load_update("successful_payment"))
    update["update_id"] = update_id
    message = update["message"]
    message["from"]["id"] = message["chat"]["id"] = user
    paid = message["successful_payment"]
    paid.update(
        total_amount=10,
        invoice_payload=payload_for(order_id),
        telegram_payment_charge_id=f"stx-two-hosts-{update_id}",
    )
    return update


@pytest.fixture
def hosts(database_url: str, sandbox: Sandbox, tmp_path: Path) -> Iterator[list[Host]]:
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    made = [
        Host(
            name, free_port(), tmp_path / f"spool-{name}", tmp_path / f"{name}.log", database_url, sandbox.url
        )
        for name in ("a", "b")
    ]
    try:
        for host in made:
            host.start()
        yield made
    finally:
        for host in made:
            host.stack.close()


def test_two_hosts_credit_ten_thousand_payments_once_through_a_kill(
    hosts: list[Host], database_url: str, sandbox: Sandbox, figure: Any
) -> None:
    b = hosts[1]  # the host that is killed
    rng = random.Random(22)
    orders = _orders(database_url, sandbox)
    updates = [_payment_update(i + 1, user, order_id) for i, (user, order_id) in enumerate(orders)]
    deliveries = list(updates)
    for update in rng.sample(updates, len(updates) // 3):
        deliveries.extend([update] * rng.choice([1, 2]))  # two or three deliveries in all
    rng.shuffle(deliveries)

    answers: list[Answer] = []
    redeliver: list[dict[str, Any]] = []
    lock = threading.Lock()
    done = threading.Event()

    def send(update: dict[str, Any]) -> None:
        answer = _deliver(rng.choice(hosts), update)
        with lock:
            answers.append(answer)
            if not 200 <= answer.code < 300:
                redeliver.append(update)

    def killer() -> None:
        """At 40% of the deliveries kill b; at 60% start it again on its port."""
        for share, act in ((0.4, b.kill), (0.6, b.restart)):
            deadline = time.monotonic() + 600
            while len(answers) < share * len(deliveries) and not done.is_set():
                if time.monotonic() > deadline:
                    return
                time.sleep(0.01)
            act()

    started = time.monotonic()
    chaos = threading.Thread(target=killer)
    chaos.start()
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(send, deliveries))
    done.set()
    chaos.join(timeout=60)
    assert b.down_since is not None and b.up_again is not None, "host b was killed and restarted"
    # Telegram delivers again what got no 2xx, to whichever host the balancer picks.
    rounds = 0
    while redeliver and rounds < 10:
        rounds += 1
        pending, redeliver[:] = list(redeliver), []
        for update in pending:
            send(update)
    took = time.monotonic() - started
    assert not redeliver, f"{len(redeliver)} updates never got a 2xx"

    replayed = b.replay_spool()
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr

    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            payments, credited, charges = conn.execute(
                sa.text(
                    "SELECT count(*), count(*) FILTER (WHERE credited), "
                    "count(DISTINCT telegram_payment_charge_id) FROM stars_payments"
                )
            ).one()
            failed = conn.execute(
                sa.text("SELECT count(*) FROM stars_updates WHERE NOT processed AND archived_at IS NULL")
            ).scalar()
            balances = dict(conn.execute(sa.text("SELECT id, coins FROM host_users")).all())
    finally:
        engine.dispose()

    non_2xx = [x for x in answers if not 200 <= x.code < 300]
    killed_window = [x for x in non_2xx if x.host == "b" and b.down_since - 1 <= x.at <= b.up_again + 1]
    figure(
        f"\ntwo hosts, one PostgreSQL through PgBouncer, one Redis: {PAYMENTS} payments, "
        f"{len(answers)} deliveries in {took:.1f} s ({PAYMENTS / took:.0f} payments/s), "
        f"host b killed -9 at 40% and back at 60% ({b.up_again - b.down_since:.1f} s down): "
        f"{len(non_2xx)} non-2xx, all b's while it was down, redelivered in {rounds} round(s)"
    )
    assert (payments, credited, charges) == (PAYMENTS, PAYMENTS, PAYMENTS)
    assert failed == 0
    assert len(balances) == PAYMENTS
    assert set(balances.values()) == {CREDITS}
    assert non_2xx == killed_window, [x for x in non_2xx if x not in killed_window][:5]


def test_the_invoice_limit_holds_across_hosts(hosts: list[Host]) -> None:
    """One user asking both hosts in turn gets the limit once, not once per host."""
    codes = []
    for i in range(2 * INVOICE_LIMIT):
        host = hosts[i % 2]
        codes.append(
            requests.post(
                host.base + "/stars/invoice",
                json={"pack_id": "stars_pack_1"},
                headers=init_data_header(TEST_TOKEN, 99_999),
                timeout=30,
            ).status_code
        )
    assert sum(code in (200, 201) for code in codes) == INVOICE_LIMIT
    assert codes[INVOICE_LIMIT:] == [429] * INVOICE_LIMIT
