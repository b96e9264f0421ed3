"""`python -m pipeline.store`: every command, its exit status and its one-line errors."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

from pipeline.store import LogitTable, check_store
from pipeline.store.cli import main
from pipeline.store.writer import read_failures
from tests.helpers import REPO_ROOT
from tests.helpers.store import MIDS, clip_ids, fill_store, make_store, provenance

COMMANDS = ("inspect", "verify", "export", "ensemble", "merge", "subset", "import")


@pytest.fixture
def store(tmp_path) -> Path:
    path = make_store(tmp_path / "a.zarr", views=2, view_seed=7, shard_clips=0)  # one chunk per file
    fill_store(path, views=2, failed={"clip009": "unreadable header"})
    return path


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_every_command_has_help_and_usage_errors_exit_2():
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    for command in COMMANDS:
        result = subprocess.run(
            [sys.executable, "-m", "pipeline.store", command, "--help"], capture_output=True, text=True, env=env
        )
        assert result.returncode == 0 and "usage: python -m pipeline.store " + command in result.stdout
    result = subprocess.run([sys.executable, "-m", "pipeline.store", "verify"], capture_output=True, text=True, env=env)
    assert result.returncode == 2 and "the following arguments are required: store" in result.stderr


def test_inspect_text_and_json_claim_verified_only_when_verified(store, capsys):
    code, out, _ = run(capsys, "inspect", store)
    assert code == 0 and "NOT verified: run verify" in out and "teacher    ast_tiny  checkpoint aaaaaaaaaaaa" in out
    assert "coverage   train: 6/6 valid" in out and "views      2 per clip (seed 7)" in out
    code, out, _ = run(capsys, "inspect", store, "--json")
    info = json.loads(out)
    assert info["verified"] is None and info["vocabulary"]["classes"] == len(MIDS) and info["failures"]["count"] == 1
    assert info["digest"] == check_store(store).digest and info["software"]["version"]
    code, out, _ = run(capsys, "inspect", store, "--verify")
    assert code == 0 and "(verified: every chunk re-hashed)" in out


def test_verify_names_bad_chunks_and_checks_the_digest(store, capsys):
    digest = check_store(store).digest
    code, out, _ = run(capsys, "verify", store, "--digest", digest)
    assert code == 0 and f"digest     {digest}  (matches --digest)" in out and "verified   yes" in out
    code, out, _ = run(capsys, "verify", store, "--digest", "ab" * 32)
    assert code == 1 and "is not the published" in out
    (store / "logits" / "c" / "1" / "0").write_bytes(b"not zstd at all")
    code, out, _ = run(capsys, "verify", store)
    assert (
        code == 1
        and "problem    chunk 1 (clips clip004, clip005, clip006, clip007): array 'logits' does not decode" in out
    )


def test_verify_with_a_manifest_reports_coverage_and_vocabulary(store, tmp_path, capsys, monkeypatch):
    from pipeline.manifests import Clip, Label, write_manifest

    monkeypatch.chdir(tmp_path)
    labels = [Label(i, mid, mid) for i, mid in enumerate(MIDS[::-1])]
    clips = [Clip(c, f"{c}.wav", (), "train") for c in clip_ids(12)]
    write_manifest(tmp_path / "data_manifests" / "labb", "labb", tmp_path, "fsd50k", labels, clips)
    code, out, _ = run(capsys, "verify", store, "--manifest", "labb")
    assert code == 1 and "manifest   labb: 9/12 clips have valid logits" in out
    assert "vocabulary: the store's 6 classes differ from labb's 6 (same classes, other order)" in out


def test_export_writes_one_zip_that_reads_and_reproduces_the_digest(store, tmp_path, capsys):
    out_zip = tmp_path / "pub" / "a.zarr.zip"
    out_zip.parent.mkdir()
    code, out, _ = run(capsys, "export", store, out_zip)
    digest = check_store(store).digest
    assert code == 0 and digest in out and out_zip.is_file() and not list(out_zip.parent.glob("*.partial"))
    assert check_store(out_zip).digest == digest
    table = LogitTable.open(out_zip)
    np.testing.assert_array_equal(table.logits_for(np.arange(10)), LogitTable.open(store).logits_for(np.arange(10)))
    assert zarr.open_group(zarr.storage.ZipStore(out_zip, mode="r"), mode="r").attrs["format"] == "cmkd-logits"
    code, _, err = run(capsys, "export", store, tmp_path / "a.tar")
    assert code == 1 and err.startswith("error: ") and err.count("\n") == 1


def test_subset_by_split_and_clips(store, tmp_path, capsys):
    code, out, _ = run(capsys, "subset", store, tmp_path / "train.zarr", "--split", "train")
    train = LogitTable.open(tmp_path / "train.zarr")
    assert code == 0 and len(train) == 6 and "6 clips, 6 valid" in out
    attrs = zarr.open_group(str(tmp_path / "train.zarr"), mode="r").attrs.asdict()
    assert attrs["derived"]["inputs"][0]["digest"] == check_store(store).digest
    np.testing.assert_array_equal(train.logits_for(train.rows(["clip001"])), LogitTable.open(store).logits_for([1]))
    assert train.view_for(train.rows(["clip001"])[0], 1) == LogitTable.open(store).view_for(1, 1)
    (tmp_path / "few.txt").write_text("clip009\nclip003\n")
    assert run(capsys, "subset", store, tmp_path / "few.zarr", "--clips", tmp_path / "few.txt")[0] == 0
    few = LogitTable.open(tmp_path / "few.zarr")
    assert few.clip_ids == ["clip009", "clip003"] and few.valid.tolist() == [False, True]
    (tmp_path / "bad.txt").write_text("clip404\n")
    code, _, err = run(capsys, "subset", store, tmp_path / "bad.zarr", "--clips", tmp_path / "bad.txt")
    assert code == 1 and "1 requested clips are not in the store (first: ['clip404'])" in err


def test_merge_joins_shards_and_refuses_disagreeing_overlaps(store, tmp_path, capsys):
    run(capsys, "subset", store, tmp_path / "train.zarr", "--split", "train")
    run(capsys, "subset", store, tmp_path / "eval.zarr", "--split", "eval")
    code, out, _ = run(capsys, "merge", tmp_path / "train.zarr", tmp_path / "eval.zarr", store, tmp_path / "all.zarr")
    merged = LogitTable.open(tmp_path / "all.zarr")
    assert code == 0 and sorted(merged.clip_ids) == clip_ids(10)
    original = LogitTable.open(store)
    np.testing.assert_array_equal(merged.logits_for(merged.rows(clip_ids(10))), original.logits_for(np.arange(10)))
    other = make_store(tmp_path / "other.zarr", views=2, view_seed=7, attrs=provenance(checkpoint="b" * 64))
    fill_store(other, views=2)
    code, _, err = run(capsys, "merge", store, other, tmp_path / "x.zarr")
    assert code == 1 and "teacher checkpoint_sha256 differ" in err
    twin = make_store(tmp_path / "twin.zarr", views=2, view_seed=7)
    fill_store(twin, views=2)  # same ids, clip009 valid here: the rows disagree
    code, _, err = run(capsys, "merge", store, twin, tmp_path / "y.zarr")
    assert code == 1 and "with other logits, views, split or audio" in err


def test_ensemble_weights_spaces_and_refusals(store, tmp_path, capsys):
    second = make_store(tmp_path / "b.zarr", attrs=provenance(checkpoint="b" * 64))
    logits = fill_store(second)["logits"]
    code, out, _ = run(capsys, "ensemble", store, second, tmp_path / "e.zarr", "--weights", "1,3")
    assert code == 0
    ensemble, first = LogitTable.open(tmp_path / "e.zarr"), LogitTable.open(store)
    expected = 0.25 * first.logits_for(np.arange(9)) + 0.75 * logits[:9].astype(np.float16).astype(np.float32)
    np.testing.assert_allclose(ensemble.logits_for(np.arange(9)), expected, atol=2e-2)
    assert not ensemble.valid[9] and ensemble.num_views == 0
    members = ensemble.teacher["ensemble"]["members"]
    assert [m["weight"] for m in members] == [0.25, 0.75] and members[0]["digest"] == check_store(store).digest
    code, _, _ = run(capsys, "ensemble", store, second, tmp_path / "p.zarr", "--space", "probs")
    sigmoid = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    mean_p = 0.5 * sigmoid(first.logits_for([0])) + 0.5 * sigmoid(logits[:1].astype(np.float16).astype(np.float32))
    np.testing.assert_allclose(sigmoid(LogitTable.open(tmp_path / "p.zarr").logits_for([0])), mean_p, atol=2e-3)
    small = make_store(tmp_path / "small.zarr", n=8)
    fill_store(small)
    code, _, err = run(capsys, "ensemble", store, small, tmp_path / "s.zarr")
    assert code == 1 and "different clip sets" in err and "--clips intersection" in err
    assert run(capsys, "ensemble", store, small, tmp_path / "s.zarr", "--clips", "intersection")[0] == 0
    assert len(LogitTable.open(tmp_path / "s.zarr")) == 8
    other_vocab = make_store(tmp_path / "v.zarr", mids=MIDS[::-1])
    fill_store(other_vocab)
    code, _, err = run(capsys, "ensemble", store, other_vocab, tmp_path / "w.zarr")
    assert code == 1 and "vocabulary differs" in err and "pass --vocab-remap" in err
    assert run(capsys, "ensemble", store, other_vocab, tmp_path / "w.zarr", "--vocab-remap")[0] == 0
    remapped, reversed_logits = LogitTable.open(tmp_path / "w.zarr"), LogitTable.open(other_vocab).logits_for([0])
    np.testing.assert_allclose(
        remapped.logits_for([0]), 0.5 * first.logits_for([0]) + 0.5 * reversed_logits[:, ::-1], atol=2e-2
    )


def _vocabulary_csv(path: Path) -> Path:
    path.write_text("index,mid,display_name\n" + "".join(f"{i},{m},{m[3:]}\n" for i, m in enumerate(MIDS)))
    return path


def test_import_efficientat_reads_data_only_pickles(tmp_path, capsys):
    dense = np.random.default_rng(0).standard_normal((5, len(MIDS))).astype(np.float32)
    np.save(tmp_path / "teacher.npy", dense)
    index = {f"audio/Y{i}_30.000.wav": (4 - i) for i in range(5)}
    (tmp_path / "index.pkl").write_bytes(pickle.dumps(index))
    vocab = _vocabulary_csv(tmp_path / "class_labels_indices.csv")
    args = [
        "import",
        "efficientat",
        tmp_path / "out.zarr",
        "--logits",
        tmp_path / "teacher.npy",
        "--index",
        tmp_path / "index.pkl",
        "--teacher",
        "passt_ensemble",
        "--vocabulary",
        vocab,
    ]
    code, out, _ = run(capsys, *args)
    table = LogitTable.open(tmp_path / "out.zarr")
    assert code == 0 and table.clip_ids == [f"Y{i}_30.000" for i in range(5)]
    np.testing.assert_allclose(table.logits_for(table.rows(["Y0_30.000"]))[0], dense[4], atol=1e-2)
    imported = table.attrs["imported"]
    assert imported["format"] == "efficientat" and set(imported["files"]) == {"teacher.npy", "index.pkl"}

    class Payload:  # what a hostile index could carry: a callable run at load time
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"a.wav": Payload()}))
    code, _, err = run(capsys, *args[:5], "--index", tmp_path / "evil.pkl", *args[7:])
    assert code == 1 and ("refusing posix.system" in err or "refusing os.system" in err)
    (tmp_path / "numpy.pkl").write_bytes(pickle.dumps({"a.wav": np.int64(1)}))
    code, _, err = run(capsys, *args[:5], "--index", tmp_path / "numpy.pkl", *args[7:])
    assert code == 1 and "refusing numpy" in err
    (tmp_path / "wrong.pkl").write_bytes(pickle.dumps({"a.wav": 7}))
    code, _, err = run(capsys, *args[:5], "--index", tmp_path / "wrong.pkl", *args[7:])
    assert code == 1 and "the index does not belong to these logits" in err


def test_import_with_a_manifest_marks_clips_the_release_lacks(tmp_path, capsys, monkeypatch):
    import h5py

    from pipeline.manifests import Clip, Label, write_manifest

    monkeypatch.chdir(tmp_path)
    write_manifest(
        tmp_path / "data_manifests" / "labb",
        "labb",
        tmp_path,
        "fsd50k",
        [Label(i, m, m) for i, m in enumerate(MIDS)],
        [Clip(f"Y{i}", f"Y{i}.wav", (), "train") for i in range(4)],
    )
    probabilities = np.array([[0.9, 0.5], [0.8, 0.1], [0.7, 0.6]], dtype=np.float16)
    with h5py.File(tmp_path / "logits_ep1_0.h5", "w") as handle:
        handle["topk_values"] = probabilities
        handle["topk_indexes"] = np.array([[0, 3], [5, 1], [2, 4]], dtype=np.int16)
        handle["seeds"] = np.array([11, 12, 13], dtype=np.int32)
    (tmp_path / "logits_ep1_0.tsv").write_text("filename\tstart\tend\nY0.wav\t0\t10\nY1.wav\t0\t10\nY2.wav\t0\t10\n")
    vocab = _vocabulary_csv(tmp_path / "labels.csv")
    code, out, _ = run(
        capsys,
        "import",
        "ced",
        "ced.zarr",
        "--logits",
        "logits_ep1_0.h5",
        "--index",
        "logits_ep1_0.tsv",
        "--teacher",
        "ced_base",
        "--vocabulary",
        vocab,
        "--manifest",
        "labb",
    )
    assert code == 0 and "4 clips, 3 valid" in out
    table = LogitTable.open("ced.zarr")
    assert table.layout.topk == 2 and table.valid.tolist() == [True, True, True, False]
    rebuilt = 1 / (1 + np.exp(-table.logits_for([0])[0]))
    np.testing.assert_allclose(rebuilt[[0, 3]], [0.9, 0.5], atol=2e-3)
    np.testing.assert_allclose(rebuilt[[1, 2, 4, 5]], 0.5 / 4, atol=2e-3)  # CED's fill: min(top-k) / (C - k)
    assert check_store("ced.zarr").ok
    assert read_failures(zarr.open_group("ced.zarr", mode="r")) == [("Y3", "not in the release", 0)]


@pytest.mark.parametrize("weights", ["nan,1", "inf,1", "1,-1"])
def test_ensemble_weights_are_checked_before_anything_is_written(store, tmp_path, capsys, weights):
    second = make_store(tmp_path / "b.zarr", attrs=provenance(checkpoint="b" * 64))
    fill_store(second)
    code, _, err = run(capsys, "ensemble", store, second, tmp_path / "e.zarr", "--weights", weights)
    assert code == 1 and "--weights needs 2 non-negative numbers" in err, err
    assert not (tmp_path / "e.zarr").exists()  # before: NaN was refused late, naming rows, leaving a half store
