"""Hostile input: whatever arrives, the answer is a 2xx/4xx JSON document, never a 500, and
nothing is credited. Property-based (hypothesis) over webhook bodies and initData, and
schemathesis over /stars/openapi.json against the live app."""

from __future__ import annotations

import json
from collections import Counter
from urllib.parse import quote, urlencode

import pytest
import schemathesis
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flask_stars.models import Payment
from flask_stars.testing import TEST_TOKEN, init_data_header
from tests.support import figures
from tests.support.hostapp import create_app

EXAMPLES = 250
TRIED: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def _report_inputs_tried():
    yield
    figures.record(
        f"hypothesis: {TRIED['webhook']} webhook bodies and {TRIED['init_data']} initData headers tried:"
        " no 5xx, nothing credited"
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
user_like = st.fixed_dictionaries(
    {"id": st.one_of(st.integers(), st.text(max_size=5), st.none())},
    optional={"language_code": st.one_of(st.text(max_size=5), st.integers()), "is_bot": json_values},
)
charge_like = st.fixed_dictionaries(
    {},
    optional={
        "currency": st.one_of(st.just("XTR"), st.text(max_size=4), st.integers()),
        "total_amount": st.one_of(st.integers(), st.floats(allow_nan=False), st.text(max_size=4)),
        "invoice_payload": st.one_of(st.just("order:doesnotexist"), st.text(max_size=140), st.integers()),
        "telegram_payment_charge_id": st.one_of(st.text(max_size=300), st.integers(), st.none()),
        "provider_payment_charge_id": json_values,
    },
)
updates = st.fixed_dictionaries(
    {
        "update_id": st.one_of(
            st.integers(min_value=-(2**63), max_value=2**63 - 1), st.text(max_size=5), st.none()
        )
    },
    optional={
        "pre_checkout_query": st.one_of(
            json_values,
            st.fixed_dictionaries(
                {},
                optional={
                    "id": st.one_of(st.text(max_size=80), st.integers()),
                    "from": st.one_of(user_like, json_values),
                    "currency": st.text(max_size=4),
                    "total_amount": st.one_of(st.integers(), st.text(max_size=3)),
                    "invoice_payload": st.text(max_size=140),
                },
            ),
        ),
        "message": st.one_of(
            json_values,
            st.fixed_dictionaries(
                {},
                optional={
                    "from": st.one_of(user_like, json_values),
                    "chat": st.one_of(st.fixed_dictionaries({"id": st.integers()}), json_values),
                    "successful_payment": st.one_of(charge_like, json_values),
                    "refunded_payment": st.one_of(charge_like, json_values),
                    "text": st.text(max_size=30),
                },
            ),
        ),
        "callback_query": json_values,
    },
)


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory, sandbox_module):
    app = create_app(
        f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'fuzz.db'}",
        STARS_API_URL=sandbox_module.url,
        STARS_INVOICE_RATE_LIMIT=None,
    )
    return app


@pytest.fixture(scope="module")
def sandbox_module():
    from flask_stars.sandbox import Sandbox

    with Sandbox(token=TEST_TOKEN) as tg:
        yield tg


def _credited(app) -> int:
    with app.app_context():
        session = app.extensions["stars"].session
        n = session.scalar(sa.select(sa.func.count()).select_from(Payment).where(Payment.credited))
        session.rollback()
        return n


def _assert_json_non_5xx(resp) -> None:
    assert resp.status_code < 500, resp.get_data(as_text=True)
    body = json.loads(resp.get_data(as_text=True))
    assert isinstance(body, dict)
    if resp.status_code >= 400:
        assert isinstance(body.get("error"), str) and isinstance(body.get("message"), str)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=st.one_of(updates, json_values, st.binary(max_size=200)))
def test_any_webhook_body_gets_a_json_answer_and_credits_nothing(fuzz_app, body):
    TRIED["webhook"] += 1
    secret = fuzz_app.extensions["stars"].settings.webhook_secrets[0]
    data = body if isinstance(body, bytes) else json.dumps(body)
    resp = fuzz_app.test_client().post(
        "/stars/webhook",
        data=data,
        headers={"X-Telegram-Bot-Api-Secret-Token": secret, "Content-Type": "application/json"},
    )
    _assert_json_non_5xx(resp)
    assert _credited(fuzz_app) == 0


init_fields = st.dictionaries(
    st.sampled_from(["auth_date", "user", "hash", "query_id", "signature", "x"]) | st.text(max_size=6),
    st.one_of(st.text(max_size=60), st.integers().map(str), json_values.map(json.dumps)),
    max_size=6,
)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    header=st.one_of(
        st.text(max_size=300).map(lambda t: "tma " + t),
        init_fields.map(lambda f: "tma " + urlencode(f, quote_via=quote)),
        st.text(max_size=50),
    ),
    path=st.sampled_from(["invoice", "orders/abc"]),
)
def test_any_init_data_is_refused_cleanly(fuzz_app, header, path):
    TRIED["init_data"] += 1
    client = fuzz_app.test_client()
    headers = {"Authorization": header} if header.isprintable() and "\n" not in header else {}
    if path == "invoice":
        resp = client.post("/stars/invoice", json={"pack_id": "stars_pack_1"}, headers=headers)
    else:
        resp = client.get("/stars/orders/abc", headers=headers)
    _assert_json_non_5xx(resp)
    assert resp.status_code in (400, 401)


def test_a_huge_init_data_header_is_refused(fuzz_app):
    resp = fuzz_app.test_client().post(
        "/stars/invoice", json={"pack_id": "stars_pack_1"}, headers={"Authorization": "tma " + "a=1&" * 5000}
    )
    assert resp.status_code == 401


def test_ten_megabyte_webhook_body_is_413(fuzz_app):
    secret = fuzz_app.extensions["stars"].settings.webhook_secrets[0]
    body = b'{"update_id": 1, "pad": "' + b"x" * (10 * 1024 * 1024) + b'"}'
    resp = fuzz_app.test_client().post(
        "/stars/webhook",
        data=body,
        headers={"X-Telegram-Bot-Api-Secret-Token": secret, "Content-Type": "application/json"},
    )
    assert resp.status_code == 413 and resp.json["error"] == "payload_too_large"


def test_right_secret_with_a_payment_of_another_bot_is_recorded_not_credited(fuzz_app):
    """A payload none of our orders made (another bot's, or forged with a leaked secret)."""
    from tests.support.shop import load_update

    secret = fuzz_app.extensions["stars"].settings.webhook_secrets[0]
    update = load_update("successful_payment")
    update["message"]["successful_payment"]["telegram_payment_charge_id"] = "stxOtherBot"
    resp = fuzz_app.test_client().post(
        "/stars/webhook", json=update, headers={"X-Telegram-Bot-Api-Secret-Token": secret}
    )
    assert resp.status_code == 200 and resp.json["detail"] == "unknown_order"
    assert _credited(fuzz_app) == 0


# --- schemathesis over the live app -------------------------------------------------------


def test_openapi_contract_holds_on_the_live_app(fuzz_app, figure):
    """schemathesis generates requests from the OpenAPI document; the live app must answer
    each with a documented status and a body matching its schema, and never a 5xx."""
    from flask_stars.testing import serve

    headers = dict(init_data_header(TEST_TOKEN, 555))
    headers["X-Telegram-Bot-Api-Secret-Token"] = fuzz_app.extensions["stars"].settings.webhook_secrets[0]
    calls = 0
    with serve(fuzz_app) as base:
        schema = schemathesis.openapi.from_url(base + "/stars/openapi.json")
        schema.config.update(base_url=base)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 4
        for operation in operations:

            @given(case=operation.as_strategy())
            @settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
            def run(case):
                nonlocal calls
                calls += 1
                case.call_and_validate(headers=headers)

            run()
    figure(
        f"\nschemathesis: {calls} generated requests over {len(operations)} operations,"
        " no 5xx, all as documented"
    )
    assert _credited(fuzz_app) == 0
