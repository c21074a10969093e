"""Sphinx configuration: ``sphinx-build -W -b html docs docs/_build/html`` (offline)."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE / "_ext"))

import flask_stars  # noqa: E402

project = "flask_stars"
author = "flask_stars"
copyright = "2026, flask_stars"
release = version = flask_stars.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx_click",
    "stars_docs",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3
exclude_patterns = ["_build"]
# Offline: no intersphinx, nothing fetched at build time.
html_theme = "alabaster"
html_title = f"flask_stars {version}"
html_theme_options = {
    "description": "Telegram Stars for a Flask app with a bot and a Mini App",
    "fixed_sidebar": True,
    "page_width": "1100px",
    "sidebar_width": "240px",
}
html_static_path: list[str] = []
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
nitpicky = False
