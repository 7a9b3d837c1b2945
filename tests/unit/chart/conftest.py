"""The chart tests need the real helm binary: ``make install`` puts it in ``.venv/bin`` (scripts/install-kube-tools.py).

Without it every test here fails (never skips): CI installs it, so its absence is a broken install.
"""

from __future__ import annotations

import os

import pytest
from chart_support import helm_binary


@pytest.fixture(autouse=True, scope="session")
def _helm_installed() -> None:
    path = helm_binary()
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"helm not found at {path}: run `make install` (or set HELM=/path/to/helm)", pytrace=False)
