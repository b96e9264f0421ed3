"""`make predict`: recordings of any length, rate and channel count tagged window by window with the
model's own front end; every score is checked against the per-clip training path (torchaudio's Kaldi
fbank through `wave_to_features`, on samples from `read_audio`), not against the tagger itself."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from pipeline.audio import read_audio, write_wav
from pipeline.checkpoints import load_checkpoint, model_from_checkpoint, save_checkpoint
from pipeline.config import FrontEndConfig
from pipeline.features import wave_to_features
from pipeline.inference import PredictJob, PredictSettings, run_predict
from pipeline.inference.stream import AudioStream
from pipeline.inference.windows import window_count, window_length, windows
from pipeline.manifests import load_manifest
from pipeline.models import create_model
from stages import predict as predict_driver
from tests.helpers.checkpoints import ast_layout

TOLERANCE = 1e-5  # probabilities: the batched front end equals the per-clip one to float rounding


def reference_scores(run: Path, wave: np.ndarray, activation: str = "sigmoid") -> np.ndarray:
    """The model's scores for one window as training computed its input (per clip, torchaudio fbank)."""
    model, _, ckpt = model_from_checkpoint(run)
    features = wave_to_features(wave, FrontEndConfig(**ckpt["front_end"]))[None]
    with torch.no_grad():
        logits = model(features).double()
    return (logits.softmax(1) if activation == "softmax" else logits.sigmoid())[0].numpy()


def predict(run, audio, out, **settings) -> tuple[pd.DataFrame, object]:
    job = PredictJob(str(run), str(audio), str(out), PredictSettings(**settings), progress=False)
    summary = run_predict(job, log=lambda line: None)
    return pd.read_csv(out, dtype={"id": str, "path": str}), summary


def scores_of(table: pd.DataFrame) -> np.ndarray:
    return table.filter(like="score:").to_numpy()


def test_a_short_file_is_one_window_padded_as_in_training(student, tmp_path):
    rng = np.random.default_rng(1)
    write_wav(tmp_path / "short.wav", 0.3 * rng.standard_normal(4800).astype(np.float32))  # 0.3 s
    table, summary = predict(student, tmp_path / "short.wav", tmp_path / "tags.csv", frames=True)
    frames = pd.read_csv(tmp_path / "tags.windows.csv", dtype={"id": str})
    assert summary.failures == [] and table["windows"].tolist() == [1] and len(frames) == 1
    assert frames["start_s"][0] == 0.0 and frames["end_s"][0] == pytest.approx(0.3)
    expected = reference_scores(student, read_audio(tmp_path / "short.wav"))
    np.testing.assert_allclose(scores_of(table)[0], expected, atol=TOLERANCE)
    assert (
        table["top1_mid"][0]
        == load_manifest(student.parents[2] / "data_manifests" / "tiny").mids[int(np.argmax(expected))]
    )


def test_a_90_s_file_is_covered_by_counted_placed_windows(student, tmp_path):
    rng = np.random.default_rng(2)
    seconds = 90
    wave = (0.1 * rng.standard_normal(16000 * seconds)).astype(np.float32)
    wave[16000 * 40 : 16000 * 41] += 0.5 * np.sin(np.arange(16000) * 2 * np.pi * 2500 / 16000).astype(np.float32)
    write_wav(tmp_path / "long.wav", wave)
    table, _ = predict(student, tmp_path / "long.wav", tmp_path / "tags.csv", frames=True, batch_size=7)
    frames = pd.read_csv(tmp_path / "tags.windows.csv", dtype={"id": str})
    front = FrontEndConfig(**load_checkpoint(student / "checkpoints" / "final.pt")["front_end"])
    window, hop, total = window_length(front), window_length(front) // 2, 16000 * seconds
    count = 1 + math.ceil((total - window) / hop)
    assert len(frames) == count == table["windows"][0] == window_count(total, window, hop)
    np.testing.assert_allclose(frames["start_s"], np.arange(count) * hop / 16000)
    np.testing.assert_allclose(frames["end_s"], np.minimum(np.arange(count) * hop + window, total) / 16000)
    assert frames["end_s"].iloc[-1] == seconds and frames["end_s"].iloc[-2] < seconds  # the last one reaches the end
    decoded = read_audio(tmp_path / "long.wav")
    for k in (0, 123, count - 1):  # first, the tone, the last (shorter, padded)
        segment = decoded[k * hop : k * hop + window]
        np.testing.assert_allclose(scores_of(frames)[k], reference_scores(student, segment), atol=TOLERANCE)
    np.testing.assert_allclose(scores_of(table)[0], scores_of(frames).max(axis=0), atol=1e-7)  # max over windows


def test_a_stereo_44k_file_reads_as_the_training_reader_in_blocks(student, tmp_path):
    rng = np.random.default_rng(3)
    stereo = (0.2 * rng.standard_normal((int(44100 * 7.3), 2))).astype(np.float32)
    sf.write(tmp_path / "stereo.wav", stereo, 44100, subtype="PCM_24")
    whole = read_audio(tmp_path / "stereo.wav")  # what training reads: channel mean, then resample
    blocks = list(AudioStream(tmp_path / "stereo.wav", block_seconds=0.5))
    assert len(blocks) > 10 and max(len(b) for b in blocks) <= 0.5 * 16000 + 1
    np.testing.assert_allclose(np.concatenate(blocks), whole, atol=1e-6)
    table, _ = predict(student, tmp_path / "stereo.wav", tmp_path / "tags.csv", frames=True, hop_seconds=1.0)
    frames = pd.read_csv(tmp_path / "tags.windows.csv")
    assert table["duration_s"][0] == pytest.approx(7.3, abs=1e-4) and len(frames) == table["windows"][0]
    np.testing.assert_allclose(
        scores_of(frames)[3],
        reference_scores(
            student,
            whole[
                48000 : 48000
                + window_length(FrontEndConfig(**load_checkpoint(student / "checkpoints" / "final.pt")["front_end"]))
            ],
        ),
        atol=TOLERANCE,
    )


def test_a_folder_with_a_broken_file_tags_the_rest_and_counts_the_failure(student, tmp_path, capsys):
    folder = tmp_path / "inbox"
    (folder / "sub").mkdir(parents=True)
    rng = np.random.default_rng(4)
    write_wav(folder / "0007.wav", 0.2 * rng.standard_normal(20000).astype(np.float32))
    write_wav(folder / "sub" / "b.wav", 0.2 * rng.standard_normal(9000).astype(np.float32))
    (folder / "sub" / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEnot audio at all")
    (folder / "notes.txt").write_text("not audio, not an audio extension: skipped")
    out = tmp_path / "tags.csv"
    code = predict_driver.main(
        ["--checkpoint", str(student), "--audio", str(folder), "--out", str(out), "--no-progress"]
    )
    captured = capsys.readouterr()
    assert code == 1
    assert f"error: {folder / 'sub' / 'broken.wav'}: not readable as audio" in captured.err
    assert "1 failed" in captured.out and "notes.txt" not in captured.err + captured.out
    table = pd.read_csv(out, dtype={"id": str, "path": str})
    assert table["id"].tolist() == ["0007.wav", "sub/b.wav"]  # relative paths, as strings
    assert table["path"].tolist() == [str(folder / "0007.wav"), str(folder / "sub" / "b.wav")]


def _repeated(tmp_path: Path, window: int) -> tuple[Path, Path]:
    rng = np.random.default_rng(5)
    t = np.arange(window) / 16000
    sound = 0.3 * np.sin(2 * np.pi * 700 * t) * (t < 0.2) + 0.05 * rng.standard_normal(window)
    write_wav(tmp_path / "once.wav", sound.astype(np.float32))
    write_wav(tmp_path / "repeated.wav", np.tile(sound, 40).astype(np.float32))
    return tmp_path / "once.wav", tmp_path / "repeated.wav"


@pytest.mark.parametrize("activation", ["sigmoid", "softmax"])
def test_a_long_file_of_one_repeated_sound_scores_as_one_window(student, tmp_path, activation):
    """Max over windows (multi-label) and mean of probabilities (single-label) both give back the
    single window's score when every window holds the same sound."""
    run = student
    if activation == "softmax":  # the same weights recorded as a single-label model
        ckpt = load_checkpoint(student / "checkpoints" / "final.pt")
        run = tmp_path / "single.pt"
        save_checkpoint({**ckpt, "activation": "softmax"}, run)
    front = FrontEndConfig(**load_checkpoint(student / "checkpoints" / "final.pt")["front_end"])
    window = window_length(front)
    once, repeated = _repeated(tmp_path, window)
    single, _ = predict(run, once, tmp_path / "once.csv")
    long, _ = predict(run, repeated, tmp_path / "long.csv", hop_seconds=window / 16000)
    assert long["windows"][0] == 40 and long["duration_s"][0] == pytest.approx(40 * window / 16000)
    np.testing.assert_allclose(scores_of(long)[0], scores_of(single)[0], atol=TOLERANCE)
    np.testing.assert_allclose(
        scores_of(single)[0], reference_scores(student, read_audio(once), activation), atol=TOLERANCE
    )
    if activation == "softmax":
        assert scores_of(long)[0].sum() == pytest.approx(1.0, abs=1e-5)


def test_csv_parquet_and_json_hold_the_same_rows_with_string_ids(student, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("001.wav", "2.wav"):
        write_wav(folder / name, 0.1 * np.random.default_rng(len(name)).standard_normal(12000).astype(np.float32))
    csv_table, _ = predict(student, folder, tmp_path / "t.csv", topk=3)
    run_predict(
        PredictJob(str(student), str(folder), str(tmp_path / "t.parquet"), PredictSettings(topk=3), progress=False),
        log=lambda line: None,
    )
    parquet = pd.read_parquet(tmp_path / "t.parquet")
    run_predict(
        PredictJob(str(student), str(folder), str(tmp_path / "t.json"), PredictSettings(topk=3), progress=False),
        log=lambda line: None,
    )
    records = json.loads((tmp_path / "t.json").read_text())
    assert [r["id"] for r in records] == ["001.wav", "2.wav"] and all(isinstance(r["path"], str) for r in records)
    assert parquet["id"].tolist() == ["001.wav", "2.wav"] and pd.api.types.is_string_dtype(parquet["id"])
    np.testing.assert_allclose(scores_of(parquet), scores_of(csv_table), atol=1e-7)
    mids = [c.split(":", 1)[1] for c in csv_table.filter(like="score:").columns]
    np.testing.assert_allclose([[r["scores"][m] for m in mids] for r in records], scores_of(csv_table), atol=1e-7)
    assert [t["mid"] for t in records[0]["top"]] == [csv_table[f"top{k}_mid"][0] for k in (1, 2, 3)]


def test_a_published_ast_file_is_a_tagger_with_its_vocabulary(student, tmp_path):
    torch.manual_seed(0)
    source = create_model("ast_micro", num_classes=4, n_mels=128, target_length=1024).eval()
    torch.save(ast_layout(source), tmp_path / "release.pth")
    manifest = load_manifest(student.parents[2] / "data_manifests" / "tiny")
    labels = tmp_path / "class_labels_indices.csv"
    labels.write_text(
        "index,mid,display_name\n"
        + "".join(f'{i},{label.mid},"{label.name}"\n' for i, label in enumerate(manifest.labels))
    )
    write_wav(tmp_path / "clip.wav", 0.2 * np.random.default_rng(6).standard_normal(3 * 16000).astype(np.float32))
    job = PredictJob(
        str(tmp_path / "release.pth"),
        str(tmp_path / "clip.wav"),
        str(tmp_path / "t.csv"),
        PredictSettings(topk=2),
        labels=str(labels),
        model_name="ast_micro",
        progress=False,
    )
    run_predict(job, log=lambda line: None)
    table = pd.read_csv(tmp_path / "t.csv")
    with torch.no_grad():  # the published recipe's front end for an unnamed file: AST's 128 x 1024, AudioSet stats
        expected = source(wave_to_features(read_audio(tmp_path / "clip.wav"), FrontEndConfig())[None]).sigmoid()[0]
    np.testing.assert_allclose(scores_of(table)[0], expected.numpy(), atol=TOLERANCE)
    assert table["top1_name"][0] == manifest.labels[int(expected.argmax())].name


def test_bad_requests_fail_before_any_work(student, tmp_path):
    write_wav(tmp_path / "a.wav", np.zeros(1000, dtype=np.float32))
    with pytest.raises(ValueError, match="the extension picks the format"):
        run_predict(PredictJob(str(student), str(tmp_path / "a.wav"), str(tmp_path / "t.xlsx"), progress=False))
    with pytest.raises(ValueError, match="ENGINE=onnx runs an exported folder"):
        run_predict(
            PredictJob(str(student), str(tmp_path / "a.wav"), str(tmp_path / "t.csv"), engine="onnx", progress=False),
            log=lambda line: None,
        )
    with pytest.raises(ValueError, match="HOP must be a positive"):
        run_predict(
            PredictJob(
                str(student),
                str(tmp_path / "a.wav"),
                str(tmp_path / "t.csv"),
                PredictSettings(hop_seconds=0.0),
                progress=False,
            ),
            log=lambda line: None,
        )
    assert not (tmp_path / "t.csv").exists()


def test_windows_follow_the_rule_for_any_block_split():
    rng = np.random.default_rng(7)
    for total, window, hop in ((10, 4, 2), (11, 4, 2), (3, 4, 2), (100, 7, 9), (57, 10, 10), (1, 4, 2)):
        samples = np.arange(total, dtype=np.float32)
        cuts = sorted(rng.choice(np.arange(1, total), size=min(3, total - 1), replace=False)) if total > 1 else []
        found = list(windows(np.split(samples, cuts), window, hop))
        assert len(found) == window_count(total, window, hop)
        assert [w.start for w in found] == [k * hop for k in range(len(found))]
        assert all((w.samples == samples[w.start : w.start + window]).all() for w in found)


def test_the_driver_refuses_empty_make_variables(capsys):
    with pytest.raises(SystemExit, match="CHECKPOINT, AUDIO must be given"):
        predict_driver.main(["--checkpoint", "", "--audio", " ", "--out", "t.csv"])
