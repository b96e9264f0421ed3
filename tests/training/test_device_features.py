"""features_on=device: workers hand out centred waveforms, the device renders the same features."""

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from pipeline.augment import AugmentSettings
from pipeline.checkpoints import model_from_checkpoint
from pipeline.config import apply_overrides
from pipeline.manifests import load_manifest
from pipeline.stage_one import StageOneJob, run_stage_one
from pipeline.stage_two.run import attach_store
from pipeline.training import run_training
from pipeline.training.dataset import ClipDataset
from pipeline.training.device_features import WaveDataset, dataset_class, features_on_device
from tests.helpers.tiny_project import tiny_config


def _batched(dataset, indices, front_end):
    loader = DataLoader(torch.utils.data.Subset(dataset, indices), batch_size=len(indices))
    return features_on_device(next(iter(loader)), front_end)


def test_device_features_equal_worker_features_with_mixup_shift_and_masks(project):
    manifest = load_manifest("data_manifests/tiny")
    train = manifest.select("train")
    config = tiny_config(mixup=0.7, freqm=6, timem=10, time_shift=5)
    front_end, augment = config.front_end(), AugmentSettings.from_config(config)
    worker = ClipDataset(manifest, train, front_end, augment, seed=3)
    device = WaveDataset(manifest, train, front_end, augment, seed=3)
    for dataset in (worker, device):
        dataset.set_epoch(2)
    indices = list(range(12))
    assert any(worker.view_for(i)[0].partner for i in indices)
    rendered = _batched(device, indices, front_end)
    for n, index in enumerate(indices):
        expected = worker[index]
        np.testing.assert_allclose(rendered["features"][n].numpy(), expected["features"].numpy(), rtol=0, atol=2e-5)
        assert torch.equal(rendered["target"][n], expected["target"])
    assert "wave" not in rendered and dataset_class("worker") is ClipDataset
    with pytest.raises(ValueError, match="features_on"):
        dataset_class("gpu")


def test_replayed_views_rendered_on_the_device_reproduce_the_stored_logits(project):
    run_training("tiny", tiny_config(epochs=1, mixup=0.5, freqm=4, timem=8), "teacher", progress=False)
    run_stage_one(
        StageOneJob(
            "tiny", "runs/tiny/teacher", "stores/s.zarr", views=2, scheduler="inline", chunk_clips=8, dtype="float32"
        ),
        progress=False,
    )
    config = apply_overrides(
        tiny_config(mixup=0.5, freqm=4, timem=8), ["logits=stores/s.zarr", "kd=replay", "features_on=device"]
    )
    manifest = load_manifest("data_manifests/tiny")
    train = manifest.select("train")
    kd, _, _ = attach_store(config, manifest, Path("data_manifests/tiny"), train, config.front_end())
    dataset = WaveDataset(manifest, train, config.front_end(), seed=0, kd=kd)
    teacher, _, _ = model_from_checkpoint("runs/tiny/teacher")
    for epoch in (1, 2):
        dataset.set_epoch(epoch)
        batch = _batched(dataset, list(range(8)), config.front_end())
        with torch.no_grad():
            recomputed = teacher(batch["features"])
        assert torch.allclose(recomputed, batch["teacher_logits"], atol=1e-4)


def test_a_kd_student_trains_with_features_on_the_device_and_persistent_workers(project):
    run_training("tiny", tiny_config(epochs=1), "teacher", progress=False)
    run_stage_one(StageOneJob("tiny", "runs/tiny/teacher", "stores/c.zarr", scheduler="inline"), progress=False)
    from pipeline.stage_two.run import train_student

    results = {}
    for where in ("worker", "device"):
        config = apply_overrides(
            tiny_config(epochs=2, mixup=0.5),
            ["logits=stores/c.zarr", "kd=clean", f"features_on={where}", "num_workers=2"],
        )
        results[where] = train_student("tiny", config, f"student-{where}", progress=False)
    # the same clips, views and steps: the two runs differ by float rounding of the features only
    assert abs(results["worker"]["map"] - results["device"]["map"]) < 0.05


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_persistent_workers_see_each_new_epoch(project, method):
    """One DataLoader for the run: its workers must draw epoch 2's views after set_epoch(2)."""
    manifest = load_manifest("data_manifests/tiny")
    train = manifest.select("train")[:8]
    config = tiny_config(mixup=0.5, freqm=6, timem=10, time_shift=5)
    dataset = ClipDataset(manifest, train, config.front_end(), AugmentSettings.from_config(config), seed=1)
    loader = DataLoader(dataset, batch_size=4, num_workers=2, persistent_workers=True, multiprocessing_context=method)
    seen = {}
    for epoch in (1, 2):
        dataset.set_epoch(epoch)
        seen[epoch] = torch.cat([batch["features"] for batch in loader])
        assert torch.equal(seen[epoch], torch.stack([dataset[i]["features"] for i in range(len(train))]))
    assert not torch.equal(seen[1], seen[2])
