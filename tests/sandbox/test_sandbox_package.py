"""The sandbox is a subpackage production never loads, and its test helpers need no pytest."""

from __future__ import annotations

import subprocess
import sys


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_testing_helpers_import_without_pytest() -> None:
    done = _python(
        "import sys; sys.modules['pytest'] = None; import flask_stars.testing as t; "
        "assert not hasattr(t, 'stars_sandbox'); t.serve, t.connect, t.init_data_header"
    )
    assert done.returncode == 0, done.stderr


def test_production_imports_none_of_the_sandbox() -> None:
    done = _python(
        "import flask_stars, sys; from flask_stars import stars_bp, FlaskStars; "
        "loaded = sorted(m for m in sys.modules if m.startswith('flask_stars.sandbox')); "
        "assert not loaded, loaded"
    )
    assert done.returncode == 0, done.stderr
