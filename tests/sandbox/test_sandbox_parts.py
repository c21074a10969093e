"""The sandbox is parts that hold each other, routed by one table of Bot API methods.

A method is answered the same way however it arrives (over HTTP, or called directly), the
production state carries no sandbox hook (the sandbox keeps its own object on the app), and
a load generator's own pre-checkout queries can be taken once each, never twice.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import requests

import flask_stars.sandbox
from flask_stars.sandbox import Sandbox, attach_sandbox
from flask_stars.sandbox.api import METHODS
from flask_stars.sandbox.run import EXTENSION_KEY, SandboxRun
from flask_stars.state import StarsState
from flask_stars.testing import TEST_TOKEN
from tests.support.shop import Shop

SANDBOX_DIR = Path(flask_stars.sandbox.__file__).parent
QUERY_TOO_OLD = "Bad Request: query is too old and response timeout expired or query ID is invalid"


def _call(tg: Sandbox, method: str, **params: Any) -> dict[str, Any]:
    body: dict[str, Any] = requests.post(
        f"{tg.url}/bot{TEST_TOKEN}/{method}", params=params, timeout=10
    ).json()
    return body


def test_every_method_of_the_table_is_answered_over_http_and_no_other(sandbox: Sandbox) -> None:
    for method in METHODS:
        assert _call(sandbox, method).get("error_code") != 404, method
    assert _call(sandbox, "sendPhoto") == {
        "ok": False,
        "error_code": 404,
        "description": "Not Found: method not found",
    }
    assert {name[len("_api_") :] for name in dir(Sandbox) if name.startswith("_api_")} == set(METHODS)


def test_a_method_called_directly_answers_as_over_http_and_is_not_recorded(sandbox: Sandbox) -> None:
    over_http = _call(sandbox, "getMe")["result"]
    assert sandbox.answer("getMe", {}) == over_http
    link = sandbox.answer(
        "createInvoiceLink",
        {
            "title": "T",
            "description": "D",
            "payload": "direct",
            "currency": "XTR",
            "prices": json.dumps([{"label": "x", "amount": 7}]),
        },
    )
    assert sandbox.invoice(link).amount == 7
    assert [c.method for c in sandbox.calls] == ["getMe"]


def test_a_fault_queued_on_the_facade_fails_the_next_http_call_only(sandbox: Sandbox) -> None:
    sandbox.fail("getMyStarBalance", 502, "Bad Gateway")
    assert _call(sandbox, "getMyStarBalance")["error_code"] == 502
    assert _call(sandbox, "getMyStarBalance") == {"ok": True, "result": {"amount": 0}}
    assert len(sandbox.calls_to("getMyStarBalance")) == 2


def test_a_query_never_sent_is_refused_unless_the_sandbox_takes_unsent_ones(sandbox: Sandbox) -> None:
    assert _call(sandbox, "answerPreCheckoutQuery", pre_checkout_query_id="4242", ok="true") == {
        "ok": False,
        "error_code": 400,
        "description": QUERY_TOO_OLD,
    }
    sandbox.queries.takes_unsent = True  # a load generator posts its own queries to the app
    assert _call(sandbox, "answerPreCheckoutQuery", pre_checkout_query_id="4343", ok="true")["ok"] is True
    again = _call(sandbox, "answerPreCheckoutQuery", pre_checkout_query_id="4343", ok="true")
    assert again["description"] == QUERY_TOO_OLD  # a second answer to one id, as on Telegram


def test_the_production_state_holds_no_sandbox_hook_and_the_sandbox_keeps_its_own(shop: Shop) -> None:
    assert [name for name in dir(StarsState) if "sandbox" in name] == ["sandbox_run"]
    page = attach_sandbox(shop.app, shop.tg, shop.base)
    run = shop.app.extensions[EXTENSION_KEY]
    assert isinstance(run, SandboxRun) and run.sandbox is shop.tg
    assert shop.app.extensions["stars"].sandbox_run is True
    assert requests.get(page, timeout=10).status_code == 200


def test_no_sandbox_class_inherits_from_another_and_each_part_is_small() -> None:
    defined: set[str] = set()
    trees = {p: ast.parse(p.read_text(encoding="utf-8")) for p in SANDBOX_DIR.glob("*.py")}
    for tree in trees.values():
        defined |= {n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef)}
    for path, tree in trees.items():
        assert len(path.read_text(encoding="utf-8").splitlines()) < 400, path.name
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                # werkzeug's request handler, quietened then kept alive, is not one of the parts
                bases = {b.id for b in node.bases if isinstance(b, ast.Name)} - {"QuietRequestHandler"}
                assert not bases & defined, f"{path.name}: {node.name} inherits {bases & defined}"
            if isinstance(node, ast.FunctionDef):
                assert node.end_lineno is not None
                assert node.end_lineno - node.lineno < 80, f"{path.name}: {node.name}"
