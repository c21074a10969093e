"""The package's shape: its modules import each other downhill, with no cycle.

Every import counts (top-level, function-local and ``TYPE_CHECKING`` alike): a cycle
dodged by a local import is still a cycle for the reader.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import flask_stars

PACKAGE = Path(flask_stars.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the flask_stars modules it imports (a name imported from a package counts
    as the submodule when there is one)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py") if "versions" not in p.parts}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - node.level + 1]
                    origin = ".".join(base + ([node.module] if node.module else []))
                else:
                    origin = node.module or ""
                # "from . import x" names the submodule x; "from .a import f" names a.
                submodules = [f"{origin}.{alias.name}" for alias in node.names]
                targets = [t for t in submodules if t in modules] or [origin]
            for target in targets:
                if target in modules and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_package_has_no_import_cycle() -> None:
    graph = import_graph()
    assert len(graph) > 20  # the walk found the package
    assert cycles(graph) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_state_sits_at_the_bottom() -> None:
    """``state`` reaches only the leaf modules, never the money path or the edges."""
    graph = import_graph()
    below: set[str] = set()
    todo = ["flask_stars.state"]
    while todo:
        for dep in graph[todo.pop()]:
            if dep not in below:
                below.add(dep)
                todo.append(dep)
    allowed = {
        f"flask_stars.{m}"
        for m in (
            "config",
            "db",
            "botapi",
            "packs",
            "languages",
            "messages",
            "ratelimit",
            "spool",
            "migrations",
            "waits",
            "errors",
            "models",
        )
    }
    assert below <= allowed


def test_production_imports_none_of_the_sandbox() -> None:
    code = (
        "import sys; from flask_stars import stars_bp, FlaskStars; "
        "sys.exit(any(m.startswith('flask_stars.sandbox') for m in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_the_dashboard_sits_on_top() -> None:
    """``dashboard/`` is an edge: nothing else in the package imports it, and it never
    reaches the sandbox (production code may mount it)."""
    graph = import_graph()
    dashboard = {m for m in graph if m.startswith("flask_stars.dashboard")}
    assert dashboard
    for module, deps in graph.items():
        if module not in dashboard:
            assert not deps & dashboard, module
    for module in dashboard:
        assert not any(d.startswith("flask_stars.sandbox") for d in graph[module]), module


def _session_endings(path: Path) -> list[int]:
    """Lines of ``path`` that commit or roll back a session (``session.commit()``,
    ``state.session.rollback()``...)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("commit", "rollback")
        ):
            owner = node.func.value
            name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
            if "session" in name:
                found.append(node.lineno)
    return found


def test_only_the_unit_of_work_ends_a_transaction() -> None:
    """Transactions at the edges: ``transaction`` is the one module that commits or rolls
    back; everything else goes through its unit of work, ``end_read`` or ``abandon``."""
    offenders = {
        module_name(path): lines
        for path in PACKAGE.rglob("*.py")
        if "versions" not in path.parts and (lines := _session_endings(path))
    }
    assert set(offenders) == {"flask_stars.transaction"}, offenders


def test_the_check_for_session_endings_sees_one(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f(state):\n    state.session.commit()\n    work.commit()\n")
    assert _session_endings(module) == [2]


#: The domain: it works inside the caller's transaction and never opens one.
DOMAIN = ("ledger", "orders", "precheckout", "subscriptions", "models", "rules")


def test_the_domain_never_opens_a_unit_of_work() -> None:
    for path in PACKAGE.rglob("*.py"):
        name = module_name(path)
        if not any(name == f"flask_stars.{d}" or name.startswith(f"flask_stars.{d}.") for d in DOMAIN):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("transaction"):
                opened = {a.name for a in node.names} & {"UnitOfWork", "unit_of_work"}
                assert not opened, f"{name} opens a unit of work"
