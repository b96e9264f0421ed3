"""Stage two matches clips by content: other audio under the same id, renamed copies, lost replay partners."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from pipeline.audio import audio_fingerprint, write_wav
from pipeline.config import apply_overrides
from pipeline.manifests import load_manifest, write_manifest
from pipeline.stage_two.run import DistillError, attach_store
from pipeline.training.dataset import ClipDataset
from tests.helpers.tiny_project import tiny_config


def config_for(store, *overrides):
    return apply_overrides(tiny_config(mixup=0.5, freqm=4, timem=8), [f"logits={store}", *overrides])


def lab_b(name: str, clips) -> tuple:
    """Lab B's manifest of the same audio folder, with its own clip list."""
    original = load_manifest("data_manifests/tiny")
    out = write_manifest(Path("data_manifests") / name, name, original.data_root, "fsd50k", original.labels, clips)
    manifest = load_manifest(out)
    return manifest, out


def attach(store, manifest, manifest_dir, *overrides):
    config = config_for(store, *overrides)
    return attach_store(config, manifest, manifest_dir, manifest.select("train"), config.front_end())


def test_same_id_other_audio_is_an_error_or_masked(store):
    original = load_manifest("data_manifests/tiny")
    other = Path("audio/tiny/other.wav")
    write_wav(other, (0.1 * np.random.default_rng(9).standard_normal(16000)).astype(np.float32))
    clips = [
        dataclasses.replace(c, path=str(other), fingerprint=audio_fingerprint(other)) if c.clip_id == "c001" else c
        for c in original.clips
    ]
    manifest, folder = lab_b("tinyb", clips)
    with pytest.raises(DistillError, match=r"1 train clips have the store's clip id but other audio .*first: c001\)"):
        attach(store, manifest, folder, "kd=clean")
    kd, coverage, _ = attach(store, manifest, folder, "kd=clean", "missing=mask")
    assert coverage.audio_differs == ["c001"] and coverage.missing == [] and coverage.with_logits == 23
    assert "1 differ from the store's, 0 joined by content" in coverage.line()
    dataset = ClipDataset(manifest, manifest.select("train"), config_for(store).front_end(), kd=kd)
    index = [c.clip_id for c in dataset.clips].index("c001")
    assert float(dataset[index]["kd_mask"]) == 0.0 and float(dataset[0]["kd_mask"]) == 1.0


@pytest.mark.parametrize("mode", ["clean", "replay"])
def test_renamed_copies_join_by_fingerprint(store, mode):
    original = load_manifest("data_manifests/tiny")
    renamed = [dataclasses.replace(c, clip_id=f"labB-{c.clip_id}") for c in original.clips]
    manifest, folder = lab_b("tinyb", renamed)
    with pytest.raises(DistillError, match="24 train clips have no valid teacher logits"):
        attach(store, manifest, folder, f"kd={mode}")
    kd, coverage, notes = attach(store, manifest, folder, f"kd={mode}", "join=fingerprint")
    assert coverage.with_logits == 24 and coverage.by_content == 24 and coverage.clean_views == 0
    assert "0 differ from the store's, 24 joined by content" in coverage.line()
    assert any("joining by audio fingerprint" in note for note in notes)
    reference, _, _ = attach(store, original, Path("data_manifests/tiny"), f"kd={mode}")
    front_end = config_for(store).front_end()
    theirs = ClipDataset(manifest, manifest.select("train"), front_end, kd=kd)
    ours = ClipDataset(original, original.select("train"), front_end, kd=reference)
    for epoch in (0, 1):
        theirs.set_epoch(epoch)
        ours.set_epoch(epoch)
        for i in range(len(ours)):  # same teacher targets, and under replay the same rebuilt inputs
            a, b = theirs[i], ours[i]
            assert float(a["kd_mask"]) == 1.0 and np.array_equal(a["teacher_logits"], b["teacher_logits"])
            assert np.array_equal(a["features"], b["features"])


def test_missing_replay_partner_is_listed_or_falls_back_to_the_clean_clip(store):
    from pipeline.store import LogitTable

    original = load_manifest("data_manifests/tiny")
    table = LogitTable.open(store)
    partners = {table.view_for(row, k).partner for row in range(len(table)) for k in range(2)} - {""}
    dropped = sorted(partners)[:2]
    manifest, folder = lab_b("tinyb", [c for c in original.clips if c.clip_id not in dropped])
    with pytest.raises(DistillError, match=r"KD=replay: \d+ train clips have stored views whose mixup partner"):
        attach(store, manifest, folder, "kd=replay", "missing=error")
    masked = "missing=mask"
    kd, coverage, _ = attach(store, manifest, folder, "kd=replay", masked)
    assert coverage.clean_views > 0 and "replay views without their partner use the clean clip" in coverage.line()
    dataset = ClipDataset(manifest, manifest.select("train"), config_for(store).front_end(), kd=kd)
    lost = 0
    for epoch in (0, 1):
        dataset.set_epoch(epoch)
        for i in range(len(dataset)):
            item = dataset[i]  # never a KeyError for the absent partner
            if kd.clean_views[i, epoch % 2]:
                lost += 1
                clean = table.logits_for(table.rows([dataset.clips[i].clip_id]))[0]
                assert float(item["lam"]) == 1.0 and np.allclose(item["teacher_logits"].numpy(), clean)
    assert lost == coverage.clean_views


def test_join_fingerprint_needs_fingerprints(store):
    original = load_manifest("data_manifests/tiny")
    manifest, folder = lab_b("tinyb", [dataclasses.replace(c, fingerprint="") for c in original.clips])
    with pytest.raises(DistillError, match="JOIN=fingerprint needs audio fingerprints"):
        attach(store, manifest, folder, "kd=clean", "join=fingerprint")
    _, coverage, _ = attach(store, manifest, folder, "kd=clean")
    assert "audio not checked" in coverage.line() and coverage.with_logits == 24


def test_verify_false_reads_an_unfinished_store_with_a_warning(store, capsys):
    import zarr

    zarr.open_group(store, mode="r+", use_consolidated=False)["chunk_done"][0] = False
    original = load_manifest("data_manifests/tiny")
    with pytest.raises(Exception, match="unfinished: 1 of .* chunks not written"):
        attach(store, original, Path("data_manifests/tiny"), "kd=clean", "missing=mask")
    attach(store, original, Path("data_manifests/tiny"), "kd=clean", "missing=mask", "verify=false")
    assert "verify=false: reading without checking" in capsys.readouterr().err


def _store_with_bad_rows(path: str, bad: dict[str, float]) -> None:
    """A finished store of the tiny manifest whose valid rows `bad` hold one value each (NaN, inf or
    float16's limit), written in stored form the way a forger who recomputes the checksums would."""
    from pipeline.store import create_store, finalize_store, mark_chunk_done
    from pipeline.store.format import open_store
    from pipeline.store.writer import write_stored_chunk

    manifest = load_manifest("data_manifests/tiny")
    create_store(
        path,
        clip_ids=[c.clip_id for c in manifest.clips],
        splits=[c.split for c in manifest.clips],
        folds=[0] * len(manifest.clips),
        vocabulary_mids=manifest.mids,
        vocabulary_names=[label.name for label in manifest.labels],
        activation="sigmoid",
        attrs={
            "teacher": {"model": "x", "checkpoint_sha256": "e" * 64},
            "front_end": {"sample_rate": 16000},
            "manifest": {"name": "tiny", "sha256": {"clips.csv": "0" * 64}},
            "views": {"count": 0, "seed": 0},
        },
        fingerprints=[c.fingerprint for c in manifest.clips],
        chunk_clips=8,
    )
    _, layout = open_store(path)
    logits = np.random.default_rng(0).standard_normal((len(manifest.clips), 4)).astype(np.float16)
    for row, clip in enumerate(manifest.clips):
        if clip.clip_id in bad:
            logits[row] = bad[clip.clip_id]
    for chunk in range(layout.n_chunks):
        start, stop = layout.chunk_bounds(chunk)
        sha = write_stored_chunk(
            path,
            chunk,
            {
                "valid": np.ones(stop - start, dtype=bool),
                "teacher_index": np.zeros(stop - start, dtype=np.int16),
                "logits": logits[start:stop],
            },
        )
        mark_chunk_done(path, chunk, sha)
    finalize_store(path, {})


def test_valid_rows_with_non_finite_or_saturated_logits_are_reported_and_refused(project):
    """Stage two runs verify's row check: NaN/inf rows of valid clips were masked silently and
    float16-saturated ones (65504 everywhere) trained, under "coverage 100%"."""
    from pipeline.store import verify_store

    train = [c.clip_id for c in load_manifest("data_manifests/tiny").select("train")]
    bad = {train[1]: float("nan"), train[4]: float("inf"), train[6]: 65504.0}
    _store_with_bad_rows("stores/bad.zarr", bad)
    problems = " ".join(verify_store("stores/bad.zarr"))
    assert "non-finite values in valid rows" in problems and "float16's limit (65504)" in problems
    with pytest.raises(DistillError, match="3 train clips marked valid hold non-finite or float16-saturated") as caught:
        attach_store(
            config_for("stores/bad.zarr"),
            *lab_b("same", load_manifest("data_manifests/tiny").clips),
            load_manifest("data_manifests/tiny").select("train"),
            tiny_config().front_end(),
        )
    assert all(clip in str(caught.value) for clip in bad)
    manifest, folder = lab_b("same2", load_manifest("data_manifests/tiny").clips)
    rows, coverage, _ = attach_store(
        config_for("stores/bad.zarr", "missing=mask"),
        manifest,
        folder,
        manifest.select("train"),
        tiny_config().front_end(),
    )
    assert sorted(coverage.bad_values) == sorted(bad) and coverage.missing == []
    assert "3 with non-finite or saturated logits" in coverage.line()
    assert coverage.with_logits == len(train) - 3
    assert (rows.rows[[train.index(c) for c in bad]] == -1).all()  # trained without KD
