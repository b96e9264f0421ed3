"""pipeline/training/evaluate.py: evaluation input read once and kept when it fits the budget."""

import numpy as np
import pytest
import torch

from pipeline.manifests import load_manifest
from pipeline.models import create_model
from pipeline.training.evaluate import EvalInputs, predict

from .conftest import tiny_config


def test_kept_evaluation_input_gives_the_same_scores_and_is_not_read_again(project, monkeypatch):
    manifest = load_manifest("data_manifests/tiny")
    clips = [c for c in manifest.clips if c.split == "eval"]
    front_end = tiny_config().front_end(manifest.stats())
    torch.manual_seed(0)
    model = create_model("efficientnet_tiny", num_classes=manifest.num_classes, n_mels=32, target_length=64)
    streamed = predict(model, manifest, clips, front_end, batch_size=3, progress=False)

    kept = EvalInputs(manifest, clips, front_end, batch_size=3, keep_mb=64)
    first = predict(model, manifest, clips, front_end, progress=False, inputs=kept)
    assert kept.kept is not None and len(kept.kept) == len(kept) == 3  # 8 clips in batches of 3
    reads = []
    monkeypatch.setattr(type(kept.dataset), "__getitem__", lambda self, i: reads.append(i))
    second = predict(model, manifest, clips, front_end, progress=False, inputs=kept)
    assert reads == []  # the second pass came from memory
    for a, b, c in zip(streamed, first, second):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)  # the model did not change the kept tensors


def test_evaluation_input_over_the_budget_is_streamed_every_time(project):
    manifest = load_manifest("data_manifests/tiny")
    clips = [c for c in manifest.clips if c.split == "eval"]
    front_end = tiny_config().front_end(manifest.stats())
    model = create_model("efficientnet_tiny", num_classes=manifest.num_classes, n_mels=32, target_length=64)
    one_batch_mb = 3 * 64 * 32 * 4 / 2**20  # features of one batch of 3 clips, less than the whole batch
    for budget in (0, one_batch_mb):
        inputs = EvalInputs(manifest, clips, front_end, batch_size=3, keep_mb=budget)
        predict(model, manifest, clips, front_end, progress=False, inputs=inputs)
        assert inputs.kept is None
    with pytest.raises(ValueError, match="another list of clips"):
        predict(model, manifest, clips[:2], front_end, progress=False, inputs=inputs)
