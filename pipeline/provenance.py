"""What every output records about the code that made it: the package version, the git commit of the
checkout (with ``-dirty`` for uncommitted changes), and when. Stores (their ``software`` attrs and
session list) and runs (``config.json``) record the same fields through this one reader."""

from __future__ import annotations

import subprocess
from datetime import datetime, timezone
from pathlib import Path


def utc_now() -> str:
    """Now, as an ISO 8601 UTC timestamp to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def software_attrs() -> dict:
    """Package version and the git commit of the checkout the code runs from ("unknown" outside git)."""
    from pipeline import __version__

    repo = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "unknown", ""
    return {"version": __version__, "git_commit": commit + ("-dirty" if dirty else "")}
