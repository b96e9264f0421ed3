"""Runs side by side: the grid's results do not depend on how many run at once, and a failed run
neither stops the others nor goes unnamed."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.experiments.grid import GridSpec, run_grid
from pipeline.experiments.parallel_runs import LOG_FILE, RunJob, run_jobs
from tests.helpers import REPO_ROOT
from tests.helpers.tiny_project import tiny_config, tiny_recipe

TINY = dict(dataset="tiny", cnn="efficientnet_tiny", ast="ast_micro")


def _maps(results: dict) -> dict:
    return {(cell, seed): summary["map"] for cell, runs in results.items() for seed, summary in runs.items()}


def test_grid_with_two_runs_at_once_gives_the_same_results(project):
    recipe = tiny_recipe(teacher_epochs=2)
    cells = dict(small=True, designs=("short",), only=("short/ast_to_cnn", "short/prior_to_ast"))
    side_by_side = run_grid(GridSpec(**TINY, seeds=2, jobs=2, **cells), recipe, progress=False)
    assert Path(f"runs/tiny/cmkd/short/ast_to_cnn/seed1/{LOG_FILE}").read_text().strip()  # the child's output
    shutil.move("runs/tiny/cmkd", "runs/tiny/cmkd-parallel")
    shutil.move("stores/tiny", "stores/tiny-parallel")
    one_by_one = run_grid(GridSpec(**TINY, seeds=2, jobs=1, **cells), recipe, progress=False)
    assert _maps(side_by_side) == _maps(one_by_one)
    for name in ("short/ast_to_cnn/seed1", "short/prior_to_ast/seed0", "teacher/ast/seed0"):
        first = json.loads(Path(f"runs/tiny/cmkd-parallel/{name}/summary.json").read_text())
        second = json.loads(Path(f"runs/tiny/cmkd/{name}/summary.json").read_text())
        assert first["per_class_ap"] == second["per_class_ap"]


def test_a_failed_run_is_named_after_the_others_finish(project):
    good = RunJob("good", "train", "tiny", tiny_config(epochs=1), "good", Path("runs/tiny/good"))
    bad = RunJob("bad", "train", "no_such_dataset", tiny_config(epochs=1), "bad", Path("runs/no_such_dataset/bad"))
    with pytest.raises(
        RuntimeError,
        match=r"1 of 2 run\(s\) failed: bad \(exit 1\): .*no_such_dataset.*"
        r"\[log: runs/no_such_dataset/bad/train\.log\]",
    ):
        run_jobs([bad, good], parallel=2, progress=False)
    assert Path("runs/tiny/good/summary.json").exists()  # finished, not lost


def test_run_jobs_refuses_nonsense():
    with pytest.raises(ValueError, match="at least 1"):
        run_jobs([], parallel=0)
    with pytest.raises(ValueError, match="run kind must be one of"):
        RunJob("x", "teach", "tiny", tiny_config(), "x", Path("runs/tiny/x"))


def test_a_run_waits_for_the_runs_it_needs_and_is_skipped_when_they_fail(project):
    first = RunJob(
        "first", "train", "no_such_dataset", tiny_config(epochs=1), "first", Path("runs/no_such_dataset/first")
    )
    second = RunJob(
        "second", "train", "tiny", tiny_config(epochs=1), "second", Path("runs/tiny/second"), after=("first",)
    )
    prepared = []
    with pytest.raises(RuntimeError, match=r"second \(not started\): waits for \['first'\]"):
        run_jobs([first, second], parallel=2, progress=False, prepare=lambda job: prepared.append(job.label) or job)
    assert prepared == ["first"] and not Path("runs/tiny/second").exists()
    with pytest.raises(ValueError, match="not listed before it"):
        run_jobs([second, first], parallel=2)


def test_a_run_stops_when_its_grid_is_killed(tmp_path):
    """`kill` reaches the grid's process alone: its runs must not go on training, orphaned, into the
    run directories a restarted grid resumes."""
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import multiprocessing, os, sys, time\n"
            f"sys.path.insert(0, {str(REPO_ROOT)!r})\n"
            "from tests.experiments.test_parallel_runs import _sleep_as_a_run\n"
            "child = multiprocessing.get_context('spawn').Process(target=_sleep_as_a_run, args=(os.getpid(),))\n"
            "child.start(); print(child.pid, flush=True); time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    child_pid = int(parent.stdout.readline())
    parent.kill()  # SIGKILL: no handler of the parent's can clean up
    parent.wait()
    deadline = time.time() + 30
    while time.time() < deadline and _alive(child_pid):
        time.sleep(0.2)
    assert not _alive(child_pid)


def _sleep_as_a_run(parent_pid: int) -> None:
    from pipeline.experiments.parallel_runs import exit_with_parent

    exit_with_parent(parent_pid, poll_s=0.1)
    time.sleep(60)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")  # an exited child not yet reaped (a zombie) still answers os.kill
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")
