"""The embedded corpus: exact FSD50K / ESC-50 layouts, audio format, determinism, class design."""

from __future__ import annotations

import csv
import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pipeline.corpus import (CLASSES, ESC_CLASSES, LOCAL, TEMPORAL, VOCABULARY, class_by_label, generate_corpus,
                             generate_fsd50k_layout, is_current, read_stamp, render_multilabel_clip,
                             synthesise_event)
from pipeline.corpus import classes as classes_module
from pipeline.corpus.clips import clip_rng

SIZE = 0.02  # 24 dev + 8 eval multi-label clips, 80 ESC clips: about a second to build
FIXTURES = Path(__file__).resolve().parent / "fixtures"  # official-format excerpts, written by hand
ROW_PATTERN = re.compile(r'^\d+,"[^"]+","[^"]+"(,(train|val))?$')
ESC_NAME = re.compile(r"^(\d)-(\d+)-([A-H])-(\d+)\.wav$")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data")
    generate_corpus(out, size=SIZE, seed=0, progress=False)
    return out


def _truth(corpus: Path) -> Path:
    return corpus / "demo" / "FSD50K.ground_truth"


def _vocabulary(corpus: Path) -> dict[str, str]:
    with open(_truth(corpus) / "vocabulary.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert [int(r[0]) for r in rows] == list(range(len(rows)))
    assert all(len(r) == 3 for r in rows)
    return {label: mid for _, label, mid in rows}


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------------- FSD50K layout

def test_fsd50k_layout_has_the_official_files_headers_and_quoting(corpus):
    truth = _truth(corpus)
    assert (corpus / "demo" / "FSD50K.dev_audio").is_dir() and (corpus / "demo" / "FSD50K.eval_audio").is_dir()
    dev_lines = (truth / "dev.csv").read_text().splitlines()
    eval_lines = (truth / "eval.csv").read_text().splitlines()
    assert dev_lines[0] == "fname,labels,mids,split"
    assert eval_lines[0] == "fname,labels,mids"
    assert all(ROW_PATTERN.match(line) and line.endswith(("train", "val")) for line in dev_lines[1:])
    assert all(ROW_PATTERN.match(line) for line in eval_lines[1:])
    vocabulary_first = (truth / "vocabulary.csv").read_text().splitlines()[0]
    assert re.match(r"^0,[A-Za-z_()]+,/x/demo_[a-z_]+$", vocabulary_first)  # no header row
    assert len(_vocabulary(corpus)) == len(CLASSES) >= 20


def test_fsd50k_csvs_match_the_official_format(corpus):
    for name in ("dev.csv", "eval.csv"):
        ours = (_truth(corpus) / name).read_text().splitlines()
        real = (FIXTURES / "fsd50k" / "FSD50K.ground_truth" / name).read_text().splitlines()
        assert ours[0] == real[0]
        assert all(ROW_PATTERN.match(line) for line in real[1:])  # the pattern our rows pass is the real one
    real_vocab = (FIXTURES / "fsd50k" / "FSD50K.ground_truth" / "vocabulary.csv").read_text().splitlines()
    ours_vocab = (_truth(corpus) / "vocabulary.csv").read_text().splitlines()
    assert [len(line.split(",")) for line in ours_vocab] == [3] * len(ours_vocab)
    assert all(len(line.split(",")) == 3 for line in real_vocab)


def test_fsd50k_labels_and_mids_agree_with_the_vocabulary_and_files_exist(corpus):
    vocabulary = _vocabulary(corpus)
    dev = _read_csv(_truth(corpus) / "dev.csv")
    evaluation = _read_csv(_truth(corpus) / "eval.csv")
    for rows, folder in ((dev, "FSD50K.dev_audio"), (evaluation, "FSD50K.eval_audio")):
        for row in rows:
            labels, mids = row["labels"].split(","), row["mids"].split(",")
            assert 1 <= len(labels) <= 3 and len(set(labels)) == len(labels)
            assert [vocabulary[label] for label in labels] == mids, row["fname"]
            assert (corpus / "demo" / folder / f"{row['fname']}.wav").is_file()
        assert len(list((corpus / "demo" / folder).glob("*.wav"))) == len(rows)
    fnames = [row["fname"] for row in dev + evaluation]
    assert all(f.isdigit() for f in fnames) and len(set(fnames)) == len(fnames)
    splits = [row["split"] for row in dev]
    assert set(splits) == {"train", "val"} and 0 < splits.count("val") < splits.count("train")
    assert len(evaluation) < len(dev)


def test_fsd50k_wavs_are_16k_mono_pcm16_between_1_and_8_seconds(corpus):
    wavs = sorted((corpus / "demo").rglob("*.wav"))
    assert wavs
    durations = []
    for path in wavs:
        info = sf.info(str(path))
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16"), path
        durations.append(info.frames / info.samplerate)
    assert min(durations) >= 1.0 and max(durations) <= 8.0
    assert max(durations) - min(durations) > 1.0  # durations vary, as in FSD50K


# ---------------------------------------------------------------------------------- ESC-50 layout

def test_esc50_layout_names_folds_and_targets(corpus):
    root = corpus / "demo-esc50"
    with open(root / "meta" / "esc50.csv", newline="") as f:
        header = next(csv.reader(f))
    assert header == ["filename", "fold", "target", "category", "esc10", "src_file", "take"]
    rows = _read_csv(root / "meta" / "esc50.csv")
    assert [r["filename"] for r in rows] == sorted(r["filename"] for r in rows)
    category_of_target, fold_of_source = {}, {}
    for row in rows:
        fold, src_file, take, target = ESC_NAME.match(row["filename"]).groups()
        assert (fold, src_file, take, target) == (row["fold"], row["src_file"], row["take"], row["target"])
        assert row["esc10"] in ("True", "False")
        assert category_of_target.setdefault(target, row["category"]) == row["category"]
        assert fold_of_source.setdefault(src_file, fold) == fold  # takes of one source share a fold
        info = sf.info(str(root / "audio" / row["filename"]))
        assert (info.samplerate, info.channels, info.subtype, info.frames) == (16000, 1, "PCM_16", 5 * 16000)
    assert {r["fold"] for r in rows} == {"1", "2", "3", "4", "5"}
    assert len(category_of_target) == len(ESC_CLASSES) and len(set(category_of_target.values())) == len(ESC_CLASSES)
    assert sorted(p.name for p in (root / "audio").iterdir()) == [r["filename"] for r in rows]


def test_esc50_meta_matches_the_official_format(corpus):
    real = (FIXTURES / "esc50" / "meta" / "esc50.csv").read_text().splitlines()
    ours = (corpus / "demo-esc50" / "meta" / "esc50.csv").read_text().splitlines()
    assert ours[0] == real[0]
    real_shape = re.compile(r"^\d-\d+-[A-H]-\d+\.wav,\d,\d+,[a-z_]+,(True|False),\d+,[A-H]$")
    assert all(real_shape.match(line) for line in real[1:])
    assert all(real_shape.match(line) for line in ours[1:])


# ---------------------------------------------------------------------------- determinism, reruns

def test_same_seed_gives_identical_bytes_and_another_seed_does_not(corpus, tmp_path):
    generate_corpus(tmp_path / "again", size=SIZE, seed=0, progress=False, workers=2)
    assert _digests(tmp_path / "again") == _digests(corpus)  # also independent of the worker count
    generate_corpus(tmp_path / "other", size=SIZE, seed=1, progress=False)
    other = _digests(tmp_path / "other")
    ours = _digests(corpus)
    assert other["demo/FSD50K.ground_truth/dev.csv"] != ours["demo/FSD50K.ground_truth/dev.csv"]
    assert not set(v for k, v in other.items() if k.endswith(".wav")) & set(v for k, v in ours.items()
                                                                          if k.endswith(".wav"))


def test_rerun_with_same_knobs_is_skipped_and_changed_knobs_rebuild(tmp_path):
    root = tmp_path / "demo"
    first = generate_fsd50k_layout(root, size=SIZE, seed=3, progress=False)
    assert first["skipped"] is False and is_current(root, "fsd50k", SIZE, 3)
    dev_csv = root / "FSD50K.ground_truth" / "dev.csv"
    stamp_time = dev_csv.stat().st_mtime_ns
    again = generate_fsd50k_layout(root, size=SIZE, seed=3, progress=False)
    assert again["skipped"] is True and dev_csv.stat().st_mtime_ns == stamp_time
    assert again["clips"] == first["clips"]

    rebuilt = generate_fsd50k_layout(root, size=SIZE, seed=4, progress=False)
    assert rebuilt["skipped"] is False and read_stamp(root)["seed"] == 4
    assert not list(tmp_path.glob(".demo.*"))  # no partial or old directories left behind

    next(root.joinpath("FSD50K.dev_audio").glob("*.wav")).unlink()  # a damaged corpus is not current
    assert not is_current(root, "fsd50k", SIZE, 4)


def test_bad_knobs_are_rejected_with_a_clear_message(tmp_path):
    with pytest.raises(ValueError, match="size"):
        generate_corpus(tmp_path, size=0, seed=0, progress=False)
    with pytest.raises(ValueError, match="seed"):
        generate_corpus(tmp_path, size=1.0, seed=-1, progress=False)


# ---------------------------------------------------------------------------------- class design

def test_class_table_documents_every_class_and_kind():
    doc = classes_module.__doc__
    for sound_class in CLASSES:
        assert re.search(rf"^{sound_class.label}\s+{sound_class.kind}\s", doc, re.MULTILINE), sound_class.label
    kinds = [c.kind for c in CLASSES]
    assert set(kinds) == {LOCAL, TEMPORAL} and min(kinds.count(LOCAL), kinds.count(TEMPORAL)) >= 8
    assert len({c.mid for c in CLASSES}) == len(CLASSES) and all(c.mid.startswith("/x/demo_") for c in CLASSES)
    assert [c.label for c in VOCABULARY] == sorted(c.label for c in CLASSES)


def test_every_class_synthesises_varied_finite_events():
    for sound_class in CLASSES:
        events = [synthesise_event(sound_class.label, np.random.default_rng(seed)) for seed in range(4)]
        for wave in events:
            assert np.isfinite(wave).all() and np.max(np.abs(wave)) == pytest.approx(1.0)
            assert 0.02 < len(wave) / 16000 < 7.5
        assert len({len(wave) for wave in events}) > 1, sound_class.label  # not one fixed template


def test_mirrored_temporal_pairs_hold_the_same_samples_in_another_order():
    """Same generator state: identical local material, only the arrangement differs."""
    mirrored = [c for c in CLASSES if c.mirror]
    assert len(mirrored) >= 6
    for sound_class in mirrored:
        partner = class_by_label(sound_class.mirror)
        assert partner.mirror == sound_class.label and sound_class.kind == partner.kind == TEMPORAL
        for seed in range(3):
            a = synthesise_event(sound_class.label, np.random.default_rng(seed))
            b = synthesise_event(partner.label, np.random.default_rng(seed))
            assert len(a) == len(b)
            np.testing.assert_allclose(np.sort(a), np.sort(b), atol=1e-9)
            # and the arrangement differs substantially, not by a sample or two
            assert np.mean((a - b) ** 2) > 0.1 * np.mean(a**2), (sound_class.label, seed)


def test_multilabel_clips_mix_one_to_three_distinct_events_over_noise():
    labels = tuple(c.label for c in VOCABULARY)
    counts = set()
    for index in range(30):
        clip = render_multilabel_clip(clip_rng(0, 1, index), labels)
        counts.add(len(clip.events))
        assert len(clip.labels) == len(clip.events)
        assert 1.0 <= clip.duration_s <= 8.0 and clip.wave.dtype == np.float32
        assert 0.2 < np.max(np.abs(clip.wave)) < 1.0
        for event in clip.events:
            assert 0.0 <= event.onset_s and event.onset_s + event.duration_s <= clip.duration_s + 1e-9
        quietest = min(np.sqrt(np.mean(clip.wave[i:i + 1600] ** 2)) for i in range(0, len(clip.wave) - 1600, 1600))
        assert quietest > 0  # background noise everywhere, never digital silence
    assert counts == {1, 2, 3}
