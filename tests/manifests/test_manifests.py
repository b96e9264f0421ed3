"""Format converters, validation and the manifests driver, on tiny real files built in tmp_path; and
property tests of the parsers (marker `properties`)."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.audio import audio_fingerprint
from pipeline.manifests import (
    ManifestError,
    build_manifest,
    load_manifest,
    manifest_hashes,
    prepare_ast_json,
    prepare_audioset,
    prepare_esc50,
    prepare_fsd50k,
    scan_audioset,
)
from pipeline.manifests.validate import Problems, read_table, split_from_file_name
from stages import manifests as manifests_stage
from tests.helpers import FIXTURES
from tests.helpers.manifest_files import ESC_ROWS, VOCAB, fsd_row, make_esc50, make_fsd50k, tone, write_lines

# hand-written excerpts in the official formats (tests/fixtures/README.md)


def problems_of(excinfo) -> str:
    return str(excinfo.value)


# ------------------------------------------------------------------------------------ converters


def test_fsd50k_reads_vocabulary_splits_and_headers(tmp_path):
    root = make_fsd50k(tmp_path / "fsd")
    tone(root / "FSD50K.dev_audio/102.wav", seconds=0.5, sample_rate=44100, channels=2)
    labels, clips = prepare_fsd50k(root, progress=False)
    assert [(lab.index, lab.name, lab.mid) for lab in labels] == VOCAB
    by_id = {c.clip_id: c for c in clips}
    assert [c.clip_id for c in clips] == ["101", "102", "103", "201"]
    assert by_id["102"].path == "FSD50K.dev_audio/102.wav"
    assert by_id["102"].labels == ("/m/07qrkrw", "/m/06mb1")
    assert (by_id["102"].sample_rate, by_id["102"].channels) == (44100, 2)
    assert by_id["102"].duration_s == pytest.approx(0.5)
    assert [c.split for c in clips] == ["train", "train", "val", "eval"]
    assert by_id["201"].path == "FSD50K.eval_audio/201.wav" and by_id["201"].fold is None


def test_esc50_orders_classes_by_target_and_keeps_folds(tmp_path):
    labels, clips = prepare_esc50(make_esc50(tmp_path, ESC_ROWS), progress=False)
    assert [(lab.index, lab.mid, lab.name) for lab in labels] == [
        (0, "/esc50/dog", "dog"),
        (1, "/esc50/rooster", "rooster"),
    ]
    assert [(c.clip_id, c.fold, c.split, c.labels) for c in clips] == [
        ("1-1-A-0", 1, "", ("/esc50/dog",)),
        ("2-2-A-1", 2, "", ("/esc50/rooster",)),
        ("3-3-A-0", 3, "", ("/esc50/dog",)),
    ]
    assert clips[0].path == "audio/1-1-A-0.wav"


def make_audioset_lists(root: Path) -> tuple[Path, Path]:
    write_lines(
        root / "meta/class_labels_indices.csv",
        ["index,mid,display_name"] + [f'{i},{mid},"{name}"' for i, name, mid in VOCAB],
    )
    head = ["# Segments csv created today", "# num_ytids=4", "# YTID, start_seconds, end_seconds, positive_labels"]
    write_lines(
        root / "meta/balanced_train_segments.csv",
        head
        + [
            '--aaaaaaaaa, 30.000, 40.000, "/m/05tny_,/m/06mb1"',
            'bbbbbbbbbbb, 0.000, 10.000, "/m/07qrkrw"',
            'ccccccccccc, 4.500, 14.500, "/m/06mb1"',
        ],
    )
    write_lines(
        root / "meta/eval_segments.csv",
        head + ['ddddddddddd, 10.000, 20.000, "/m/05tny_"', 'eeeeeeeeeee, 0.000, 10.000, "/m/05tny_"'],
    )
    return root / "meta/class_labels_indices.csv", root / "meta/balanced_train_segments.csv"


def test_audioset_accepts_common_namings_and_records_missing(tmp_path):
    root = tmp_path / "as"
    make_audioset_lists(root)
    tone(root / "audio/bal/--aaaaaaaaa_30.000.flac")  # AST/PSLA naming
    tone(root / "audio/bal/Ybbbbbbbbbbb.wav")  # PANNs-style
    tone(root / "audio/eval/ddddddddddd_10_20.wav")  # <YTID>_<start>_<end>
    tone(root / "audio/eval/._ddddddddddd_10_20.wav").write_bytes(b"macOS resource fork")  # must be ignored
    scan = scan_audioset(root, progress=False)  # finds the label file and both lists itself
    assert [(c.clip_id, c.split, c.labels) for c in scan.clips] == [
        ("--aaaaaaaaa_30.000", "train", ("/m/05tny_", "/m/06mb1")),
        ("bbbbbbbbbbb_0.000", "train", ("/m/07qrkrw",)),
        ("ddddddddddd_10.000", "eval", ("/m/05tny_",)),
    ]
    assert scan.clips[1].path == "audio/bal/Ybbbbbbbbbbb.wav"
    assert sorted(s.clip_id for s in scan.missing) == ["ccccccccccc_4.500", "eeeeeeeeeee_0.000"]
    manifest = build_manifest("as", "audioset", root, tmp_path / "out", progress=False)
    assert manifest.info["missing"] == 2
    with open(tmp_path / "out/as/missing_segments.csv", newline="") as f:
        missing = list(csv.DictReader(f))
    assert {r["clip_id"]: r["source"] for r in missing} == {
        "ccccccccccc_4.500": "balanced_train_segments.csv row 6",
        "eeeeeeeeeee_0.000": "eval_segments.csv row 5",
    }


def test_audioset_without_any_audio_is_an_error(tmp_path):
    make_audioset_lists(tmp_path)
    with pytest.raises(ManifestError, match="no audio found for any of 5 segments"):
        prepare_audioset(tmp_path, progress=False)


def write_datafile(path: Path, wavs_and_labels: list[tuple[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"data": [{"wav": w, "labels": lab} for w, lab in wavs_and_labels]}))
    return path


def test_ast_json_makes_paths_relative_and_finds_moved_files(tmp_path):
    root = tmp_path / "root"
    labels_csv, _ = make_audioset_lists(root)
    inside = tone(root / "audio/a_0.000.wav")
    tone(root / "eval/_/_/b_1.000.flac")
    tone(root / "copy/b_1.000.flac")  # same name elsewhere: the folder structure decides
    tone(root / "rel/c.wav")
    train = write_datafile(tmp_path / "json/my_train_data.json", [(str(inside), "/m/05tny_"), ("rel/c.wav", "")])
    evaluation = write_datafile(
        tmp_path / "json/my_eval_data.json", [("/gone/sls/eval/_/_/b_1.000.flac", "/m/05tny_,/m/06mb1")]
    )
    labels, clips = prepare_ast_json(root, labels_csv, [train, evaluation], progress=False)
    assert [lab.mid for lab in labels] == [mid for *_, mid in VOCAB]
    assert [(c.clip_id, c.path, c.split, c.labels) for c in clips] == [
        ("a_0.000", "audio/a_0.000.wav", "train", ("/m/05tny_",)),
        ("c", "rel/c.wav", "train", ()),
        ("b_1.000", "eval/_/_/b_1.000.flac", "eval", ("/m/05tny_", "/m/06mb1")),
    ]
    assert prepare_ast_json(root, labels_csv, [tmp_path / "json"], progress=False)[1] == clips[2:] + clips[:2]


@pytest.mark.parametrize(
    "name, split",
    [
        ("balanced_train_segments.csv", "train"),
        ("unbalanced_train_segments.csv", "train"),
        ("eval_segments.csv", "eval"),
        ("esc_eval_data_1.json", "eval"),
        ("audioset_test.json", "eval"),
        ("fsd_val_data.json", "val"),
        ("train_and_eval.json", None),
        ("my_data.json", None),
    ],
)
def test_split_comes_from_the_file_name(name, split):
    assert split_from_file_name(name) == split


def test_ast_json_without_a_split_in_its_name_is_refused(tmp_path):
    labels_csv, _ = make_audioset_lists(tmp_path)
    datafile = write_datafile(tmp_path / "mydata.json", [(str(tone(tmp_path / "a.wav")), "/m/05tny_")])
    with pytest.raises(ManifestError, match="mydata.json: cannot tell the split from the file name"):
        prepare_ast_json(tmp_path, labels_csv, [datafile], progress=False)


# ------------------------------------------------------------------------- official-format fixtures


def test_official_esc50_rows(tmp_path):
    shutil.copytree(FIXTURES / "esc50", tmp_path, dirs_exist_ok=True)
    with open(tmp_path / "meta/esc50.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        tone(tmp_path / "audio" / row["filename"], seconds=0.05)
    labels, clips = prepare_esc50(tmp_path, progress=False)
    assert [c.clip_id for c in clips] == [r["filename"].removesuffix(".wav") for r in rows]
    assert sorted({c.fold for c in clips}) == [1, 2, 3, 4, 5] and all(not c.split for c in clips)
    # targets 0, 1, 10, 17, ... with gaps: renumbered densely in target order
    assert [lab.name for lab in labels] == [
        "dog",
        "rooster",
        "rain",
        "pouring_water",
        "coughing",
        "door_wood_knock",
        "vacuum_cleaner",
        "chainsaw",
    ]
    assert [lab.index for lab in labels] == list(range(8))
    assert [c.labels for c in clips] == [(f"/esc50/{r['category']}",) for r in rows]


def test_official_fsd50k_ground_truth(tmp_path):
    shutil.copytree(FIXTURES / "fsd50k", tmp_path, dirs_exist_ok=True)
    truth = tmp_path / "FSD50K.ground_truth"
    expected = {}
    for name, folder in (("dev.csv", "FSD50K.dev_audio"), ("eval.csv", "FSD50K.eval_audio")):
        with open(truth / name, newline="") as f:
            for row in csv.DictReader(f):
                expected[row["fname"]] = (tuple(row["mids"].split(",")), row.get("split", "eval"))
                tone(tmp_path / folder / f"{row['fname']}.wav", seconds=0.05)
    labels, clips = prepare_fsd50k(tmp_path, progress=False)
    assert len(labels) == 17 and labels[0].name == "Accelerating_and_revving_and_vroom"
    assert labels[-1].index == 16 and labels[-1].name == "Zipper_(clothing)" and labels[-1].mid == "/m/01s0vc"
    assert {c.clip_id: (c.labels, c.split) for c in clips} == expected
    assert [c.split for c in clips].count("val") == 2 and sum(c.split == "eval" for c in clips) == 4
    assert len(clips) == 12
    guitar = next(c for c in clips if c.clip_id == "90417")
    assert guitar.labels == ("/m/02sgy", "/m/0342h", "/m/0fx80y", "/m/04szw", "/m/04rlf")
    assert guitar.path == "FSD50K.dev_audio/90417.wav"


def test_official_audioset_lists_with_partial_audio(tmp_path):
    labels_csv = FIXTURES / "audioset/class_labels_indices.csv"
    lists = [FIXTURES / "audioset/balanced_train_segments.csv", FIXTURES / "audioset/eval_segments.csv"]
    namings = ["{y}_{s:.3f}.flac", "{y}.wav", "Y{y}.wav", "{y}_{s:.0f}_{e:.0f}.wav"]
    present = set()
    for k, path in enumerate(lists):
        rows = [line.split(", ") for line in path.read_text().splitlines() if not line.startswith("#")]
        assert len(rows) == 6
        for i, (ytid, start, end, _) in enumerate(rows[:4]):
            naming = namings[i % len(namings)].format(y=ytid, s=float(start), e=float(end))
            tone(tmp_path / f"audio{k}" / naming, seconds=0.05)
            present.add(f"{ytid}_{float(start):.3f}")
    manifest = build_manifest("as_real", "audioset", tmp_path, tmp_path / "out", labels_csv, lists, progress=False)
    assert manifest.num_classes == 19 and {c.clip_id for c in manifest.clips} == present
    assert manifest.info["counts"]["train"] == 4 and manifest.info["counts"]["eval"] == 4
    assert manifest.info["missing"] == 12 - 8
    missing = (tmp_path / "out/as_real/missing_segments.csv").read_text().splitlines()
    missing_ids = {line.split(",")[0] for line in missing[1:]}
    assert missing_ids == {"0aZ-1V2sOxU_5.000", "Zx8_Yq3LpTw_110.000", "-3pPrlCm6gg_30.000", "7Ayq4_hy9vE_0.000"}
    first = next(c for c in manifest.clips if c.clip_id == "DDm4Hs7nQ0a_30.000")
    assert first.labels == ("/m/09x0r", "/t/dd00088") and first.split == "train"
    short = next(c for c in manifest.clips if c.clip_id == "-0CamVQdP_Y_0.000")
    assert short.labels == ("/m/04rlf", "/m/09x0r") and short.split == "eval"


def test_official_ast_datafile_resolves_basenames(tmp_path):
    labels_csv = FIXTURES / "audioset/class_labels_indices.csv"
    datafile = FIXTURES / "ast/audioset_eval_data.json"
    document = json.loads(datafile.read_text())
    root = tmp_path / "audioset"
    for entry in document["data"]:
        tone(root / Path(entry["wav"]).relative_to("/data/sls/audioset/data"), seconds=0.05)
    labels, clips = prepare_ast_json(root, labels_csv, [datafile], progress=False)
    assert [c.clip_id for c in clips] == [Path(e["wav"]).stem for e in document["data"]]
    assert clips[0].path == "audio/eval/_/_/AAxq7Tf0c2M_0.000.flac"
    assert clips[3].path == "audio/eval/7/A/7Ayq4_hy9vE_0.000.flac"
    assert [",".join(c.labels) for c in clips] == [e["labels"] for e in document["data"]]
    assert {c.split for c in clips} == {"eval"} and len(labels) == 19


# ------------------------------------------------------------------------------------ bad input


def fsd_with(tmp_path, dev=None, eval_=None, after=None) -> Path:
    root = make_fsd50k(tmp_path / "fsd", dev, eval_)
    if after:
        after(root)
    return root


@pytest.mark.parametrize(
    "case, expected",
    [
        ("missing_audio", "dev.csv row 3: audio FSD50K.dev_audio/102.wav: file not found"),
        ("not_audio", "dev.csv row 2: audio FSD50K.dev_audio/101.wav: not readable as audio"),
        ("empty_audio", "dev.csv row 2: audio FSD50K.dev_audio/101.wav: empty audio"),
        ("unknown_mid", "dev.csv row 3: unknown mid /m/xyz"),
        ("duplicate_id", "eval.csv row 2: duplicate clip id '101' (first at dev.csv row 2)"),
        ("short_row", "dev.csv row 3: expected 4 columns (fname,labels,mids,split), found 3"),
        ("bad_split", "dev.csv row 2: split 'training' is not one of train, val"),
        ("empty_fname", "dev.csv row 3: empty fname"),
        ("climbs_out", "dev.csv row 3: path FSD50K.dev_audio/../../secret.wav climbs out of DATA_ROOT"),
        ("bad_vocabulary", "vocabulary.csv row 2: duplicate mid /m/05tny_"),
    ],
)
def test_fsd50k_bad_input_names_the_row(tmp_path, case, expected):
    good = fsd_row(101, "/m/05tny_", "train")
    layouts = {
        "missing_audio": dict(
            dev=[good, fsd_row(102, "/m/06mb1", "train")], after=lambda r: (r / "FSD50K.dev_audio/102.wav").unlink()
        ),
        "not_audio": dict(dev=[good], after=lambda r: (r / "FSD50K.dev_audio/101.wav").write_text("fname,labels\n")),
        "empty_audio": dict(dev=[good], after=lambda r: sf.write(r / "FSD50K.dev_audio/101.wav", np.zeros(0), 16000)),
        "unknown_mid": dict(dev=[good, fsd_row(102, "/m/xyz", "train")]),
        "duplicate_id": dict(dev=[good], eval_=[fsd_row(101, "/m/05tny_")]),
        "short_row": dict(dev=[good, '102,"Bark","/m/05tny_"']),
        "bad_split": dict(dev=[fsd_row(101, "/m/05tny_", "training")]),
        "empty_fname": dict(dev=[good, fsd_row("", "/m/05tny_", "train")]),
        "climbs_out": dict(dev=[good, fsd_row("../../secret", "/m/05tny_", "train")]),
        "bad_vocabulary": dict(
            dev=[good],
            after=lambda r: write_lines(
                r / "FSD50K.ground_truth/vocabulary.csv", ["0,Bark,/m/05tny_", "1,Dog,/m/05tny_", "2,Rain,/m/06mb1"]
            ),
        ),
    }
    root = fsd_with(tmp_path, **layouts[case])
    with pytest.raises(ManifestError) as excinfo:
        prepare_fsd50k(root, progress=False)
    assert expected in problems_of(excinfo)


@pytest.mark.parametrize(
    "rows, expected",
    [
        ([("1-1-A-0.wav", "x", "0", "dog")], "esc50.csv row 2: fold 'x' is not an integer 1-5"),
        ([("1-1-A-0.wav", "7", "0", "dog")], "esc50.csv row 2: fold 7 is not one of 1-5"),
        (
            [("1-1-A-0.wav", "1", "0", "dog"), ("1-2-A-0.wav", "1", "0", "cat")],
            "esc50.csv row 3: target 0 is 'cat' here but 'dog' at esc50.csv row 2",
        ),
        ([("../../etc/passwd", "1", "0", "dog")], "esc50.csv row 2: path audio/../../etc/passwd climbs out"),
        ([("", "1", "0", "dog")], "esc50.csv row 2: empty filename"),
    ],
)
def test_esc50_bad_input_names_the_row(tmp_path, rows, expected):
    with pytest.raises(ManifestError) as excinfo:
        prepare_esc50(make_esc50(tmp_path, rows), progress=False)
    assert expected in problems_of(excinfo)


def test_an_unknown_esc50_category_is_reported_against_the_known_ones(tmp_path):
    """A typo category with a new target used to become a 51st class, silently."""
    rows = [*ESC_ROWS, ("4-4-A-50.wav", "4", "50", "dgo")]
    with pytest.raises(ManifestError) as excinfo:
        prepare_esc50(make_esc50(tmp_path / "typo", rows), progress=False)
    assert (
        "esc50.csv row 5: category 'dgo' (target 50) is not one of ESC-50's 50 categories (closest: 'dog')"
        in problems_of(excinfo)
    )
    own = [("1-1-A-0.wav", "1", "0", "steady_tone"), ("2-2-A-1.wav", "2", "1", "up_chirp")]
    labels, _ = prepare_esc50(make_esc50(tmp_path / "own", own), progress=False)  # ESC-50's layout, own classes
    assert [label.name for label in labels] == ["steady_tone", "up_chirp"]


def test_symlink_out_of_data_root_is_refused(tmp_path):
    root = make_esc50(tmp_path / "esc", [ESC_ROWS[0]])
    outside = tone(tmp_path / "elsewhere/real.wav")
    (root / "audio/1-1-A-0.wav").unlink()
    os.symlink(outside, root / "audio/1-1-A-0.wav")
    with pytest.raises(ManifestError, match=r"esc50.csv row 2: path audio/1-1-A-0.wav leads through a symlink"):
        prepare_esc50(root, progress=False)


def test_ast_json_absolute_path_elsewhere_and_unresolvable_paths(tmp_path):
    root = tmp_path / "root"
    labels_csv, _ = make_audioset_lists(root)
    outside = tone(tmp_path / "other_disk/x.wav")
    datafile = write_datafile(tmp_path / "train.json", [(str(outside), "/m/05tny_"), ("/gone/y.wav", "/m/05tny_")])
    with pytest.raises(ManifestError) as excinfo:
        prepare_ast_json(root, labels_csv, [datafile], progress=False)
    assert f"train.json data[0]: absolute path {outside} is outside DATA_ROOT" in problems_of(excinfo)
    assert "train.json data[1]: /gone/y.wav does not exist and no file named y.wav is under DATA_ROOT" in problems_of(
        excinfo
    )


def test_every_problem_is_collected_into_one_error(tmp_path):
    dev = [fsd_row(300 + i, "/m/nope", "train") for i in range(25)]
    with pytest.raises(ManifestError) as excinfo:
        prepare_fsd50k(make_fsd50k(tmp_path, dev), progress=False)
    assert len(excinfo.value.problems) == 25
    assert "25 problem(s)" in problems_of(excinfo) and "... and 5 more" in problems_of(excinfo)
    assert "dev.csv row 21: unknown mid /m/nope" in problems_of(excinfo)


# ------------------------------------------------------------------------------------ driver


def run_driver(*argv: str) -> None:
    manifests_stage.main(list(argv))


def test_driver_writes_manifest_with_header_info_and_hashes(tmp_path, capsys):
    root = make_fsd50k(tmp_path / "fsd")
    out = tmp_path / "manifests"
    run_driver("--dataset", "tiny", "--format", "fsd50k", "--data-root", str(root), "--out-root", str(out))
    summary = capsys.readouterr().out.strip()
    assert summary.count("\n") == 0 and summary.startswith("tiny: 4 clips, 3 classes")
    info = json.loads((out / "tiny/dataset.json").read_text())
    assert info["data_root"] == str(root.resolve()) and info["format"] == "fsd50k"
    assert info["counts"] == {"clips": 4, "classes": 3, "train": 2, "val": 1, "eval": 1, "unlabelled": 0}
    assert info["sha256"] == manifest_hashes(out / "tiny")
    with open(out / "tiny/clips.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    fingerprint = rows[1].pop("fingerprint")
    assert rows[1] == {
        "clip_id": "102",
        "path": "FSD50K.dev_audio/102.wav",
        "labels": "/m/07qrkrw,/m/06mb1",
        "split": "train",
        "fold": "",
        "duration_s": "0.1000",
        "sample_rate": "16000",
        "channels": "1",
    }
    assert fingerprint == audio_fingerprint(root / "FSD50K.dev_audio/102.wav") and len(fingerprint) == 32
    assert (out / "tiny/labels.csv").read_text().splitlines()[1] == "0,/m/05tny_,Bark"
    first = (out / "tiny/clips.csv").read_bytes()
    run_driver("--dataset", "tiny", "--format", "fsd50k", "--data-root", str(root), "--out-root", str(out))
    assert (out / "tiny/clips.csv").read_bytes() == first  # clip ids and rows are stable across runs
    assert len({r["clip_id"] for r in rows}) == len(rows)
    assert load_manifest(out / "tiny").select("val")[0].clip_id == "103"


def test_failed_run_exits_non_zero_and_leaves_the_good_manifest(tmp_path, capsys):
    root = make_esc50(tmp_path / "esc", ESC_ROWS)
    out = tmp_path / "manifests"
    argv = ["--dataset", "tiny-esc", "--format", "esc50", "--data-root", str(root), "--out-root", str(out)]
    run_driver(*argv)
    before = {p.name: p.read_bytes() for p in (out / "tiny-esc").iterdir()}
    (root / "audio/2-2-A-1.wav").write_bytes(b"\x00" * 64)
    with pytest.raises(SystemExit) as excinfo:
        run_driver(*argv)
    assert excinfo.value.code not in (0, None)
    assert "esc50.csv row 3: audio audio/2-2-A-1.wav: not readable as audio" in str(excinfo.value.code)
    assert {p.name: p.read_bytes() for p in (out / "tiny-esc").iterdir()} == before


def test_driver_asks_for_data_root(tmp_path, capsys):
    with pytest.raises(SystemExit) as excinfo:
        run_driver("--dataset", "fsd50k", "--out-root", str(tmp_path))
    assert excinfo.value.code == 2
    assert "DATA_ROOT=" in capsys.readouterr().err
    assert not (tmp_path / "fsd50k").exists()


# property tests (marker `properties`): the parsers round-trip well-formed rows and raise the project's
# error type on malformed ones, for any rows hypothesis generates
PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# cell text as it appears in real metadata: any printable text, commas and quotes included, no
# surrounding blanks (the reader strips them) and no line breaks (no metadata format has them)
CELL = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=12).map(str.strip)


MALFORMED = st.sampled_from(
    [
        "1-9-A-0.wav,1,0,dog,False,1,A,extra",  # a column too many
        "1-9-A-0.wav,1,0,dog",  # columns missing
        '1-9-A-0.wav,1,"0,dog,False,1,A',  # a quote that never closes
        "1-9-A-0.wav,one,0,dog,False,1,A",  # fold not a number
        "1-9-A-0.wav,9,0,dog,False,1,A",  # fold out of range
        "1-9-A-0.wav,1,zero,dog,False,1,A",  # target not a number
        "../../etc/passwd,1,0,dog,False,1,A",  # path escaping DATA_ROOT
        ",1,0,dog,False,1,A",  # no file name
        "1-1-A-0.wav,1,0,dog,False,1,A",  # duplicate clip
        "1-9-A-0.wav,1,0,dog,False,1,A",  # no audio file
        b"1-9-A-0.wav,1,0,d\xe9og,False,1,A",  # not UTF-8
        "1-9-A-50.wav,1,50,dgo,False,1,A",  # a typo category under a new target
    ]
)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


@pytest.mark.properties
@PROPERTY
@given(rows=st.lists(st.tuples(CELL, CELL, CELL), min_size=0, max_size=12), bom=st.booleans(), crlf=st.booleans())
def test_well_formed_tables_round_trip(rows, bom, crlf):
    rows = [r for r in rows if any(r)]  # an all-empty row is a blank line, which carries no clip
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n" if crlf else "\n")
    writer.writerow(["a", "b", "c"])
    writer.writerows(rows)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "t.csv"
        path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + buffer.getvalue().encode("utf-8"))
        problems = Problems()
        parsed = read_table(path, ["a", "b", "c"], problems)
    assert problems.found == []
    assert [tuple(r.values()) for _, r in parsed] == [tuple(r) for r in rows]
    assert [line for line, _ in parsed] == list(range(2, 2 + len(rows)))  # the editor's line numbers


@pytest.mark.properties
@PROPERTY
@given(bad=MALFORMED, position=st.integers(0, len(ESC_ROWS)))
def test_malformed_esc50_rows_always_raise_the_projects_error(bad, position):
    with tempfile.TemporaryDirectory() as folder:
        root = make_esc50(Path(folder), ESC_ROWS)
        meta = root / "meta/esc50.csv"
        lines = meta.read_bytes().splitlines()
        lines.insert(1 + position, bad if isinstance(bad, bytes) else bad.encode())
        meta.write_bytes(b"\n".join(lines) + b"\n")
        try:
            prepare_esc50(root, progress=False, check="header")
        except ManifestError as error:
            assert f"esc50.csv row {2 + position}" in str(error)
        else:
            raise AssertionError(f"accepted a malformed row: {bad!r}")


@pytest.mark.properties
@PROPERTY
@given(
    document=st.one_of(
        JSON,
        st.fixed_dictionaries({"data": st.lists(JSON, max_size=4)}),
        st.fixed_dictionaries(
            {"data": st.lists(st.fixed_dictionaries({"wav": st.text(max_size=10), "labels": JSON}), max_size=4)}
        ),
    )
)
def test_any_ast_datafile_is_accepted_or_refused_with_the_projects_error(document):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        tone(root / "a.wav")
        (root / "labels.csv").write_text("index,mid,display_name\n0,/m/a,A\n1,/m/b,B\n")
        (root / "train.json").write_text(json.dumps(document))
        try:
            _, clips = prepare_ast_json(
                root, root / "labels.csv", [root / "train.json"], progress=False, check="header"
            )
        except ManifestError:
            return
        assert all(c.path == "a.wav" for c in clips)  # the only audio there is
