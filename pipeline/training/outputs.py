"""What a finished run leaves besides checkpoints and metrics.csv, for the researcher who reads it later.

- ``eval_predictions.parquet``: one row per eval clip, ``clip_id`` (a string column: FSD50K's numeric
  ids stay strings in pandas, DuckDB, polars, Spark, and join the store's ``clip_id`` without a cast)
  then the pre-activation logit of every class (float32 columns named by mid, in vocabulary order);
  :func:`read_predictions` reads it back (and the ``eval_predictions.csv.gz`` of older runs);
- ``per_class_ap.csv``: index, mid, name, number of positive eval clips, AP (empty where a class has
  no positive, so AP is undefined and left out of mAP);
- ``plots/per_class_ap.png``: the per-class AP, sorted;
- for a KD run whose teacher's run folder is at hand (named by the store or by TEACHER): a
  ``teacher_ap`` column in ``per_class_ap.csv`` and ``plots/teacher_vs_student_ap.png``, one dot per
  class, so the classes where the student overtakes or trails its teacher stand out;
- ``summary.json`` gains ``provenance``: the git commit of the code, the versions of the packages
  the numbers depend on, and for a KD run the store it learned from (path and a content hash) or
  the online teacher.

Only the rank-0 process of a run calls :func:`write_run_outputs`.
"""

from __future__ import annotations

import importlib.metadata
import platform
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import Config, RunPaths
from ..manifests import Manifest
from ..metrics import per_class_ap
from .evaluate import Evaluation
from .runlog import run_title, square_limits, write_summary

PREDICTIONS_FILE = "eval_predictions.parquet"
OLD_PREDICTIONS_FILE = "eval_predictions.csv.gz"  # runs before Parquet; CSV drops the clip ids' type
ID_COLUMN = "clip_id"  # the same name as the store's join key
PER_CLASS_FILE = "per_class_ap.csv"
PACKAGES = (
    "torch",
    "torchaudio",
    "torchvision",
    "timm",
    "zarr",
    "numcodecs",
    "numpy",
    "pandas",
    "scipy",
    "scikit-learn",
    "dask",
    "distributed",
    "h5py",
    "soundfile",
)
METRICS_SHOWN = (("map", "mAP"), ("mauc", "mAUC"), ("dprime", "d'"), ("accuracy", "accuracy"))


def write_run_outputs(
    paths: RunPaths, config: Config, manifest: Manifest, evaluation: Evaluation, summary: dict, progress: bool = True
) -> dict:
    """Write predictions, per-class AP (CSV and plot) and provenance; returns the updated summary."""
    write_predictions(paths.root / PREDICTIONS_FILE, evaluation, manifest.mids)
    record = provenance(config)
    table = per_class_table(evaluation, manifest)
    title = run_title(paths.root, config, manifest.name)
    teacher_table = teacher_per_class(record)
    if teacher_table is not None:
        table = table.merge(teacher_table, on="mid", how="left")
        plot_teacher_vs_student(table, paths.plots / "teacher_vs_student_ap.png", title=title)
    table.to_csv(paths.root / PER_CLASS_FILE, index=False, float_format="%.6f")
    plot_per_class_ap(table, paths.plots / "per_class_ap.png", title=title)
    summary = {**summary, "provenance": record}
    write_summary(paths.root / "summary.json", summary)
    if progress:
        print(final_line(paths.root, summary))
    return summary


def final_line(run_dir: Path, summary: dict) -> str:
    """The last line of a run's log: its eval metrics and where everything went."""
    shown = "  ".join(f"{label} {summary[key]:.4f}" for key, label in METRICS_SHOWN if key in summary)
    return (
        f"finished {run_dir}: eval {shown} ({summary.get('eval_clips', '?')} clips; predictions, per-class AP, "
        f"plots and summary.json in {run_dir}/)"
    )


def predictions_frame(clip_ids, logits: np.ndarray, mids: list[str]) -> pd.DataFrame:
    """`clip_id` (strings) then one float32 column per class mid: what every predictions file holds."""
    frame = pd.DataFrame(np.asarray(logits, dtype=np.float32), columns=list(mids))
    frame.insert(0, ID_COLUMN, pd.Series([str(c) for c in clip_ids], dtype="string"))
    return frame


def write_predictions(path: Path, evaluation: Evaluation, mids: list[str]) -> None:
    """Parquet (pyarrow), so the clip ids' string type travels with the file (a CSV cannot say it)."""
    predictions_frame(evaluation.clip_ids, evaluation.logits, mids).to_parquet(path, index=False)


def read_predictions(path: str | Path) -> pd.DataFrame:
    """Eval predictions as a [clips, classes] frame indexed by clip_id, columns the class mids."""
    path = Path(path)
    if path.is_dir():
        path = path / PREDICTIONS_FILE if (path / PREDICTIONS_FILE).exists() else path / OLD_PREDICTIONS_FILE
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
        frame[ID_COLUMN] = frame[ID_COLUMN].astype(str)
        return frame.set_index(ID_COLUMN)
    return pd.read_csv(path, index_col=ID_COLUMN, dtype={ID_COLUMN: str})


def per_class_table(evaluation: Evaluation, manifest: Manifest) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "index": [label.index for label in manifest.labels],
            "mid": manifest.mids,
            "name": [label.name for label in manifest.labels],
            "positives": evaluation.targets.sum(axis=0).astype(int),
            "ap": per_class_ap(evaluation.logits, evaluation.targets),
        }
    )


def plot_per_class_ap(table: pd.DataFrame, out_png: Path, title: str = "") -> None:
    """Sorted per-class AP: a labelled bar per class for small vocabularies, a ranked curve beyond."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scored = table.dropna(subset=["ap"]).sort_values("ap")
    if scored.empty:
        return
    mean_ap = scored["ap"].mean()
    if len(scored) <= 60:
        fig, ax = plt.subplots(figsize=(7, 1.2 + 0.22 * len(scored)))
        ax.barh(range(len(scored)), scored["ap"], color="tab:blue")
        ax.set_yticks(range(len(scored)), scored["name"], fontsize=7)
        ax.axvline(mean_ap, color="tab:red", linestyle="--", label=f"mAP {mean_ap:.3f}")
        ax.set_xlabel("average precision on the eval clips")
        ax.set_xlim(0, min(1.0, scored["ap"].max() * 1.1 + 0.01))
    else:
        fig, ax = plt.subplots(figsize=(8, 4))
        ax.plot(np.arange(1, len(scored) + 1), scored["ap"].to_numpy()[::-1], color="tab:blue")
        ax.axhline(mean_ap, color="tab:red", linestyle="--", label=f"mAP {mean_ap:.3f}")
        ax.set_xlabel("class rank"), ax.set_ylabel("average precision")
    ax.legend(loc="lower right")
    ax.set_title(title + f"\n{len(scored)} classes scored, {len(table) - len(scored)} without positives", fontsize=9)
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)


def teacher_per_class(record: dict) -> pd.DataFrame | None:
    """The teacher run's per-class AP (columns mid, teacher_ap), when its folder is here and has one."""
    run = record.get("store", {}).get("teacher_run") or record.get("teacher")
    if not run:
        return None
    run = Path(run)
    if run.is_file():  # a checkpoint: runs/<dataset>/<run>/checkpoints/<name>.pt
        run = run.parent.parent
    if not (run / PER_CLASS_FILE).is_file():
        return None
    teacher = pd.read_csv(run / PER_CLASS_FILE, dtype={"mid": str})
    return teacher[["mid", "ap"]].rename(columns={"ap": "teacher_ap"})


def plot_teacher_vs_student(table: pd.DataFrame, out_png: Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    both = table.dropna(subset=["ap", "teacher_ap"])
    if both.empty:
        return
    fig, ax = plt.subplots(figsize=(5.2, 5.6))
    low, high = square_limits(both["teacher_ap"].tolist() + both["ap"].tolist())
    ax.plot([low, high], [low, high], color="grey", linewidth=0.8, linestyle="--", label="student = teacher")
    ax.scatter(both["teacher_ap"], both["ap"], s=14, color="tab:blue")
    better = int((both["ap"] > both["teacher_ap"]).sum())
    ax.set_xlabel("teacher AP per class"), ax.set_ylabel("student AP per class")
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    ax.set_aspect("equal")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(f"{title}\nstudent above teacher on {better} of {len(both)} classes", fontsize=8)
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)


def provenance(config: Config) -> dict:
    """Enough to rerun a result or tell two apart: code commit, package versions, the KD source."""
    from ..provenance import software_attrs  # the one git-commit reader, shared with the store

    out = {
        "git_commit": software_attrs()["git_commit"],
        "python": platform.python_version(),
        "packages": package_versions(),
    }
    if config.kd in ("clean", "replay") and config.logits:
        out["store"] = store_identity(resolved(config.logits, config))
    if config.kd == "online" and config.teacher:
        out["teacher"] = str(Path(resolved(config.teacher, config)).resolve())
    return out


def package_versions(names=PACKAGES) -> dict:
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def store_identity(path: str | Path) -> dict:
    """A store's absolute path, a hash of its content (the sha256 of its per-chunk checksums, each
    covering every array of one chunk: equal hashes mean equal logits, views and clip rows) and the
    run folder of the teacher that wrote it."""
    import zarr

    from ..paths import RUNS_ROOT
    from ..store.errors import StoreError
    from ..store.format import CHUNK_CHECKSUMS, open_store, read_strings, strings_sha256

    group, _ = open_store(path)
    teacher, manifest = group.attrs.get("teacher"), group.attrs.get("manifest")
    run = str((teacher.get("run", "") if isinstance(teacher, dict) else "") or "")
    dataset = str((manifest.get("name", "") if isinstance(manifest, dict) else "") or "")
    if run and dataset and Path(run).name == run:  # a store names its teacher's run folder, not its path
        run = str(Path(RUNS_ROOT) / dataset / run)
    checksums = group[CHUNK_CHECKSUMS]
    if not isinstance(checksums, zarr.Array):
        raise StoreError(f"{path}: {CHUNK_CHECKSUMS} is a group, not the array of chunk checksums")
    return {
        "path": str(Path(path).resolve()),
        "content_sha256": strings_sha256(read_strings(checksums)),
        "teacher_run": run,
    }


def resolved(pattern: str, config: Config) -> str:
    """Per-fold sources are written with '{fold}' (LOGITS='stores/esc50/ast-fold{fold}.zarr')."""
    return pattern.format(fold=config.fold) if "{fold}" in pattern else pattern
