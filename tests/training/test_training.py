import errno
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.checkpoints import load_checkpoint
from pipeline.manifests import Clip, load_manifest
from pipeline.training import run_training
from pipeline.training.dataset import ClipDataset, balanced_weights, epoch_order
from pipeline.training.schedule import WeightAverager, lr_factor
from tests.helpers import REPO_ROOT
from tests.helpers.disk import fill
from tests.helpers.tiny_project import run_killed_after_epoch, tiny_config


def test_balanced_weights_follow_psla_rule():
    clips = [Clip("a", "a.wav", ("x",)), Clip("b", "b.wav", ("x", "y")), Clip("c", "c.wav", ("x",))]
    weights = balanced_weights(clips, ["x", "y"])
    wx, wy = 1000 / (3 + 0.01), 1000 / (1 + 0.01)
    assert np.allclose(weights, [wx, wx + wy, wx])


def test_balanced_sampler_draws_rare_classes_more_often():
    clips = [Clip(str(i), "", ("common",)) for i in range(90)] + [Clip(str(90 + i), "", ("rare",)) for i in range(10)]
    order = np.concatenate([epoch_order(100, 0, e, balanced_weights(clips, ["common", "rare"])) for e in range(20)])
    rare_share = np.mean(order >= 90)
    assert 0.4 < rare_share < 0.6  # classes balanced, against 10% uniformly
    assert len(set(epoch_order(100, 0, 1).tolist())) == 100  # no weights: a permutation


def test_epoch_order_is_keyed_by_seed_and_epoch():
    assert np.array_equal(epoch_order(50, 1, 3), epoch_order(50, 1, 3))
    assert not np.array_equal(epoch_order(50, 1, 3), epoch_order(50, 1, 4))


def test_lr_schedule_warmup_and_step_decay():
    # lr_decay_start=3: epochs 1-3 at the full lr (upstream's lrscheduler_start), decays after epochs 3, 5, ...
    config = tiny_config(warmup_steps=10, lr_decay_start=3, lr_decay_every=2, lr_decay=0.5)
    assert lr_factor(config, 0, 1) == pytest.approx(0.1)
    assert lr_factor(config, 100, 3) == 1.0
    assert lr_factor(config, 100, 4) == 0.5 and lr_factor(config, 100, 5) == 0.5
    assert lr_factor(config, 100, 6) == 0.25


def test_weight_averager_is_the_mean_of_epoch_weights():
    config = tiny_config(wa_start=2, wa_end=3)
    model = torch.nn.Linear(2, 1)
    averager = WeightAverager(config)
    values = {1: 1.0, 2: 2.0, 3: 4.0}
    for epoch, value in values.items():
        torch.nn.init.constant_(model.weight, value)
        averager.update(model, epoch)
    assert torch.allclose(averager.averaged_state(model)["weight"], torch.full((1, 2), 3.0))


def test_mixup_mixes_targets_with_the_view_lambda(project):
    from pipeline.augment import AugmentSettings

    manifest = load_manifest("data_manifests/tiny")
    config = tiny_config()
    train = manifest.select("train")
    dataset = ClipDataset(manifest, train, config.front_end(), AugmentSettings(mixup=1.0), seed=0)
    for index in range(len(train)):
        view, _ = dataset.view_for(index)
        if view.partner:
            break
    item = dataset[index]
    own = dataset._target(train[index])
    partner = dataset._target(dataset.partner_by_id[view.partner])
    assert np.allclose(item["target"].numpy(), view.lam * own + (1 - view.lam) * partner)
    assert 0 < view.lam < 1 and float(item["lam"]) == pytest.approx(view.lam)


def test_supervised_run_writes_the_run_directory(project):
    summary = run_training("tiny", tiny_config(), "sup", progress=False)
    run = Path("runs/tiny/sup")
    for name in (
        "config.yaml",
        "metrics.csv",
        "summary.json",
        "checkpoints/final.pt",
        "checkpoints/best.pt",
        "checkpoints/last.pt",
        "plots/training_curve.png",
    ):
        assert (run / name).exists(), name
    assert set(json.loads((run / "summary.json").read_text())) >= {"map", "mauc", "dprime", "accuracy", "best"}
    assert 0.0 < summary["map"] <= 1.0
    assert len((run / "metrics.csv").read_text().strip().splitlines()) == 1 + 2
    ckpt = load_checkpoint(run / "checkpoints/final.pt")
    assert {"model", "config", "vocabulary", "front_end", "model_name"} <= set(ckpt)
    # validation and eval input kept in memory (the default) or read from the files each pass: the same run
    streamed = run_training("tiny", tiny_config(eval_cache_mb=0), "sup_streamed", progress=False)
    assert streamed["per_class_ap"] == summary["per_class_ap"] and streamed["best"] == summary["best"]
    assert (
        Path("runs/tiny/sup_streamed/metrics.csv").read_text().split("\n")[1].split(",")[:9]
        == (run / "metrics.csv").read_text().split("\n")[1].split(",")[:9]
    )  # the val scores of epoch 1 (not its seconds)


def test_resume_after_kill_matches_uninterrupted_run(project):
    """A run killed (SIGKILL) after its first checkpoint, resumed, ends with the same weights."""
    config = tiny_config(epochs=3, mixup=0.5, freqm=4, timem=8)
    run_training("tiny", config, "whole", progress=False)
    result = run_killed_after_epoch(
        "from tests.helpers.tiny_project import tiny_config\nfrom pipeline.training import run_training\n"
        "run_training('tiny', tiny_config(epochs=3, mixup=0.5, freqm=4, timem=8), 'killed', progress=False)\n",
        2,
    )
    assert result.returncode == -9, result.stderr[-2000:]
    assert load_checkpoint("runs/tiny/killed/checkpoints/last.pt")["epoch"] == 2
    run_training("tiny", config, "killed", resume=True, progress=False)
    whole = load_checkpoint("runs/tiny/whole/checkpoints/final.pt")["model"]
    resumed = load_checkpoint("runs/tiny/killed/checkpoints/final.pt")["model"]
    for key in whole:
        assert torch.equal(whole[key], resumed[key]), key
    assert len(Path("runs/tiny/killed/metrics.csv").read_text().strip().splitlines()) == 1 + 3


def test_fold_based_data_runs_each_fold_and_averages(tmp_path, monkeypatch):
    from pipeline.testing import write_tiny_dataset

    write_tiny_dataset(tmp_path, "folds", n_train=32, n_eval=0, fold_based=True)
    monkeypatch.chdir(tmp_path)
    summary = run_training("folds", tiny_config(epochs=1, loss="ce"), "cv", progress=False)
    assert set(summary["folds"]) == {"1", "2", "3", "4"}
    assert summary["accuracy"] == pytest.approx(np.mean([f["accuracy"] for f in summary["folds"].values()]))
    one = run_training("folds", tiny_config(epochs=1, loss="ce"), "f2", fold=2, progress=False)
    assert one["accuracy"] == pytest.approx(summary["folds"]["2"]["accuracy"])


def test_ranks_get_equal_disjoint_shares_of_the_epoch():
    from pipeline.training.dataset import EpochSampler

    shares = []
    for rank in range(3):
        sampler = EpochSampler(10, seed=0, rank=rank, world_size=3)
        sampler.set_epoch(2)
        shares.append(list(sampler))
    assert [len(s) for s in shares] == [4, 4, 4]
    assert set(shares[0] + shares[1] + shares[2]) == set(range(10))
    single = EpochSampler(10, seed=0)
    single.set_epoch(2)
    assert sorted(single) == list(range(10))


def torchrun_teacher(run: str, *extra: str, epochs: int = 2):
    """`stages.teacher` under torchrun with two CPU ranks (gloo)."""
    import os
    import subprocess
    import sys

    repo = REPO_ROOT
    overrides = [
        "model=efficientnet_tiny",
        "n_mels=32",
        "target_length=64",
        f"epochs={epochs}",
        "batch_size=4",
        "eval_batch_size=16",
        "threads=1",
        "norm_mean=-6.0",
        "norm_std=4.0",
        "num_workers=0",
    ]
    env = {**os.environ, "PYTHONPATH": str(repo), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "stages.teacher",
            "--dataset",
            "tiny",
            "--run-name",
            run,
            *extra,
            "--",
            *overrides,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_torchrun_with_two_ranks_trains_one_model_and_writes_once(project):
    """DistributedDataParallel under torchrun: both ranks train on disjoint halves, rank 0 alone
    evaluates and writes. Run names go through `--run-name`: torchrun takes a bare `--run`."""
    done = torchrun_teacher("ddp")
    run = Path("runs/tiny/ddp")
    assert json.loads((run / "summary.json").read_text())["map"] > 0
    assert len((run / "metrics.csv").read_text().strip().splitlines()) == 1 + 2  # rank 0 alone logs
    assert load_checkpoint(run / "checkpoints/final.pt")["model"]
    assert done.stdout.count("ddp on tiny: eval mAP") == 1  # one summary line, from rank 0


def test_torchrun_cross_fitting_writes_one_partition(project):
    done = torchrun_teacher("xfit", "--crossfit", "2", epochs=1)
    info = json.loads(Path("runs/tiny/xfit/crossfit.json").read_text())
    assert [m["run_dir"] for m in info["members"]] == ["member0", "member1"]
    assert done.stdout.count("cross-fitted 2 teachers") == 1


def test_early_stopping_ends_a_plateaued_run_and_keeps_the_best_weights(project):
    # lr ~0 after epoch 1: nothing improves after it, so patience 2 stops the 8-epoch run at epoch 3
    config = tiny_config(epochs=8, patience=2, lr=1e-3, lr_decay_start=1, lr_decay=1e-30)
    summary = run_training("tiny", config, "early")
    assert summary["stopped_early"] and summary["epochs_trained"] == 3
    assert summary["final_model"] == "best" and summary["best"]["epoch"] == 1
    metrics = Path("runs/tiny/early/metrics.csv").read_text().strip().splitlines()
    assert len(metrics) == 1 + 3  # header + the three epochs that ran
    final = load_checkpoint("runs/tiny/early/checkpoints/final.pt")
    best = load_checkpoint("runs/tiny/early/checkpoints/best.pt")
    assert all(torch.equal(final["model"][k], best["model"][k]) for k in best["model"])
    assert final["epoch"] == 3 and summary["map"] == pytest.approx(summary["best"]["map"])
    assert len(summary["per_class_ap"]) == 4


def test_patience_zero_runs_every_epoch(project):
    summary = run_training("tiny", tiny_config(epochs=2, patience=0, lr_decay_start=1, lr_decay=1e-30), "full")
    assert not summary["stopped_early"] and summary["epochs_trained"] == 2


@pytest.mark.faults
def test_disk_full_during_training_keeps_the_last_checkpoint_and_resumes(project, small_disk, monkeypatch):
    """torch reports a full disk as a RuntimeError; the run stops with ENOSPC naming the checkpoint,
    the previous last.pt is intact, and RESUME reaches the uninterrupted run's weights."""
    import torch

    import pipeline.training.loop as loop
    from pipeline.checkpoints import load_checkpoint

    config = tiny_config(epochs=3)
    run_training("tiny", config, "whole", progress=False)
    real_save = loop.save_checkpoint

    def save_then_fill(state, path):
        real_save(state, path)
        if str(path).endswith("last.pt") and state["epoch"] == 1:
            fill(small_disk)

    monkeypatch.setattr(loop, "save_checkpoint", save_then_fill)
    with pytest.raises(OSError) as caught:
        run_training("tiny", config, "full", runs_root=small_disk, progress=False)
    assert caught.value.errno == errno.ENOSPC and caught.value.filename  # names what could not be written
    run_dir = small_disk / "tiny" / "full"
    assert load_checkpoint(run_dir / "checkpoints/last.pt")["epoch"] == 1
    assert not list(run_dir.glob("checkpoints/*.tmp"))
    monkeypatch.setattr(loop, "save_checkpoint", real_save)
    (small_disk / "filler").unlink()
    run_training("tiny", config, "full", runs_root=small_disk, resume=True, progress=False)
    whole = load_checkpoint("runs/tiny/whole/checkpoints/final.pt")["model"]
    resumed = load_checkpoint(run_dir / "checkpoints/final.pt")["model"]
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)
