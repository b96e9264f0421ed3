"""The embedded corpus: exact FSD50K / ESC-50 layouts, audio format, determinism, class design."""

from __future__ import annotations

import csv
import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pipeline.synthetic_corpus import (
    ALL_CLASSES,
    DEFAULT_VERSION,
    LOCAL,
    TEMPORAL,
    VERSIONS,
    class_by_label,
    class_groups,
    corpus_version,
    generate_corpus,
    generate_fsd50k_layout,
    is_current,
    read_stamp,
    render_multilabel_clip,
    render_single_class_clip,
    synthesise_event,
)
from pipeline.synthetic_corpus import classes as classes_module
from pipeline.synthetic_corpus.clips import clip_rng
from pipeline.synthetic_corpus.relations import GAP_S, RELATION_EDGE_MARGIN_S, STEP_GAP_S
from tests.helpers import FIXTURES

SIZE = 0.02  # 24 dev + 8 eval multi-label clips, 80 ESC clips: about a second to build
ROW_PATTERN = re.compile(r'^\d+,"[^"]+","[^"]+"(,(train|val))?$')
ESC_NAME = re.compile(r"^(\d)-(\d+)-([A-H])-(\d+)\.wav$")


CURRENT = corpus_version(DEFAULT_VERSION)


@pytest.fixture(scope="module", params=sorted(VERSIONS))
def corpus(tmp_path_factory, request) -> Path:
    """Every layout test runs on each corpus version (version 1 stays reachable, CORPUS_VERSION=1)."""
    out = tmp_path_factory.mktemp(f"data_v{request.param}")
    generate_corpus(out, size=SIZE, seed=0, progress=False, version=request.param)
    return out


def _version(corpus: Path):
    return corpus_version(read_stamp(corpus / "demo")["corpus_version"])


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
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


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
    assert len(_vocabulary(corpus)) == len(_version(corpus).classes) >= 20


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


def test_fsd50k_wavs_are_16k_mono_pcm16_within_the_versions_length_range(corpus):
    wavs = sorted((corpus / "demo").rglob("*.wav"))
    assert wavs
    durations = []
    for path in wavs:
        info = sf.info(str(path))
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16"), path
        durations.append(info.frames / info.samplerate)
    shortest, longest = _version(corpus).clip_seconds
    assert min(durations) >= shortest and max(durations) <= longest
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
    n_classes = len(_version(corpus).esc_labels)
    assert len(category_of_target) == n_classes and len(set(category_of_target.values())) == n_classes
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
    version = _version(corpus).number
    generate_corpus(tmp_path / "again", size=SIZE, seed=0, progress=False, workers=2, version=version)
    assert _digests(tmp_path / "again") == _digests(corpus)  # also independent of the worker count
    generate_corpus(tmp_path / "other", size=SIZE, seed=1, progress=False, version=version)
    other = _digests(tmp_path / "other")
    ours = _digests(corpus)
    assert other["demo/FSD50K.ground_truth/dev.csv"] != ours["demo/FSD50K.ground_truth/dev.csv"]
    assert not set(v for k, v in other.items() if k.endswith(".wav")) & set(
        v for k, v in ours.items() if k.endswith(".wav")
    )


# SIZE 0.02, seed 0; each taken from the generator before the next version existed
EARLIER_VERSION_DIGESTS = {
    1: "2411ac3c234dc4be7642abab99d6ca4ff3c78219187b545c8f8173601591ac2b",
    2: "ed5072aa0c854598742bb5eab8eaabcac754cb1a01d5411a965e6ac4a8516d12",
}


@pytest.mark.parametrize("number", sorted(EARLIER_VERSION_DIGESTS))
def test_earlier_versions_are_byte_for_byte_the_earlier_corpora(tmp_path, number):
    """CORPUS_VERSION=1 or 2 exists to compare with earlier results: their files (audio and metadata)
    must not change."""
    generate_corpus(tmp_path, size=SIZE, seed=0, progress=False, version=number)
    files = {name: digest for name, digest in _digests(tmp_path).items() if not name.endswith("GENERATED.json")}
    assert hashlib.sha256(repr(sorted(files.items())).encode()).hexdigest() == EARLIER_VERSION_DIGESTS[number]


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


def test_class_table_documents_every_class_kind_and_version():
    doc = classes_module.__doc__
    for sound_class in ALL_CLASSES:
        versions = "".join(str(n) for n, v in sorted(VERSIONS.items()) if sound_class in v.classes)
        assert re.search(rf"^{sound_class.label}\s+{sound_class.kind}\s+{versions}\s", doc, re.MULTILINE), (
            sound_class.label
        )
    for version in VERSIONS.values():
        kinds = [c.kind for c in version.classes]
        assert set(kinds) == {LOCAL, TEMPORAL} and min(kinds.count(LOCAL), kinds.count(TEMPORAL)) >= 8
        assert [c.label for c in version.vocabulary] == sorted(c.label for c in version.classes)
        assert len(version.esc_labels) == 16 and version.esc10_labels <= set(version.esc_labels)
        esc_kinds = [class_by_label(label).kind for label in version.esc_labels]
        assert esc_kinds.count(LOCAL) == esc_kinds.count(TEMPORAL) == 8
    assert len({c.mid for c in ALL_CLASSES}) == len(ALL_CLASSES) and all(
        c.mid.startswith("/x/demo_") for c in ALL_CLASSES
    )
    with pytest.raises(ValueError, match="corpus version"):
        corpus_version(7)


def test_version_one_is_unchanged_and_both_versions_share_the_local_classes():
    """CORPUS_VERSION=1 must give the earlier corpus: same vocabulary order and ESC-50 targets."""
    v1, v2 = VERSIONS[1], VERSIONS[2]
    assert [c.label for c in v1.vocabulary][:4] == ["Accelerating_beeps", "Click_buzz", "Crackle", "Decelerating_beeps"]
    assert v1.esc_labels[8:] == (
        "Slow_beeps",
        "Fast_beeps",
        "Accelerating_beeps",
        "Decelerating_beeps",
        "Low_then_high",
        "High_then_low",
        "Long_short",
        "Short_long",
    )
    assert [c for c in v1.classes if c.kind == LOCAL] == [c for c in v2.classes if c.kind == LOCAL]
    assert not {c.label for c in v1.classes if c.kind == TEMPORAL} & {c.label for c in v2.classes if c.kind == TEMPORAL}
    groups = class_groups([c.mid for c in v2.vocabulary])
    assert sorted(groups) == [LOCAL, TEMPORAL] and len(groups[TEMPORAL]) == 8


def test_version_three_is_version_two_with_as_many_temporal_as_local_classes():
    """Version 3 only adds classes: version 2's relations and ESC-50 subset stay as they are, and the
    two groups are the same size, so neither dominates a mean over classes."""
    v2, v3 = VERSIONS[2], VERSIONS[3]
    assert set(v2.classes) < set(v3.classes) and v3.esc_labels == v2.esc_labels
    groups = class_groups([c.mid for c in v3.vocabulary])
    assert len(groups[LOCAL]) == len(groups[TEMPORAL]) == 12
    added = [c for c in v3.classes if c not in v2.classes]
    assert all(c.kind == TEMPORAL and c.mirror for c in added) and len(added) == 4


def test_every_class_synthesises_varied_finite_events():
    for sound_class in ALL_CLASSES:
        events = [synthesise_event(sound_class.label, np.random.default_rng(seed)) for seed in range(4)]
        for wave in events:
            assert np.isfinite(wave).all() and np.max(np.abs(wave)) == pytest.approx(1.0)
            assert 0.02 < len(wave) / 16000 < 7.5
        assert len({len(wave) for wave in events}) > 1, sound_class.label  # not one fixed template


def test_mirrored_temporal_pairs_hold_the_same_samples_in_another_order():
    """Same generator state: identical local material, only the arrangement differs."""
    mirrored = [c for c in ALL_CLASSES if c.mirror]
    assert len(mirrored) >= 14
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


def _sounding_runs(wave: np.ndarray, hop: int = 160) -> list[tuple[float, float]]:
    """(start, end) seconds of the sounding stretches of a noise-free event, on a 10-ms grid."""
    frames = np.abs(wave[: len(wave) // hop * hop]).reshape(-1, hop).max(axis=1) > 1e-4
    runs, start = [], None
    for index, sounding in enumerate(np.append(frames, False)):
        if sounding and start is None:
            start = index
        elif not sounding and start is not None:
            runs.append((start * hop / 16000, index * hop / 16000))
            start = None
    return runs


@pytest.mark.parametrize("number", [2, 3])
def test_relations_are_sounds_further_apart_than_the_cnns_receptive_field(number):
    """The definition the corpus exists for: each temporal class of versions 2 and 3 is 2 or 3 short sounds,
    separated by more than the CPU CNN's receptive field (67 frames, 0.67 s), so no window a small CNN
    sees holds two of them; a CNN cannot read the order that tells a class from its mirror."""
    receptive_field_s = 0.67
    assert min(GAP_S[0], STEP_GAP_S[0]) > receptive_field_s and RELATION_EDGE_MARGIN_S >= receptive_field_s
    for sound_class in (c for c in VERSIONS[number].classes if c.kind == TEMPORAL):
        for seed in range(5):
            runs = _sounding_runs(synthesise_event(sound_class.label, np.random.default_rng(seed)))
            assert len(runs) in (2, 3), (sound_class.label, seed, runs)
            gaps = [b[0] - a[1] for a, b in zip(runs, runs[1:])]
            assert min(gaps) > receptive_field_s, (sound_class.label, seed, gaps)
            assert max(end - start for start, end in runs) < 0.95  # each sound is short


def test_relations_keep_away_from_the_clip_edges():
    relation_labels = {c.label for c in CURRENT.classes if c.kind == TEMPORAL}
    seen = 0
    for index in range(40):
        clip = render_multilabel_clip(clip_rng(0, 1, index, 2), CURRENT)
        for event in clip.events:
            if event.label in relation_labels:
                seen += 1
                assert event.onset_s >= RELATION_EDGE_MARGIN_S - 1e-9
                assert event.onset_s + event.duration_s <= clip.duration_s - RELATION_EDGE_MARGIN_S + 1e-9
                # centred: the relation's first sound is early in the clip, its last one late
                centre_offset = event.onset_s + event.duration_s / 2 - clip.duration_s / 2
                assert abs(centre_offset) <= CURRENT.relation_jitter_s + 1e-3
    assert seen >= 10
    for label in relation_labels:  # the longest relations fit a 5-s ESC-50 clip with both margins
        clip = render_single_class_clip(np.random.default_rng(1), np.random.default_rng(2), label, CURRENT)
        event = clip.events[0]
        assert event.onset_s >= RELATION_EDGE_MARGIN_S - 1e-9 and clip.duration_s == 5.0
        assert event.onset_s + event.duration_s <= 5.0 - RELATION_EDGE_MARGIN_S + 1e-9


@pytest.mark.parametrize("number", sorted(VERSIONS))
def test_multilabel_clips_mix_one_to_three_distinct_events_over_noise(number):
    version = corpus_version(number)
    shortest, longest = version.clip_seconds
    counts = set()
    for index in range(30):
        clip = render_multilabel_clip(clip_rng(0, 1, index), version)
        counts.add(len(clip.events))
        assert len(clip.labels) == len(clip.events)
        assert shortest <= clip.duration_s <= longest and clip.wave.dtype == np.float32
        assert 0.2 < np.max(np.abs(clip.wave)) < 1.0
        for event in clip.events:
            assert 0.0 <= event.onset_s and event.onset_s + event.duration_s <= clip.duration_s + 1e-9
        quietest = min(np.sqrt(np.mean(clip.wave[i : i + 1600] ** 2)) for i in range(0, len(clip.wave) - 1600, 1600))
        assert quietest > 0  # background noise everywhere, never digital silence
    assert counts == {1, 2, 3}
