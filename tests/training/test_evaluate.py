"""pipeline/training/evaluate.py: evaluation input read once and kept when it fits the budget."""

import numpy as np
import pytest
import torch

from pipeline.manifests import load_manifest
from pipeline.models import create_model
from pipeline.training.evaluate import EvalInputs, predict
from tests.helpers.tiny_project import tiny_config


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


def _evaluate(project, checkpoint, capsys) -> dict:
    import json

    from stages.evaluate import main

    assert main(["--dataset", "tiny", "--checkpoint", str(checkpoint)]) == 0
    return json.loads(capsys.readouterr().out)


def test_evaluate_maps_the_checkpoints_vocabulary_by_mid(project, capsys):
    """The same model with its output columns (and its vocabulary) permuted scores exactly as the
    original; before, evaluate scored column i as the dataset's class i (0.1066 against 0.0978)."""
    from pipeline.checkpoints import model_from_checkpoint
    from pipeline.training import run_training

    run_training("tiny", tiny_config(epochs=1), "t", progress=False)
    final = project / "runs/tiny/t/checkpoints/final.pt"
    ckpt = torch.load(final, weights_only=True)
    order = [2, 0, 3, 1]
    permuted = {
        **ckpt,
        "model": dict(ckpt["model"]),
        "vocabulary": {key: [values[i] for i in order] for key, values in ckpt["vocabulary"].items()},
    }
    for key in ("head.classifier.weight", "head.classifier.bias"):
        permuted["model"][key] = ckpt["model"][key][order].clone()
    torch.save(permuted, project / "permuted.pt")
    plain, mapped = _evaluate(project, final, capsys), _evaluate(project, project / "permuted.pt", capsys)
    assert mapped["vocabulary"] == "mapped to the dataset's by mid" and plain["vocabulary"] == "the dataset's"
    scores = {k: v for k, v in plain.items() if k not in ("checkpoint", "vocabulary")}
    assert scores and scores == {k: mapped[k] for k in scores}  # exactly, metric by metric
    # the control: scored without the map, the permuted model's columns meet the wrong classes
    from pipeline.config import FrontEndConfig
    from pipeline.training.evaluate import evaluate_model

    model, _, _ = model_from_checkpoint(project / "permuted.pt")
    manifest = load_manifest("data_manifests/tiny")
    clips = [c for c in manifest.clips if c.split == "eval"]
    unmapped = evaluate_model(
        model, manifest, clips, FrontEndConfig(**ckpt["front_end"]), False, batch_size=16, progress=False
    )
    assert unmapped["map"] != plain["map"]


def test_evaluate_refuses_a_vocabulary_that_lacks_the_datasets_classes(project):
    from pipeline.training import run_training
    from tests.helpers.drivers import assert_one_line_error, run

    run_training("tiny", tiny_config(epochs=1), "t", progress=False)
    ckpt = torch.load(project / "runs/tiny/t/checkpoints/final.pt", weights_only=True)
    for name, mids, problem in (
        ("junk.pt", ["/home/lab/x.wav"] * 4, "lists '/home/lab/x.wav' 4 times"),
        ("other.pt", ["/x/a", "/x/b", "/x/c", "/x/d"], "differs from tiny's"),
    ):
        torch.save({**ckpt, "vocabulary": {"mids": mids, "names": list(mids)}}, project / name)
        line = assert_one_line_error(run(project, "stages.evaluate", "--dataset", "tiny", "--checkpoint", name), name)
        assert problem in line, line
    assert "'/x/a'" in line and "/t/low" in line  # both vocabularies named
