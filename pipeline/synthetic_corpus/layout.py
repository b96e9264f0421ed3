"""Writing the corpus in the exact on-disk layouts of FSD50K and ESC-50.

The manifest converters for the real datasets read these directories unchanged, so every file name,
header, column order and quoting rule follows the official files (short hand-written excerpts in
that format live in ``tests/fixtures/``):

FSD50K: ``FSD50K.dev_audio/<fname>.wav``, ``FSD50K.eval_audio/<fname>.wav``, and in
``FSD50K.ground_truth/``: ``vocabulary.csv`` (no header: index,label,mid), ``dev.csv``
(fname,labels,mids,split with split train|val) and ``eval.csv`` (fname,labels,mids), labels and mids
comma-joined inside double quotes.

ESC-50: ``audio/{fold}-{src_file}-{take}-{target}.wav`` and ``meta/esc50.csv``
(filename,fold,target,category,esc10,src_file,take), rows sorted by filename, 5 folds, takes of one
source always in the same fold.

A plan (which clip gets which name, split, fold and seed) is drawn first from its own stream; the
clips are then rendered independently, so :mod:`.build` may render them in any order or process.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio import write_wav
from .classes import CorpusVersion, SoundClass, corpus_version
from .clips import (
    STREAM_ESC_SOURCE,
    STREAM_ESC_TAKE,
    STREAM_FSD_DEV,
    STREAM_FSD_EVAL,
    STREAM_NAMES,
    clip_rng,
    render_multilabel_clip,
    render_single_class_clip,
)

FSD_DEV_DIR, FSD_EVAL_DIR, FSD_TRUTH_DIR = "FSD50K.dev_audio", "FSD50K.eval_audio", "FSD50K.ground_truth"
ESC_AUDIO_DIR, ESC_META = "audio", "meta/esc50.csv"
ESC_COLUMNS = ["filename", "fold", "target", "category", "esc10", "src_file", "take"]
ESC_FOLDS = 5
TAKE_LETTERS = "ABCDEFGH"

# clip counts at size 1.0; the SIZE knob scales them, with floors so tiny test corpora stay usable
FSD_DEV_CLIPS, FSD_EVAL_CLIPS, FSD_VAL_FRACTION = 1200, 400, 0.1
ESC_CLIPS_PER_CLASS_PER_FOLD = 5


# ------------------------------------------------------------------------------------------ FSD50K


def _version_key(version: int) -> tuple[int, ...]:
    """Extra seed words for a corpus version: none for version 1, so its bytes never change; later
    versions draw other names and clips, so a store of one version never matches another's ids."""
    return () if version == 1 else (version,)


@dataclass(frozen=True)
class FsdClipJob:
    """Everything a worker needs to render and write one FSD50K-style clip."""

    seed: int
    stream: int  # STREAM_FSD_DEV or STREAM_FSD_EVAL
    index: int
    fname: int
    split: str  # train | val | eval
    version: int


@dataclass(frozen=True)
class FsdRow:
    fname: int
    labels: tuple[str, ...]
    split: str
    duration_s: float


def fsd50k_counts(size: float) -> tuple[int, int, int]:
    """(dev clips, of which val, eval clips) for a SIZE knob value."""
    n_dev = max(10, round(FSD_DEV_CLIPS * size))
    n_eval = max(4, round(FSD_EVAL_CLIPS * size))
    return n_dev, max(1, round(FSD_VAL_FRACTION * n_dev)), n_eval


def plan_fsd50k(size: float, seed: int, version: int) -> list[FsdClipJob]:
    n_dev, n_val, n_eval = fsd50k_counts(size)
    names = clip_rng(seed, STREAM_NAMES, 0, *_version_key(version))
    # integer fnames scattered like FSD50K's Freesound ids, unique across dev and eval
    fnames = names.choice(np.arange(1000, 450_000), size=n_dev + n_eval, replace=False)
    val = set(names.choice(n_dev, size=n_val, replace=False).tolist())
    jobs = [
        FsdClipJob(seed, STREAM_FSD_DEV, i, int(fnames[i]), "val" if i in val else "train", version)
        for i in range(n_dev)
    ]
    jobs += [FsdClipJob(seed, STREAM_FSD_EVAL, j, int(fnames[n_dev + j]), "eval", version) for j in range(n_eval)]
    return jobs


def render_fsd_clip(job: FsdClipJob, root: Path) -> FsdRow:
    clip = render_multilabel_clip(
        clip_rng(job.seed, job.stream, job.index, *_version_key(job.version)), corpus_version(job.version)
    )
    folder = FSD_EVAL_DIR if job.split == "eval" else FSD_DEV_DIR
    write_wav(root / folder / f"{job.fname}.wav", clip.wave)
    return FsdRow(job.fname, clip.labels, job.split, clip.duration_s)


def _quoted_lists(labels: tuple[str, ...], vocabulary: tuple[SoundClass, ...]) -> str:
    """'"label_a,label_b","mid_a,mid_b"': quoted even for one label, as in the official csvs."""
    order = {c.label: i for i, c in enumerate(vocabulary)}
    ordered = sorted(labels, key=order.__getitem__)
    mids = [vocabulary[order[label]].mid for label in ordered]
    return f'"{",".join(ordered)}","{",".join(mids)}"'


def write_fsd50k_ground_truth(root: Path, rows: list[FsdRow], version: CorpusVersion) -> None:
    vocabulary = version.vocabulary
    truth = root / FSD_TRUTH_DIR
    truth.mkdir(parents=True, exist_ok=True)
    with open(truth / "vocabulary.csv", "w", newline="") as f:
        f.writelines(f"{i},{c.label},{c.mid}\n" for i, c in enumerate(vocabulary))
    with open(truth / "dev.csv", "w", newline="") as f:
        f.write("fname,labels,mids,split\n")
        f.writelines(f"{r.fname},{_quoted_lists(r.labels, vocabulary)},{r.split}\n" for r in rows if r.split != "eval")
    with open(truth / "eval.csv", "w", newline="") as f:
        f.write("fname,labels,mids\n")
        f.writelines(f"{r.fname},{_quoted_lists(r.labels, vocabulary)}\n" for r in rows if r.split == "eval")


def make_fsd50k_dirs(root: Path) -> None:
    for folder in (FSD_DEV_DIR, FSD_EVAL_DIR, FSD_TRUTH_DIR):
        (root / folder).mkdir(parents=True, exist_ok=True)


def summarise_fsd50k(rows: list[FsdRow], version: CorpusVersion) -> dict:
    per_class = {c.label: 0 for c in version.vocabulary}
    for row in rows:
        for label in row.labels:
            per_class[label] += 1
    splits = [row.split for row in rows]
    return {
        "layout": "fsd50k",
        "clips": {split: splits.count(split) for split in ("train", "val", "eval")},
        "classes": len(version.vocabulary),
        "audio_hours": round(sum(row.duration_s for row in rows) / 3600, 4),
        "clips_per_class": per_class,
    }


# ------------------------------------------------------------------------------------------ ESC-50


@dataclass(frozen=True)
class EscClipJob:
    seed: int
    source_index: int  # seeds the event, shared by the takes of one source
    take_index: int  # seeds placement, level and background
    fold: int
    target: int
    src_file: int
    version: int

    @property
    def sound_class(self) -> SoundClass:
        return corpus_version(self.version).esc_classes[self.target]

    @property
    def take(self) -> str:
        return TAKE_LETTERS[self.take_index]

    @property
    def filename(self) -> str:
        return f"{self.fold}-{self.src_file}-{self.take}-{self.target}.wav"

    def row(self) -> list[str]:
        esc10 = "True" if self.sound_class.label in corpus_version(self.version).esc10_labels else "False"
        return [
            self.filename,
            str(self.fold),
            str(self.target),
            self.sound_class.category,
            esc10,
            str(self.src_file),
            self.take,
        ]


def plan_esc50(size: float, seed: int, version: int) -> list[EscClipJob]:
    """Per class and fold, sources of 1-3 takes until the fold holds its share of clips."""
    per_fold = max(1, round(ESC_CLIPS_PER_CLASS_PER_FOLD * size))
    names = clip_rng(seed, STREAM_NAMES, 1, *_version_key(version))
    n_classes = len(corpus_version(version).esc_labels)
    src_ids = names.choice(np.arange(10_000, 600_000), size=per_fold * ESC_FOLDS * n_classes, replace=False)
    jobs, source_index = [], 0
    for target in range(n_classes):
        for fold in range(1, ESC_FOLDS + 1):
            remaining = per_fold
            while remaining:
                takes = min(remaining, int(names.choice([1, 2, 3], p=[0.6, 0.3, 0.1])))
                jobs += [
                    EscClipJob(seed, source_index, take, fold, target, int(src_ids[source_index]), version)
                    for take in range(takes)
                ]
                remaining -= takes
                source_index += 1
    return sorted(jobs, key=lambda job: job.filename)


def render_esc_clip(job: EscClipJob, root: Path) -> list[str]:
    key = _version_key(job.version)
    clip = render_single_class_clip(
        clip_rng(job.seed, STREAM_ESC_SOURCE, job.source_index, *key),
        clip_rng(job.seed, STREAM_ESC_TAKE, job.source_index, job.take_index, *key),
        job.sound_class.label,
        corpus_version(job.version),
    )
    write_wav(root / ESC_AUDIO_DIR / job.filename, clip.wave)
    return job.row()


def make_esc50_dirs(root: Path) -> None:
    (root / ESC_AUDIO_DIR).mkdir(parents=True, exist_ok=True)
    (root / ESC_META).parent.mkdir(parents=True, exist_ok=True)


def write_esc50_meta(root: Path, rows: list[list[str]]) -> None:
    with open(root / ESC_META, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(ESC_COLUMNS)
        writer.writerows(sorted(rows))


def summarise_esc50(rows: list[list[str]], version: CorpusVersion) -> dict:
    folds = [int(row[1]) for row in rows]
    return {
        "layout": "esc50",
        "clips": len(rows),
        "classes": len(version.esc_labels),
        "clips_per_fold": {str(fold): folds.count(fold) for fold in range(1, ESC_FOLDS + 1)},
        "sources": len({row[5] for row in rows}),
    }
