"""Stage two under torchrun with two CPU ranks (gloo) against one rank with the same global batch.

What must hold: every train clip is seen exactly once per epoch across the ranks (when the clip count
divides by the rank count; else DDP's padding repeats the first clips of the order, counted here), the
ranks' models stay identical, and the run's metrics equal the one-rank run's within float tolerance. The
student is ast_micro: LayerNorm only. A CNN's BatchNorm normalises each rank's half-batch with that half's
statistics (SyncBatchNorm needs a GPU), so a CNN differs from a one-rank run by design, not by error."""

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

from pipeline.stage_one import StageOneJob, run_stage_one
from pipeline.training import run_training
from tests.helpers import REPO_ROOT
from tests.helpers.tiny_project import tiny_config

pytestmark = pytest.mark.slow
PROBE = REPO_ROOT / "tests" / "helpers" / "ddp_probe.py"
RECIPE = [
    "epochs=2",
    "n_mels=32",
    "target_length=64",
    "threads=1",
    "norm_mean=-6.0",
    "norm_std=4.0",
    "lr=1e-3",
    "lr_decay_start=100",
    "eval_batch_size=16",
    "num_workers=0",
    "mixup=0.5",
    "freqm=4",
    "timem=8",
    "seed=3",
]


def student(ranks: int, batch: int, run: str, out: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={ranks}",
        str(PROBE),
        str(out),
        "--dataset",
        "tiny",
        "--model",
        "ast_micro",
        "--logits",
        "stores/t.zarr",
        "--kd",
        "clean",
        "--run-name",
        run,
        "--",
        f"batch_size={batch}",
        *RECIPE,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)


def test_two_ranks_see_every_clip_once_stay_identical_and_match_one_rank(project):
    run_training("tiny", tiny_config(epochs=1), "teacher", progress=False)
    run_stage_one(
        StageOneJob(
            dataset="tiny", teacher="runs/tiny/teacher", out="stores/t.zarr", scheduler="inline", chunk_clips=8
        ),
        progress=False,
    )
    two = student(2, 4, "ddp2", project / "two")
    assert two.returncode == 0, two.stderr[-3000:]
    one = student(1, 8, "ddp1", project / "one")  # the same global batch: 2 ranks x 4
    assert one.returncode == 0, one.stderr[-3000:]

    orders = [json.loads((project / "two" / f"rank{r}-orders.json").read_text()) for r in (0, 1)]
    single = json.loads((project / "one" / "rank0-orders.json").read_text())
    for epoch in range(2):
        clips = orders[0][epoch]["clips"]
        seen = Counter(orders[0][epoch]["indices"] + orders[1][epoch]["indices"])
        padded = (-clips) % 2  # DDP's equal shares: the order is extended by its first clips
        assert set(seen) == set(range(clips)) and sum(seen.values()) == clips + padded
        assert sum(1 for n in seen.values() if n == 2) == padded
        # step s of the two ranks together holds the clips of the one-rank run's step s
        for step in range(0, len(orders[0][epoch]["indices"]), 4):
            together = orders[0][epoch]["indices"][step : step + 4] + orders[1][epoch]["indices"][step : step + 4]
            if padded == 0:
                assert sorted(together) == sorted(single[epoch]["indices"][2 * step : 2 * step + 8])

    rank0, rank1 = (torch.load(project / "two" / f"rank{r}.pt") for r in (0, 1))
    assert all(torch.equal(rank0[name], rank1[name]) for name in rank0)  # DDP keeps the ranks identical
    alone = torch.load(project / "one" / "rank0.pt")
    worst = max(float((rank0[name].float() - alone[name].float()).abs().max()) for name in rank0)
    print(f"two ranks vs one: largest weight difference {worst:.3g}")
    assert worst < 1e-4, f"weights differ from the one-rank run by up to {worst}"
    ddp = json.loads(Path("runs/tiny/ddp2/summary.json").read_text())
    ref = json.loads(Path("runs/tiny/ddp1/summary.json").read_text())
    print(f"eval mAP two ranks {ddp['map']!r}, one rank {ref['map']!r}; train clips {orders[0][0]['clips']}")
    assert ddp["map"] == pytest.approx(ref["map"], abs=1e-4)
    assert ddp["per_class_ap"] == pytest.approx(ref["per_class_ap"], abs=1e-4)
