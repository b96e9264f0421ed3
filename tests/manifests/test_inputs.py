"""Messy inputs at manifest time: BOMs, other encodings, stray quotes, empty splits, and audio whose
data is cut short, non-finite or far out of range, each reported by file and row."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pipeline.manifests import ManifestError, build_manifest, prepare_esc50, prepare_fsd50k
from tests.helpers.manifest_files import ESC_ROWS, fsd_row, make_esc50, make_fsd50k, tone


def test_utf8_bom_is_accepted(tmp_path):
    root = make_fsd50k(tmp_path / "fsd")
    dev = root / "FSD50K.ground_truth/dev.csv"
    dev.write_bytes(b"\xef\xbb\xbf" + dev.read_bytes())
    _, clips = prepare_fsd50k(root, progress=False)
    assert len(clips) == 4


def test_latin1_file_names_the_file_and_line(tmp_path):
    root = make_fsd50k(tmp_path / "fsd")
    vocab = root / "FSD50K.ground_truth/vocabulary.csv"
    lines = vocab.read_text().splitlines()
    lines[1] = lines[1].replace("Meow", "Miaou caf\xe9")
    vocab.write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    with pytest.raises(ManifestError) as caught:
        prepare_fsd50k(root, progress=False)
    assert "vocabulary.csv row 2: not UTF-8 (byte 0xe9 at column 12)" in str(caught.value)


def test_stray_quote_is_reported_at_its_own_row(tmp_path):
    dev = [fsd_row(100 + i, "/m/05tny_", "train") for i in range(1, 90)] + [fsd_row(190, "/m/06mb1", "val")]
    dev[9] = dev[9].replace('"/m/05tny_"', '"/m/05tny_')  # line 11 of dev.csv (line 1 is the header)
    root = make_fsd50k(tmp_path / "fsd", dev=dev)
    with pytest.raises(ManifestError) as caught:
        prepare_fsd50k(root, progress=False)
    message = str(caught.value)
    assert "dev.csv row 11: unbalanced quote" in message
    assert "row 8" not in message and "row 9" not in message.replace("row 90", "")


def test_empty_eval_split_is_refused_with_the_fix(tmp_path):
    root = make_fsd50k(tmp_path / "fsd", eval_=[])
    with pytest.raises(ManifestError, match="eval split has no labelled clips.*eval.csv"):
        build_manifest("x", "fsd50k", root, tmp_path / "manifests", progress=False)
    assert not (tmp_path / "manifests" / "x").exists()


def test_val_split_without_labels_is_refused(tmp_path):
    root = make_fsd50k(tmp_path / "fsd")
    # a val row whose audio is fine but whose labels are missing is dropped as unlabelled
    from pipeline.manifests import Clip
    from pipeline.manifests.build import check_splits

    clips = [
        Clip("a", "a.wav", ("/m/x",), "train", None, 1.0, 16000, 1),
        Clip("b", "b.wav", (), "val", None, 1.0, 16000, 1),
        Clip("c", "c.wav", ("/m/x",), "eval", None, 1.0, 16000, 1),
    ]
    with pytest.raises(ManifestError, match="val split has no labelled clips"):
        check_splits("fsd50k", root, clips)
    check_splits("fsd50k", root, [clips[0], clips[2]])  # no val split at all: carved at training time


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: 44 + (len(data) - 44) // 2])


def float_wav(path: Path, samples: np.ndarray) -> None:
    sf.write(path, samples.astype(np.float32), 16000, subtype="FLOAT")


@pytest.fixture
def bad_audio(tmp_path):
    rows = ESC_ROWS + [("4-4-A-1.wav", "4", "1", "rooster"), ("5-5-A-0.wav", "5", "0", "dog")]
    root = make_esc50(tmp_path / "esc", rows)
    tone(root / "audio/1-1-A-0.wav", seconds=1.0)
    truncate(root / "audio/1-1-A-0.wav")  # row 2: half its data gone, header intact
    nan = np.full(8000, 0.1)
    nan[4000] = np.nan
    float_wav(root / "audio/2-2-A-1.wav", nan)  # row 3
    float_wav(root / "audio/3-3-A-0.wav", np.full(8000, 3000.0))  # row 4: integer scale stored as float
    float_wav(root / "audio/4-4-A-1.wav", np.full(8000, 1.2))  # row 5: a small overshoot is fine
    return root


def test_full_check_reports_truncated_nonfinite_and_out_of_range_by_row(bad_audio):
    with pytest.raises(ManifestError) as caught:
        prepare_esc50(bad_audio, progress=False)
    message = str(caught.value)
    assert "esc50.csv row 2: audio audio/1-1-A-0.wav: truncated: the header declares 16000 frames (1.00 s)" in message
    assert "esc50.csv row 3: audio audio/2-2-A-1.wav: NaN or infinite samples (first at 0.25 s)" in message
    assert "esc50.csv row 4: audio audio/3-3-A-0.wav: samples reach 3000, far outside [-1, 1]" in message
    assert "row 5" not in message and "row 6" not in message


def test_header_check_still_catches_truncation_and_says_what_it_skips(bad_audio, tmp_path):
    with pytest.raises(ManifestError) as caught:
        prepare_esc50(bad_audio, progress=False, check="header")
    assert "row 2" in str(caught.value) and "row 3" not in str(caught.value)
    (bad_audio / "audio/1-1-A-0.wav").unlink()
    tone(bad_audio / "audio/1-1-A-0.wav")
    manifest = build_manifest("e", "esc50", bad_audio, tmp_path / "m", progress=False, check="header")
    assert manifest.info["audio_check"] == "header"
    assert json.loads((tmp_path / "m/e/dataset.json").read_text())["audio_check"] == "header"
