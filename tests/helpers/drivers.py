"""Run a driver (``python -m stages.x``) in a subprocess as a user would, and check the error policy:
one `error:` line naming what is wrong, exit code 2, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO_ROOT as REPO


def run(project: Path, *args: str, debug: bool = False) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    env.pop("CMKD_DEBUG", None)
    if debug:
        env["CMKD_DEBUG"] = "1"
    return subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, cwd=project, env=env, timeout=300
    )


def assert_one_line_error(result: subprocess.CompletedProcess, *names: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr[-2000:]
    for name in names:
        assert name in errors[0], (name, errors[0])
    return errors[0]
