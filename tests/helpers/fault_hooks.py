"""Kill points for the fault-injection tests, importable by subprocesses and dask workers.

A killed run is a subprocess that counts the events of one kind (model forwards, zarr array
writes, zarr attribute updates) and SIGKILLs itself at the n-th: the moments where stage one is
inferring, writing a chunk, updating checksums, or updating the store's attrs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO_ROOT

KINDS = ("forward", "array_write", "attrs")


def install(kind: str, kill_at: int, counts: dict[str, int]) -> None:
    """Wrap the hook points; kill the process at the kill_at-th event of `kind` (0: only count)."""
    import zarr
    import zarr.core.attributes as attributes

    import pipeline.stage_one.batches as batches

    def counted(name: str, real):
        def wrapper(*args, **kwargs):
            counts[name] = counts.get(name, 0) + 1
            if name == kind and counts[name] == kill_at:
                os.kill(os.getpid(), 9)  # before the event: it never happens
            return real(*args, **kwargs)

        return wrapper

    batches.forward = counted("forward", batches.forward)
    zarr.Array.__setitem__ = counted("array_write", zarr.Array.__setitem__)
    attributes.Attributes.update = counted("attrs", attributes.Attributes.update)
    attributes.Attributes.put = counted("attrs", attributes.Attributes.put)


def dying_compute_chunk(spec, chunk_index, start, stop):
    """compute_chunk that kills its dask worker process the first time chunk 2 is computed."""
    from pipeline.stage_one.compute import compute_chunk

    marker = Path(os.environ["CMKD_TEST_KILL_MARKER"])
    if chunk_index == 2 and not marker.exists():
        marker.write_text(str(os.getpid()))
        os.kill(os.getpid(), 9)
    return compute_chunk(spec, chunk_index, start, stop)


def hooked_run(project: Path, kind: str, kill_at: int, store: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "tests.helpers.fault_hooks", kind, str(kill_at), store, "2"],
        capture_output=True,
        text=True,
        cwd=project,
        env=env,
        timeout=300,
    )


if __name__ == "__main__":
    # python -m tests.helpers.fault_hooks <kind> <kill_at> <store> [views]: one stage-one run, maybe killed
    import torch

    torch.set_num_threads(1)
    kind, kill_at, store = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    views = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    counts: dict[str, int] = {}
    install(kind, kill_at, counts)
    from pipeline.stage_one import StageOneJob, run_stage_one

    run_stage_one(
        StageOneJob(
            dataset="tiny", teacher="runs/tiny/teacher", out=store, scheduler="inline", chunk_clips=5, views=views
        ),
        progress=False,
    )
    print(json.dumps(counts))
