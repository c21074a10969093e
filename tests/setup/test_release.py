"""The version is in one place: ``flask_stars.__version__`` is the installed metadata's, and
the changelog names it."""

from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path

import pytest

import flask_stars

CHANGELOG = Path(__file__).resolve().parents[2] / "CHANGELOG.md"


def test_the_version_is_the_metadatas() -> None:
    assert flask_stars.__version__ == version("flask-stars")


@pytest.mark.skipif(not CHANGELOG.exists(), reason="the changelog is in the source tree, not the wheel")
def test_the_changelog_names_the_version() -> None:
    text = CHANGELOG.read_text(encoding="utf-8")
    assert re.search(rf"^## \[{re.escape(flask_stars.__version__)}\] - \d{{4}}-\d{{2}}-\d{{2}}$", text, re.M)
    assert "## [Unreleased]" in text
