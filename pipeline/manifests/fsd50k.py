"""FSD50K as released on Zenodo: ground-truth CSVs plus one folder of WAVs per partition.

Layout under DATA_ROOT::

    FSD50K.ground_truth/vocabulary.csv   index,label,mid   (no header; the class order)
    FSD50K.ground_truth/dev.csv          fname,labels,mids,split   (split: train | val)
    FSD50K.ground_truth/eval.csv         fname,labels,mids
    FSD50K.dev_audio/<fname>.wav
    FSD50K.eval_audio/<fname>.wav

The ``mids`` column is authoritative; ``labels`` repeats it as names and is not needed.
"""

from __future__ import annotations

from pathlib import Path

from .records import Clip, Label
from .validate import Problems, SourceRow, check_vocabulary, finalise_clips, read_table, split_mids

GROUND_TRUTH = "FSD50K.ground_truth"
DEV_SPLITS = ("train", "val")


def read_vocabulary(path: Path, problems: Problems) -> list[Label]:
    rows = read_table(path, ["index", "label", "mid"], problems, header=False)
    entries = [(f"{path.name} row {line}", r["index"], r["mid"], r["label"]) for line, r in rows]
    return check_vocabulary(entries, problems, path.name)


def _partition_rows(csv_path: Path, audio_dir: str, fixed_split: str | None, problems: Problems) -> list[SourceRow]:
    columns = ["fname", "labels", "mids"] + ([] if fixed_split else ["split"])
    rows = []
    for line, r in read_table(csv_path, columns, problems):
        where = f"{csv_path.name} row {line}"
        split = fixed_split or r["split"]
        if fixed_split is None and split not in DEV_SPLITS:
            problems.add(where, f"split {split!r} is not one of {', '.join(DEV_SPLITS)}")
            continue
        if not r["fname"]:
            problems.add(where, "empty fname")
            continue
        rows.append(SourceRow(where, r["fname"], f"{audio_dir}/{r['fname']}.wav", split_mids(r["mids"]), split))
    return rows


def prepare_fsd50k(data_root: str | Path, progress: bool = True, check: str = "full") -> tuple[list[Label], list[Clip]]:
    """FSD50K ground truth + audio -> (labels in vocabulary order, dev clips then eval clips)."""
    data_root = Path(data_root)
    truth = data_root / GROUND_TRUTH
    problems = Problems()
    needed = [truth / "vocabulary.csv", truth / "dev.csv", truth / "eval.csv"]
    absent = [str(p.relative_to(data_root)) for p in needed if not p.is_file()]
    if absent:
        problems.add(str(data_root), f"not an FSD50K copy: missing {', '.join(absent)}")
        problems.raise_if_any(f"FSD50K at {data_root}")
    labels = read_vocabulary(truth / "vocabulary.csv", problems)
    rows = _partition_rows(truth / "dev.csv", "FSD50K.dev_audio", None, problems)
    rows += _partition_rows(truth / "eval.csv", "FSD50K.eval_audio", "eval", problems)
    clips = finalise_clips(rows, labels, data_root, f"FSD50K at {data_root}", problems, progress, check)
    return labels, clips
