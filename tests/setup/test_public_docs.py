"""Every public name documents what it takes: each parameter of a public function, method
or class is named in its docstring (``name`` or ``:param name:``), or, for a dataclass
field, in a ``#:`` comment above it."""

from __future__ import annotations

import inspect
import itertools
import re
from collections.abc import Callable, Iterator
from typing import Any

import flask_stars
import flask_stars.dashboard as dashboard

PUBLIC = [(flask_stars, name) for name in flask_stars.__all__] + [
    (dashboard, name) for name in dashboard.__all__
]


def _documented_fields(cls: type) -> set[str]:
    """Fields of ``cls`` with a ``#:`` comment right above them."""
    try:
        lines = inspect.getsource(cls).splitlines()
    except (OSError, TypeError):
        return set()
    found = set()
    for before, line in itertools.pairwise(lines):
        match = re.match(r"\s+(\w+)\s*:", line)
        if match and before.strip().startswith("#:"):
            found.add(match.group(1))
    return found


def _undocumented(name: str, fn: Callable[..., Any], doc: str, fields: set[str]) -> Iterator[str]:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    for param in signature.parameters.values():
        if param.name in ("self", "cls") or param.name.startswith("_") or param.name in fields:
            continue
        escaped = param.name[:-1] + "\\_" if param.name.endswith("_") else param.name  # reST's type\_
        if (
            f"``{param.name}``" not in doc
            and f":param {param.name}:" not in doc
            and f":param {escaped}:" not in doc
        ):
            yield f"{name}({param.name})"


def _gaps() -> list[str]:
    gaps: list[str] = []
    for module, name in PUBLIC:
        obj = getattr(module, name)
        if inspect.isfunction(obj):
            gaps += _undocumented(name, obj, inspect.getdoc(obj) or "", set())
        elif inspect.isclass(obj) and obj.__module__.startswith("flask_stars"):
            class_doc = inspect.getdoc(obj) or ""
            fields = _documented_fields(obj)
            for attr, fn in vars(obj).items():
                if not inspect.isfunction(fn) or (attr.startswith("_") and attr != "__init__"):
                    continue
                if attr == "__init__":  # the class documents its constructor, or a base class does
                    class_doc = "\n".join(inspect.cleandoc(c.__doc__ or "") for c in obj.__mro__)
                doc = (fn.__doc__ or "") + (class_doc if attr == "__init__" else "")
                gaps += _undocumented(f"{name}.{attr}", fn, inspect.cleandoc(doc), fields)
    return gaps


def test_every_public_parameter_is_documented() -> None:
    assert _gaps() == []


def test_the_check_finds_an_undocumented_parameter() -> None:
    def documented(state: Any, reason: str) -> None:
        """Do it, for ``reason``.

        :param state: the state.
        """

    assert list(_undocumented("f", documented, inspect.getdoc(documented) or "", set())) == []

    def undocumented(state: Any, reason: str) -> None:
        """Do it."""

    assert list(_undocumented("f", undocumented, "Do it.", set())) == ["f(state)", "f(reason)"]
