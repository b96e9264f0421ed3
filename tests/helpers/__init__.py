"""Helpers the tests share that are not pytest fixtures (those live in the conftest.py files):
a tiny project on disk, small real stores, fault hooks, local servers and schedulers.

Tests import them absolutely (``from tests.helpers.tiny_project import tiny_config``); no test
module imports another test module.
"""

from __future__ import annotations

from pathlib import Path

# the repository root (tests/helpers/ is two folders below it): for subprocesses that must import
# pipeline/, stages/ or tests/ (PYTHONPATH, sys.path) and for the repo's own files (docs, configs)
REPO_ROOT = Path(__file__).resolve().parents[2]
# the hand-written official-format excerpts and old stores the tests read
FIXTURES = REPO_ROOT / "tests" / "fixtures"
