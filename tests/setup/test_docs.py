"""The README is a front page that runs, and the docs leave nothing out: every ``STARS_*``
key, every ``flask stars`` command, every public name and every endpoint has its place in
the built site (``sphinx-build -W``, offline)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import flask_stars
import flask_stars.dashboard
from flask_stars.cli import COMMANDS
from flask_stars.config import KEYS

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
in_the_source_tree = pytest.mark.skipif(
    not DOCS.exists(), reason="the docs are in the source tree, not the wheel"
)


@in_the_source_tree
def test_the_readme_is_a_front_page() -> None:
    assert README.stat().st_size <= 12 * 1024, f"README.md is {README.stat().st_size} bytes"


@in_the_source_tree
def test_the_readmes_python_runs_exactly_as_written(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert blocks, "the README shows how to add flask_stars"
    for n, code in enumerate(blocks):
        script = tmp_path / f"readme_{n}.py"
        script.write_text(code, encoding="utf-8")
        done = subprocess.run(
            [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, f"block {n} of README.md fails:\n{done.stderr}"


@in_the_source_tree
def test_the_docs_python_that_claims_to_run_runs(tmp_path: Path) -> None:
    """A ``python`` block of the docs whose first line says "runs as written" is run."""
    marked = [
        (page, code)
        for page in sorted(DOCS.rglob("*.md"))
        for code in re.findall(
            r"```python\n(# runs as written.*?)```", page.read_text(encoding="utf-8"), re.S
        )
    ]
    assert marked, "the quickstart's app runs as written"
    for n, (page, code) in enumerate(marked):
        script = tmp_path / f"docs_{n}.py"
        script.write_text(code, encoding="utf-8")
        done = subprocess.run(
            [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, f"{page.relative_to(ROOT)} block fails:\n{done.stderr}"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not DOCS.exists():
        pytest.skip("the docs are in the source tree, not the wheel")
    if shutil.which("sphinx-build") is None and not _has("sphinx"):
        pytest.skip("the docs extra is not installed (pip install -e '.[docs]')")
    out = tmp_path_factory.mktemp("site")
    built = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "-q", "-b", "html", str(DOCS), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    return out


def _has(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def _page(site: Path, name: str) -> str:
    return (site / name).read_text(encoding="utf-8")


def test_every_config_key_is_in_the_reference(site: Path) -> None:
    page = _page(site, "reference/configuration.html")
    assert [key for key in KEYS if key not in page] == []


def test_every_command_is_in_the_reference(site: Path) -> None:
    page = _page(site, "reference/cli.html")
    assert [c.name for c in COMMANDS if f'id="flask-stars-{c.name}"' not in page] == []


def test_every_public_name_is_in_the_reference(site: Path) -> None:
    page = _page(site, "reference/api.html") + _page(site, "reference/signals.html")
    names = [*flask_stars.__all__, *flask_stars.dashboard.__all__]
    assert [name for name in names if name not in page] == []


def test_every_endpoint_is_in_the_reference(site: Path) -> None:
    page = _page(site, "reference/http.html")
    paths = ["/stars/packs", "/stars/invoice", "/stars/orders/", "/stars/webhook", "/stars/subscriptions",
             "/stars/stars.js", "/stars/openapi.json"]  # fmt: skip
    assert [path for path in paths if path not in page] == []


def test_the_home_page_leads_everywhere(site: Path) -> None:
    home = _page(site, "index.html")
    for page in ("quickstart", "tutorial", "howto/several-hosts", "reference/configuration", "changelog"):
        assert f'href="{page}.html"' in home, page


@in_the_source_tree
def test_every_metric_is_in_the_reference(make_shop: object) -> None:
    from flask_stars import metrics

    shop = make_shop(STARS_METRICS=True)  # type: ignore[operator]
    registry = metrics.metrics_registry(shop.app)
    names = {family.name for family in registry.collect() if family.name.startswith("flask_stars_")}
    page = (DOCS / "reference" / "metrics.md").read_text(encoding="utf-8")
    assert len(names) > 8
    assert sorted(name for name in names if name not in page) == []
