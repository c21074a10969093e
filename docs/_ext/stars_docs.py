"""Reference pages generated from the code: the ``STARS_*`` keys (``flask_stars.config.KEYS``),
the HTTP endpoints (the OpenAPI document the package builds), the error codes, and a click
group holding every ``flask stars`` command for sphinx-click."""

from __future__ import annotations

import inspect
from typing import Any

import click
from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

from flask_stars import errors, http_errors
from flask_stars.cli import register_cli
from flask_stars.config import KEYS

#: What Flask mounts as ``flask stars``, for ``.. click:: stars_docs:stars_cli``.
stars_cli = click.Group("stars", help="flask_stars' commands (run as `flask stars ...` in your app).")
register_cli(stars_cli)


def _table(header: list[str], rows: list[list[nodes.Node | str]], widths: list[int]) -> nodes.table:
    table = nodes.table()
    group = nodes.tgroup(cols=len(header))
    table += group
    for width in widths:
        group += nodes.colspec(colwidth=width)
    head = nodes.thead()
    group += head
    row = nodes.row()
    for cell in header:
        row += nodes.entry("", nodes.paragraph(text=cell))
    head += row
    body = nodes.tbody()
    group += body
    for cells in rows:
        row = nodes.row()
        for cell in cells:
            content = cell if isinstance(cell, nodes.Node) else nodes.paragraph(text=cell)
            row += nodes.entry("", content)
        body += row
    return table


def _code(text: str) -> nodes.paragraph:
    para = nodes.paragraph()
    para += nodes.literal(text=text)
    return para


class ConfigKeys(SphinxDirective):
    """Every ``STARS_*`` key: its default and its meaning, from ``flask_stars.config.KEYS``."""

    def run(self) -> list[nodes.Node]:
        rows: list[list[nodes.Node | str]] = []
        for name, key in KEYS.items():
            target = nodes.target("", "", ids=[name.lower().replace("_", "-")])
            cell = _code(name)
            cell.insert(0, target)
            default = "required" if key.default is None and name in {"STARS_BOT_TOKEN", "STARS_PACKS"} else repr(key.default)
            rows.append([cell, _code(default), key.meaning])
        return [_table(["key", "default", "meaning"], rows, [28, 16, 56])]


class Endpoints(SphinxDirective):
    """Every path and method of the OpenAPI document, with its summary."""

    def run(self) -> list[nodes.Node]:
        from flask import Flask

        from flask_stars import get_state, stars_bp
        from flask_stars.openapi import build_spec

        app = Flask("docs")
        app.config.update(
            STARS_BOT_TOKEN="123456:docs-token-not-a-real-one",
            STARS_PACKS=[{"id": "stars_pack_1", "stars": 10, "title": "Starter pack", "credits": 100}],
            STARS_CREDIT_CALLBACK=lambda payment: None,
            SQLALCHEMY_DATABASE_URI="sqlite://",
        )
        app.register_blueprint(stars_bp)
        with app.app_context():
            spec: dict[str, Any] = build_spec(get_state(app))
        rows: list[list[nodes.Node | str]] = []
        for path, operations in spec["paths"].items():
            for method, operation in operations.items():
                if method not in {"get", "post", "put", "delete", "patch"}:
                    continue
                codes = ", ".join(sorted(operation.get("responses", {})))
                rows.append([_code(f"{method.upper()} {path}"), operation.get("summary", ""), codes])
        return [_table(["endpoint", "what it does", "answers"], rows, [36, 48, 16])]


class ErrorCodes(SphinxDirective):
    """Every domain error: its class, its stable ``error`` code, and what it means."""

    def run(self) -> list[nodes.Node]:
        rows: list[list[nodes.Node | str]] = []
        seen = set()
        for module in (errors, http_errors):
            for name, cls in vars(module).items():
                if not (inspect.isclass(cls) and issubclass(cls, errors.StarsError)) or cls in seen:
                    continue
                seen.add(cls)
                doc = (inspect.getdoc(cls) or "").split("\n\n")[0].replace("\n", " ")
                status = getattr(cls, "code", None)
                rows.append([_code(name), _code(cls.error), str(status) if isinstance(status, int) else "—", doc])
        return [_table(["class", "error", "HTTP", "meaning"], rows, [22, 20, 8, 50])]


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("stars-config", ConfigKeys)
    app.add_directive("stars-endpoints", Endpoints)
    app.add_directive("stars-errors", ErrorCodes)
    return {"parallel_read_safe": True, "version": "1"}
