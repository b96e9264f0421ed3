"""AudioSet as labs hold it: PaSST/EfficientAT mp3 HDF5 and PANNs waveform HDF5 files (tests/helpers/audioset_hdf5_files.py
writes them as the upstream packers do). The reference for every clip is the same audio as an ordinary file
read by FORMAT=audioset, the path WAV sources have always taken."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import h5py
import numpy as np
import pytest
import soundfile as sf

from pipeline.audio_hdf5 import parse_locator
from pipeline.audio_source import AudioSource
from pipeline.manifests import ManifestError, build_manifest, load_manifest, prepare
from pipeline.manifests.audioset_hdf5 import normalised_clip_id, youtube_id_and_start
from pipeline.store import LogitTable, create_store
from pipeline.store.matching import match_clips
from tests.helpers import audioset_hdf5_files as files
from tests.helpers.store import provenance


@pytest.fixture
def labels(tmp_path):
    return files.write_labels(tmp_path / "class_labels_indices.csv")


@pytest.fixture
def segments(tmp_path):
    folder = tmp_path / "meta"
    folder.mkdir()
    return files.write_segments(folder)


def by_id(clips):
    return {c.clip_id: c for c in clips}


def extract_rows(hdf_folder: Path, out: Path) -> Path:
    """Each row of the HDF5 files as an ordinary audio file named the downloaders' way (Y<id>.mp3 / .wav)."""
    out.mkdir()
    for path in sorted(hdf_folder.iterdir()):
        with h5py.File(path, "r") as f:
            for row, raw in enumerate(f["audio_name"][:]):
                name = Path(raw.decode()).name
                if not name:
                    continue
                if "mp3" in f:
                    (out / name).write_bytes(f["mp3"][row].tobytes())
                elif f["waveform"].dtype == np.int16:
                    sf.write(out / name, f["waveform"][row], int(f.attrs["sample_rate"]), subtype="PCM_16")
                else:
                    sf.write(out / name, f["waveform"][row], int(f.attrs["sample_rate"]), subtype="FLOAT")
    return out


@pytest.mark.parametrize("layout", ["mp3", "int16", "float32"])
def test_hdf5_rows_give_the_ids_labels_checks_and_fingerprints_of_the_same_audio_as_files(
    tmp_path, labels, segments, layout
):
    hdf = tmp_path / "hdf"
    if layout == "mp3":
        files.write_mp3_layout(hdf)
    else:
        files.write_waveform_layout(hdf, dtype=np.int16 if layout == "int16" else np.float32)
    got_labels, clips = prepare("audioset-hdf5", hdf, labels, segments, progress=False)
    _, reference = prepare("audioset", extract_rows(hdf, tmp_path / "as_files"), labels, segments, progress=False)
    assert [label.mid for label in got_labels] == files.MIDS  # 11 classes: not only 527
    assert len(clips) == len(files.CLIPS) == len(reference)
    mine, theirs = by_id(clips), by_id(reference)
    assert set(mine) == set(theirs) == {f"{y}_{s:.3f}" for y, s, _, _ in files.CLIPS}
    for clip_id, clip in mine.items():
        ref = theirs[clip_id]
        assert (clip.labels, clip.split, clip.sample_rate, clip.channels) == (
            ref.labels,
            ref.split,
            ref.sample_rate,
            ref.channels,
        )
        assert clip.fingerprint == ref.fingerprint and len(clip.fingerprint) == 32
        assert clip.duration_s == pytest.approx(ref.duration_s)
    # the original name is kept in the path, the split comes from the file name
    names = {parse_locator(c.path)[2] for c in clips}
    assert "00/Y0ABcdEfGh_i.mp3" in names if layout == "mp3" else "Y0ABcdEfGh_i.wav" in names
    assert {c.clip_id for c in clips if c.split == "eval"} == {"eVal0000001_20.000", "eVal0000002_0.000"}


def test_the_id_rule():
    assert youtube_id_and_start("00/Y--4gqARaEJE.mp3") == ("--4gqARaEJE", None)
    assert youtube_id_and_start("YYxlGt805lTA.wav") == ("YxlGt805lTA", None)  # one Y is the prefix, one the id's
    assert youtube_id_and_start("Y--4gqARaEJE_30.000_40.000.wav") == ("--4gqARaEJE", 30.0)
    assert youtube_id_and_start("--4gqARaEJE_30") == ("--4gqARaEJE", 30.0)
    assert youtube_id_and_start("Yshort.mp3") is None
    assert normalised_clip_id("--4gqARaEJE", 30.0) == "--4gqARaEJE_30.000"
    assert normalised_clip_id("--4gqARaEJE", None) == "--4gqARaEJE"


def test_without_segment_lists_ids_are_youtube_ids_and_the_summary_says_so(tmp_path, labels):
    files.write_mp3_layout(tmp_path / "hdf")
    manifest = build_manifest(
        "as_mp3", "audioset-hdf5", tmp_path / "hdf", tmp_path / "manifests", labels, progress=False
    )
    assert {c.clip_id for c in manifest.clips} == {y for y, _, _, _ in files.CLIPS}
    assert manifest.info["ids_without_start"] == len(files.CLIPS)
    assert manifest.info["hdf5_files"]["unbalanced_train_segments_mp3.hdf"] == "mp3"
    from pipeline.manifests import summary_line

    assert "clip ids without a start time" in summary_line(manifest, "x")


def test_bad_rows_are_reported_by_file_and_row(tmp_path, labels, segments):
    hdf = tmp_path / "hdf"
    clips = list(files.CLIPS) + [("--4gqARaEJE", 0.0, [0, 3], "unbalanced_train")]  # the same clip twice
    files.write_mp3_layout(hdf, clips, corrupt={"YxlGt805lTA"})
    with h5py.File(hdf / "eval_segments_mp3.hdf", "r+") as f:  # labels that disagree with eval_segments.csv
        f["target"][0] = np.packbits(files.multi_hot([1]))
    with pytest.raises(ManifestError) as caught:
        prepare("audioset-hdf5", hdf, labels, segments, progress=False)
    text = str(caught.value)
    assert "balanced_train_segments_mp3.hdf row 1: audio YYxlGt805lTA.mp3:" in text
    assert (
        "unbalanced_train_segments_mp3.hdf row 2: duplicate clip id '--4gqARaEJE_0.000' (00/Y--4gqARaEJE.mp3; "
        "first at balanced_train_segments_mp3.hdf row 0)"
    ) in text
    assert (
        "eval_segments_mp3.hdf row 0: YeVal0000001.mp3: target holds ['/m/a1'], eval_segments.csv row 4 lists "
        "['/m/a7']" in text
    )


def test_a_vocabulary_of_another_width_is_refused_by_file(tmp_path, segments):
    files.write_mp3_layout(tmp_path / "hdf")
    labels = files.write_labels(tmp_path / "labels.csv", files.MIDS + [f"/m/x{i}" for i in range(8)])
    with pytest.raises(
        ManifestError,
        match=r"balanced_train_segments_mp3.hdf: target holds 2 bytes per clip; "
        r"19 classes \(LABELS\) pack into 3",
    ):
        prepare("audioset-hdf5", tmp_path / "hdf", labels, None, progress=False)


def test_panns_blank_rows_are_skipped_and_counted(tmp_path, labels, segments):
    files.write_waveform_layout(tmp_path / "hdf", blank_rows=2)
    manifest = build_manifest(
        "as_wave", "audioset-hdf5", tmp_path / "hdf", tmp_path / "m", labels, segments, progress=False
    )
    assert manifest.info["empty_rows"] == 2 * 3 and len(manifest.clips) == len(files.CLIPS)


def _read_all(args):
    source, clips = args
    return [source.read(c) for c in clips]


def test_stage_readers_decode_rows_in_forked_workers_with_their_own_handles(tmp_path, labels, segments):
    hdf = tmp_path / "hdf"
    files.write_mp3_layout(hdf)
    manifest = build_manifest("as_mp3", "audioset-hdf5", hdf, tmp_path / "m", labels, segments, progress=False)
    source = AudioSource(manifest)
    parent = [source.read(c) for c in manifest.clips]  # the parent holds open handles now
    reference = extract_rows(hdf, tmp_path / "as_files")
    from pipeline.audio import read_audio

    for clip, samples in zip(manifest.clips, parent):
        assert np.array_equal(samples, read_audio(reference / Path(parse_locator(clip.path)[2]).name))
    with multiprocessing.get_context("fork").Pool(2) as pool:
        halves = pool.map(_read_all, [(source, manifest.clips[:4]), (source, manifest.clips[4:])])
    assert all(np.array_equal(a, b) for a, b in zip(halves[0] + halves[1], parent))
    from concurrent.futures import ThreadPoolExecutor

    fresh = AudioSource(manifest)  # threads of one process share its handles (stage one's decode threads)
    with ThreadPoolExecutor(4) as threads:
        together = list(threads.map(fresh.read, manifest.clips * 3))
    assert all(np.array_equal(a, b) for a, b in zip(together, parent * 3))


def test_a_rewritten_file_is_refused_rather_than_read_at_the_old_row(tmp_path, labels, segments):
    hdf = tmp_path / "hdf"
    files.write_mp3_layout(hdf)
    manifest = build_manifest("as_mp3", "audioset-hdf5", hdf, tmp_path / "m", labels, segments, progress=False)
    files.write_mp3_layout(hdf, list(reversed(files.CLIPS)))
    clip = next(c for c in manifest.clips if c.path.startswith("balanced_train_segments_mp3.hdf#0#"))
    with pytest.raises(ValueError, match=r"row 0: holds 'Y-0SdAVK79lg.mp3', the manifest expects 'Y--4gqARaEJE.mp3'"):
        AudioSource(manifest).read(clip)


def _store_for(path, manifest):
    create_store(
        path,
        clip_ids=[c.clip_id for c in manifest.clips],
        splits=[c.split for c in manifest.clips],
        folds=[None] * len(manifest.clips),
        vocabulary_mids=manifest.mids,
        vocabulary_names=[label.name for label in manifest.labels],
        activation="sigmoid",
        attrs=provenance(),
        fingerprints=[c.fingerprint for c in manifest.clips],
    )
    return LogitTable.open(path, load_views=False, verify=False)


def test_a_store_of_one_layout_joins_the_other_by_id_and_a_same_audio_copy_by_fingerprint(tmp_path, labels, segments):
    mp3 = build_manifest(
        "lab_a",
        "audioset-hdf5",
        files.write_mp3_layout(tmp_path / "a")["eval"].parent,
        tmp_path / "m",
        labels,
        segments,
        progress=False,
    )
    panns = build_manifest(
        "lab_b",
        "audioset-hdf5",
        files.write_waveform_layout(tmp_path / "b")["eval"].parent,
        tmp_path / "m",
        labels,
        segments,
        progress=False,
    )
    wavs = build_manifest(
        "lab_c",
        "audioset",
        extract_rows(tmp_path / "b", tmp_path / "c"),
        tmp_path / "m",
        labels,
        segments,
        progress=False,
    )

    def ids(m):
        return [c.clip_id for c in m.clips]

    def prints(m):
        return [c.fingerprint for c in m.clips]

    table = _store_for(tmp_path / "a.zarr", mp3)
    strict = match_clips(table, ids(panns), prints(panns), "id")  # mp3 and waveforms never share samples
    assert len(strict.audio_differs) == len(files.CLIPS) and (strict.rows < 0).all()
    across = match_clips(table, ids(panns), prints(panns), "recording")
    assert (across.rows >= 0).all() and len(across.other_encoding) == len(files.CLIPS)
    assert [table.clip_ids[r] for r in across.rows] == ids(panns)
    same_audio = match_clips(_store_for(tmp_path / "b.zarr", panns), ids(wavs), prints(wavs), "recording")
    assert (same_audio.rows >= 0).all() and same_audio.other_encoding == []


@pytest.mark.slow  # a training with two DataLoader processes and stage one: a minute on two shared cores
def test_both_stages_train_and_label_straight_from_the_hdf5_rows(tmp_path, labels, segments, monkeypatch):
    """Stage two's DataLoader (two forked workers) trains from mp3 rows; stage one labels every row, and its
    logits equal the teacher run on the same audio read from ordinary files."""
    import torch
    import zarr

    from pipeline.audio import read_audio
    from pipeline.checkpoints import model_from_checkpoint
    from pipeline.config import FrontEndConfig
    from pipeline.features import wave_to_features
    from pipeline.stage_one import StageOneJob, run_stage_one
    from pipeline.training import run_training
    from tests.helpers.tiny_project import tiny_config

    monkeypatch.chdir(tmp_path)
    hdf = tmp_path / "hdf"
    files.write_mp3_layout(hdf)
    manifest = build_manifest("as_mp3", "audioset-hdf5", hdf, "data_manifests", labels, segments, progress=False)
    summary = run_training("as_mp3", tiny_config(epochs=1, batch_size=2, num_workers=2), "teacher", progress=False)
    assert summary["eval_clips"] == 2 and 0.0 <= summary["map"] <= 1.0  # evaluated on the eval file's rows
    run_stage_one(
        StageOneJob(
            dataset="as_mp3",
            teacher="runs/as_mp3/teacher",
            out="stores/t.zarr",
            scheduler="inline",
            chunk_clips=4,
            dtype="float32",
        ),
        progress=False,
    )
    group = zarr.open_group("stores/t.zarr", mode="r")
    assert list(group["clip_id"][:]) == [c.clip_id for c in manifest.clips]
    model, _, ckpt = model_from_checkpoint("runs/as_mp3/teacher")
    reference = extract_rows(hdf, tmp_path / "as_files")
    waves = [read_audio(reference / Path(parse_locator(c.path)[2]).name) for c in manifest.clips]
    with torch.no_grad():
        expected = torch.stack(
            [model(wave_to_features(w, FrontEndConfig(**ckpt["front_end"]))[None])[0] for w in waves]
        ).numpy()
    assert np.allclose(group["logits"][:], expected, atol=1e-4)


def test_stage_two_joins_a_store_of_the_other_layout_with_join_recording_and_says_how(tmp_path, labels, segments):
    from pipeline.config import FrontEndConfig
    from pipeline.stage_two.run import DistillError, attach_store
    from tests.helpers.store import fill_store
    from tests.helpers.tiny_project import tiny_config

    mp3 = build_manifest(
        "lab_a",
        "audioset-hdf5",
        files.write_mp3_layout(tmp_path / "a")["eval"].parent,
        tmp_path / "m",
        labels,
        segments,
        progress=False,
    )
    panns = build_manifest(
        "lab_b",
        "audioset-hdf5",
        files.write_waveform_layout(tmp_path / "b")["eval"].parent,
        tmp_path / "m",
        labels,
        segments,
        progress=False,
    )
    store = tmp_path / "lab_a.zarr"
    _store_for(store, mp3)
    fill_store(store)
    train = panns.select("train")
    for join in ("id", "recording"):
        config = tiny_config(kd="clean", logits=str(store), join=join)
        if join == "id":
            with pytest.raises(
                DistillError,
                match=r"5 train clips have the store's clip id but other audio.*"
                r"JOIN=recording",
            ):
                attach_store(config, panns, tmp_path / "m" / "lab_b", train, FrontEndConfig())
            continue
        rows, coverage, _ = attach_store(config, panns, tmp_path / "m" / "lab_b", train, FrontEndConfig())
        assert (rows.rows >= 0).all()
        assert coverage.line().endswith(
            "joined by id (JOIN=recording): 0 with the store's audio fingerprint, 5 another encoding of the recording"
        )


def test_make_manifests_and_make_pack_take_the_hdf5_files(tmp_path, labels, segments, capsys):
    from pipeline.audio import float_to_int16
    from pipeline.manifests import pack_dataset
    from stages.manifests import main

    files.write_waveform_layout(tmp_path / "hdf", blank_rows=1)
    main(
        [
            "--dataset",
            "as_wave",
            "--format",
            "audioset-hdf5",
            "--data-root",
            str(tmp_path / "hdf"),
            "--labels",
            str(labels),
            "--segments",
            ",".join(map(str, segments)),
            "--out-root",
            str(tmp_path / "m"),
        ]
    )
    line = capsys.readouterr().out
    assert "as_wave: 7 clips, 11 classes (train 5, eval 2), 3 empty HDF5 rows skipped" in line
    assert "audio fully decoded and checked" in line
    pack_dataset(tmp_path / "m" / "as_wave", tmp_path / "packed", progress=False)
    manifest = load_manifest(tmp_path / "m" / "as_wave")
    packed, rows = AudioSource(manifest), AudioSource(manifest)
    rows.packed = None  # the same clips read from the PANNs rows instead of the shard
    for clip in manifest.clips:
        assert np.array_equal(packed.read(clip), float_to_int16(rows.read(clip)) / np.float32(32768.0))
