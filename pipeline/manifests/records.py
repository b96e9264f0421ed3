"""The canonical clip table: small typed records, read and written as plain CSV.

A manifest directory ``data_manifests/<name>/`` holds ``labels.csv`` (index, mid, name: the class
order everywhere after), ``clips.csv`` (one row per clip) and ``dataset.json`` (provenance, counts,
hashes and normalisation stats). clip_id is the only join key between manifests, packed audio and
logit stores.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

CLIP_COLUMNS = ["clip_id", "path", "labels", "split", "fold", "duration_s", "sample_rate", "channels", "fingerprint"]
LABEL_COLUMNS = ["index", "mid", "name"]


class ManifestError(ValueError):
    """Bad dataset input; the message lists the offending rows (first 20 and a count)."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        shown = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(f"{source}: {len(problems)} problem(s):\n  {shown}{more}")


@dataclass(frozen=True)
class Label:
    index: int
    mid: str
    name: str


@dataclass(frozen=True)
class Clip:
    clip_id: str
    path: str  # relative to the manifest's data_root
    labels: tuple[str, ...]  # mids; empty for unlabelled clips (label-free KD)
    split: str = ""  # train | val | eval | "" (fold-based sets)
    fold: int | None = None  # 1-5 for the ESC-50 layout
    duration_s: float = 0.0
    sample_rate: int = 0
    channels: int = 0
    fingerprint: str = ""  # pipeline.audio.fingerprint_samples of the decoded audio; "" in older manifests


@dataclass
class Manifest:
    name: str
    data_root: Path
    labels: list[Label]
    clips: list[Clip]
    info: dict = field(default_factory=dict)  # the parsed dataset.json

    @property
    def mids(self) -> list[str]:
        return [label.mid for label in self.labels]

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def single_label(self) -> bool:
        """True for ESC-50-style data: every labelled clip has exactly one label."""
        labelled = [c for c in self.clips if c.labels]
        return (
            bool(labelled)
            and all(len(c.labels) == 1 for c in labelled)
            and self.info.get("format") in ("esc50", "demo-esc50")
        )

    @property
    def folds(self) -> list[int]:
        return sorted({c.fold for c in self.clips if c.fold is not None})

    @property
    def fold_based(self) -> bool:
        """ESC-50 layout: each fold is evaluated in turn (see :func:`is_fold_based`)."""
        return is_fold_based(self.clips)

    def audio_path(self, clip: Clip) -> Path:
        return Path(self.data_root) / clip.path

    def select(self, split: str, fold: int | None = None) -> list[Clip]:
        """Clips of one role. For fold-based data: 'train' = all folds but `fold`, 'eval' = `fold`,
        'val' = none. A missing val split is empty, never the eval split in disguise (see
        :func:`pipeline.training.runner.splits_for` for what model selection does then)."""
        if self.fold_based:
            if fold is None:
                raise ValueError(f"{self.name} is fold-based: give FOLD=k (one of {self.folds})")
            if split == "train":
                return [c for c in self.clips if c.fold != fold]
            if split == "eval":
                return [c for c in self.clips if c.fold == fold]
            if split == "val":
                return []
            raise ValueError(f"unknown split {split!r}")
        return [c for c in self.clips if c.split == split]

    def stats(self) -> dict:
        return self.info.get("norm_stats", {})


def is_fold_based(clips: list[Clip]) -> bool:
    """The dataset kind: clips carry folds and no split (ESC-50 layout), so every fold is evaluated in
    turn and the others train; otherwise fixed train/val/eval splits (FSD50K, AudioSet, AST json)."""
    return any(c.fold is not None for c in clips) and not any(c.split for c in clips)


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _atomic_write(path: Path, text: str) -> None:
    """Write to a temp file in the same directory, then rename: no half-written manifests."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _clip_row(clip: Clip) -> dict:
    row = asdict(clip)
    row["labels"] = ",".join(clip.labels)
    row["fold"] = "" if clip.fold is None else str(clip.fold)
    row["duration_s"] = f"{clip.duration_s:.4f}"
    return row


def write_manifest(
    out_dir: str | os.PathLike,
    name: str,
    data_root: str | os.PathLike,
    fmt: str,
    labels: list[Label],
    clips: list[Clip],
    extra: dict | None = None,
) -> Path:
    """Write labels.csv, clips.csv and dataset.json atomically; keeps norm stats and packs of the same clips."""
    out_dir = Path(out_dir)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=LABEL_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for label in labels:
        writer.writerow(asdict(label))
    labels_text = buf.getvalue()
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CLIP_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for clip in clips:
        writer.writerow(_clip_row(clip))
    clips_text = buf.getvalue()
    counts: dict[str, int] = {"clips": len(clips), "classes": len(labels)}
    for clip in clips:
        key = clip.split or (f"fold{clip.fold}" if clip.fold is not None else "none")
        counts[key] = counts.get(key, 0) + 1
    counts["unlabelled"] = sum(1 for c in clips if not c.labels)
    old_info = {}
    if (out_dir / "dataset.json").exists():
        old_info = json.loads((out_dir / "dataset.json").read_text())
    info = {
        "name": name,
        "format": fmt,
        "data_root": str(Path(data_root).resolve()),
        "counts": counts,
        "sha256": {
            "clips.csv": hashlib.sha256(clips_text.encode()).hexdigest(),
            "labels.csv": hashlib.sha256(labels_text.encode()).hexdigest(),
        },
        **(extra or {}),
    }
    if old_info.get("sha256", {}).get("clips.csv") == info["sha256"]["clips.csv"]:
        # results derived from the very same clips stay valid across a rebuild
        for derived in ("norm_stats", "packed"):
            if derived in old_info:
                info[derived] = old_info[derived]
    _atomic_write(out_dir / "labels.csv", labels_text)
    _atomic_write(out_dir / "clips.csv", clips_text)
    _atomic_write(out_dir / "dataset.json", json.dumps(info, indent=2) + "\n")
    return out_dir


def update_dataset_info(manifest_dir: str | os.PathLike, **fields_to_set) -> dict:
    path = Path(manifest_dir) / "dataset.json"
    info = json.loads(path.read_text())
    info.update(fields_to_set)
    _atomic_write(path, json.dumps(info, indent=2) + "\n")
    return info


def load_manifest(manifest_dir: str | os.PathLike) -> Manifest:
    """Read a manifest directory written by :func:`write_manifest`."""
    manifest_dir = Path(manifest_dir)
    if not (manifest_dir / "clips.csv").exists():
        raise FileNotFoundError(
            f"no manifest at {manifest_dir}/ (run `make manifests DATASET={manifest_dir.name} DATA_ROOT=...`)"
        )
    info = json.loads((manifest_dir / "dataset.json").read_text())
    with open(manifest_dir / "labels.csv", newline="") as f:
        labels = [Label(int(r["index"]), r["mid"], r["name"]) for r in csv.DictReader(f)]
    clips = []
    with open(manifest_dir / "clips.csv", newline="") as f:
        for r in csv.DictReader(f):
            clips.append(
                Clip(
                    clip_id=r["clip_id"],
                    path=r["path"],
                    labels=tuple(m for m in r["labels"].split(",") if m),
                    split=r["split"],
                    fold=int(r["fold"]) if r["fold"] else None,
                    duration_s=float(r["duration_s"] or 0),
                    sample_rate=int(r["sample_rate"] or 0),
                    channels=int(r["channels"] or 0),
                    fingerprint=r.get("fingerprint") or "",
                )
            )
    return Manifest(manifest_dir.name, Path(info["data_root"]), labels, clips, info)


def manifest_hashes(manifest_dir: str | os.PathLike) -> dict:
    """sha256 of the two files that define the data; recorded in stores for provenance."""
    manifest_dir = Path(manifest_dir)
    return {name: sha256_file(manifest_dir / name) for name in ("clips.csv", "labels.csv")}
