"""The `cmkd` console command behaves like make: one `error:` line and exit 2, CMKD_DEBUG for the
traceback, whole summaries in --help, recipes found from any folder, and one store command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from stages import cli
from stages.common import default_recipe
from tests.helpers import REPO_ROOT
from tests.helpers.store import fill_store, make_store

CMKD = [sys.executable, "-c", "import sys; from stages.cli import main; sys.exit(main())"]


def run_cmkd(*argv, cwd, env=None):
    import os

    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})}
    return subprocess.run([*CMKD, *argv], cwd=cwd, capture_output=True, text=True, env=environment, timeout=300)


def test_an_expected_error_is_one_line_and_exit_2_and_debug_shows_the_traceback(tmp_path):
    result = run_cmkd("teacher", "--dataset", "nowhere", "--config", str(tmp_path / "missing.yaml"), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "missing.yaml" in result.stderr and "Traceback" not in result.stderr
    debug = run_cmkd(
        "teacher",
        "--dataset",
        "nowhere",
        "--config",
        str(tmp_path / "missing.yaml"),
        cwd=tmp_path,
        env={"CMKD_DEBUG": "1"},
    )
    assert debug.returncode == 2 and "Traceback (most recent call last)" in debug.stderr


def test_recipes_are_found_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no configs/ here
    monkeypatch.delenv("CMKD_HOME", raising=False)
    shipped = default_recipe("demo")
    assert shipped and Path(shipped).resolve() == (REPO_ROOT / "configs" / "demo.yaml").resolve()
    home = tmp_path / "home"
    (home / "configs").mkdir(parents=True)
    (home / "configs" / "demo.yaml").write_text("epochs: 1\n")
    monkeypatch.setenv("CMKD_HOME", str(home))
    assert Path(default_recipe("demo")) == home / "configs" / "demo.yaml"
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "demo.yaml").write_text("epochs: 2\n")
    assert default_recipe("demo") == str(Path("configs") / "demo.yaml")  # the project's own wins


def test_help_shows_whole_summaries(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "Train a student from audio plus a teacher's cached logits (CMKD stage two)." in out
    assert "both KD directions, same-family KD, prior and shuffled controls" in out  # cut at "; " before
    assert "store The store command line" in out


def test_cmkd_inspect_and_the_store_inspect_are_one_command(tmp_path, capsys):
    store = make_store(tmp_path / "s.zarr")
    fill_store(store)
    assert cli.main(["inspect", str(store), "--dataset", "none"]) == 0
    via_cmkd = capsys.readouterr().out
    assert cli.main(["store", "inspect", str(store), "--verify"]) == 0
    assert capsys.readouterr().out == via_cmkd and "verified" in via_cmkd
    from pipeline.store.cli import main as store_main

    assert store_main(["inspect", str(store), "--verify"]) == 0
    assert capsys.readouterr().out == via_cmkd
    assert cli.main(["verify", str(store)]) == 0 and "verified   yes" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["store", "verify", "--help"])
    assert capsys.readouterr().out.startswith("usage: cmkd store verify")
