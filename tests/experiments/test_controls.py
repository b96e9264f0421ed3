"""Control teachers (prior, shuffled) and the soft-target diagnostics that compare a store with the prior."""

import numpy as np
import pytest

from pipeline.experiments.controls import (
    label_prior,
    prior_logits,
    shuffled_rows,
    write_prior_store,
    write_shuffled_store,
)
from pipeline.experiments.diagnostics import format_diagnostics, soft_target_diagnostics
from pipeline.manifests import load_manifest
from pipeline.store import (
    LogitTable,
    StoreLock,
    create_store,
    finalize_store,
    mark_chunk_done,
    verify_store,
    write_chunk,
)
from pipeline.store.format import open_store

FRONT_END = {"sample_rate": 16000, "fbank": {"n_mels": 32}, "target_length": 64, "norm": {"mean": -6.0}}


def _targets(manifest, clips):
    position = {mid: i for i, mid in enumerate(manifest.mids)}
    y = np.zeros((len(clips), manifest.num_classes))
    for row, clip in enumerate(clips):
        for mid in clip.labels:
            y[row, position[mid]] = 1
    return y


def test_label_prior_is_the_share_of_labelled_train_clips(project):
    manifest = load_manifest("data_manifests/tiny")
    train = [c for c in manifest.select("train") if c.labels]
    expected = _targets(manifest, train).mean(axis=0)
    np.testing.assert_allclose(label_prior(manifest), expected)


@pytest.mark.parametrize("activation", ["sigmoid", "softmax"])
def test_prior_logits_give_back_the_prior(activation):
    prior = np.array([0.5, 0.25, 0.2, 0.05])
    z = prior_logits(prior, activation)
    if activation == "sigmoid":
        np.testing.assert_allclose(1 / (1 + np.exp(-z)), prior, rtol=1e-9)
    else:
        np.testing.assert_allclose(np.exp(z) / np.exp(z).sum(), prior / prior.sum(), rtol=1e-9)


def test_prior_store_is_a_real_verified_store_with_the_same_row_for_every_clip(project):
    write_prior_store("data_manifests/tiny", "stores/prior.zarr", FRONT_END, "sigmoid")
    manifest = load_manifest("data_manifests/tiny")
    table = LogitTable.open("stores/prior.zarr")
    assert verify_store("stores/prior.zarr") == []  # complete, checksums intact
    rows = table.rows([c.clip_id for c in manifest.clips])
    logits = table.logits_for(rows)
    assert np.allclose(logits, logits[0], atol=1e-3)  # float16 storage
    np.testing.assert_allclose(1 / (1 + np.exp(-logits[0].astype(float))), label_prior(manifest), atol=2e-3)
    assert table.teacher["control"] == "prior" and table.activation == "sigmoid"
    diagnostics = soft_target_diagnostics(table, manifest)
    assert diagnostics["separation"] == pytest.approx(diagnostics["prior_separation"], abs=1e-3)
    assert "close to the class prior" in diagnostics["warning"]


def test_shuffled_rows_move_every_row_within_its_split():
    splits = ["train"] * 7 + ["eval"] * 4 + ["val"]
    valid = np.ones(12, dtype=bool)
    valid[2] = False
    source = shuffled_rows(splits, valid, seed=3)
    train = [i for i in range(7) if valid[i]]
    assert sorted(source[train]) == train and all(source[i] != i for i in train)
    assert sorted(source[7:11]) == [7, 8, 9, 10] and all(source[i] != i for i in range(7, 11))
    assert source[2] == 2 and source[11] == 11  # an invalid row, and a split of one, stay put
    assert (shuffled_rows(splits, valid, seed=3) == source).all()  # seeded


def _teacher_store(path, manifest, logits):
    attrs = {
        "teacher": {"checkpoint_sha256": "a" * 64, "model": "oracle"},
        "front_end": FRONT_END,
        "manifest": {"name": manifest.name, "sha256": {"clips.csv": "b" * 64}},
        "views": {"count": 0},
    }
    with StoreLock(path):
        create_store(
            path,
            clip_ids=[c.clip_id for c in manifest.clips],
            splits=[c.split for c in manifest.clips],
            folds=[0] * len(manifest.clips),
            vocabulary_mids=manifest.mids,
            vocabulary_names=[label.name for label in manifest.labels],
            activation="sigmoid",
            attrs=attrs,
            chunk_clips=8,
        )
        _, layout = open_store(path)
        for chunk in range(layout.n_chunks):
            start, stop = layout.chunk_bounds(chunk)
            mark_chunk_done(path, chunk, write_chunk(path, chunk, logits[start:stop], np.ones(stop - start, bool)))
        finalize_store(path)


def test_a_knowing_teacher_passes_the_diagnostics_and_its_shuffle_loses_the_knowledge(project):
    manifest = load_manifest("data_manifests/tiny")
    oracle = (_targets(manifest, manifest.clips) * 8 - 4).astype(np.float32)  # confident and right
    _teacher_store("stores/oracle.zarr", manifest, oracle)
    good = soft_target_diagnostics(LogitTable.open("stores/oracle.zarr"), manifest)
    assert "warning" not in good
    assert good["teacher_train"]["map"] == pytest.approx(1.0) and good["teacher_held_out"]["map"] == pytest.approx(1.0)
    assert good["targets"]["positives"] > 0.95 and good["targets"]["negatives"] < 0.05
    assert "teacher on train clips: mAP 1.0000" in format_diagnostics(good)

    write_shuffled_store("data_manifests/tiny", "stores/oracle.zarr", "stores/shuffled.zarr", seed=0)
    shuffled = LogitTable.open("stores/shuffled.zarr")
    assert shuffled.teacher["control"] == "shuffled" and shuffled.teacher["model"] == "oracle"
    ids = [c.clip_id for c in manifest.clips]
    original = LogitTable.open("stores/oracle.zarr").logits_for(np.arange(len(ids)))
    moved = shuffled.logits_for(shuffled.rows(ids))
    train = [i for i, c in enumerate(manifest.clips) if c.split == "train"]
    # the same rows, on other clips
    assert sorted(map(tuple, moved[train].tolist())) == sorted(map(tuple, original[train].tolist()))
    bad = soft_target_diagnostics(shuffled, manifest)
    assert bad["teacher_train"]["map"] < 0.8  # right confidence, wrong clips


def test_make_inspect_prints_the_diagnostics_and_the_prior_warning(project, capsys):
    from stages import inspect_store

    write_prior_store("data_manifests/tiny", "stores/prior.zarr", FRONT_END, "sigmoid")
    assert inspect_store.main(["--dataset", "tiny", "--store", "stores/prior.zarr"]) == 0
    out = capsys.readouterr().out
    assert "soft targets against tiny's labels:" in out
    assert "teacher on held-out clips (val + eval): mAP" in out
    assert "warning: soft targets are close to the class prior" in out


def test_gradient_balance_by_hand():
    from pipeline.experiments.diagnostics import gradient_balance

    labels = np.array([[1.0, 0.0]])
    teacher = np.array([[0.9, 0.1]])
    ratio = gradient_balance(teacher, teacher, labels, prior=np.array([0.5, 0.5]), single_label=False)
    # task grad (sigma(s) - y) / C = (-0.25, 0.25); bce KD (0.5 - p) / C = (-0.2, 0.2); kl KD softmax(s) - q = (-0.4, 0.4)
    assert ratio["bce"] == pytest.approx(0.8) and ratio["kl"] == pytest.approx(1.6)
    single = gradient_balance(teacher, teacher, labels, prior=np.array([0.5, 0.5]), single_label=True)
    # single-label task: softmax(s) - y = (-0.5, 0.5): KL and CE are both sums over classes
    assert single["kl"] == pytest.approx(0.8)
