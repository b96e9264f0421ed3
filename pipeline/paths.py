"""Where the project keeps its files: each folder and pointer named once.

All paths are relative to the repository root (where make and ``cmkd`` run)::

    data_manifests/<dataset>/                 labels.csv, clips.csv, dataset.json
    runs/<dataset>/<run>/                     a training run (fold-based data: <run>/fold<k>/)
    runs/<dataset>/<run>/crossfit.json        a cross-fitted teacher set: its members and held-out clips
    runs/<dataset>/cmkd/<cell>/seed<s>/       the grid's runs
    stores/<dataset>/<teacher>.zarr           stage one's stores; stores/<dataset>/LATEST names the newest
    reports/<dataset>/                        the grid's report

Standard library only, so every layer (the store's numpy-only reader included) can use it.
"""

from __future__ import annotations

import json
from pathlib import Path

MANIFESTS_ROOT = "data_manifests"
RUNS_ROOT = "runs"
STORES_ROOT = "stores"
REPORTS_ROOT = "reports"
PACKED_ROOT = "packed"
LATEST_FILE = "LATEST"  # inside stores/<dataset>/: the path of the store `make teacher-logits` last wrote
CROSSFIT_FILE = "crossfit.json"
GRID_FOLDER = "cmkd"  # runs/<dataset>/cmkd/: the grid's cells


def manifest_dir(dataset: str, root: str | Path = MANIFESTS_ROOT) -> Path:
    return Path(root) / dataset


def run_dir(dataset: str, run: str, root: str | Path = RUNS_ROOT) -> Path:
    return Path(root) / dataset / run


def grid_run_dir(dataset: str, cell: str, seed: int, root: str | Path = RUNS_ROOT) -> Path:
    return run_dir(dataset, GRID_FOLDER, root) / cell / f"seed{seed}"


def store_dir(dataset: str, root: str | Path = STORES_ROOT) -> Path:
    return Path(root) / dataset


def store_path(dataset: str, name: str, root: str | Path = STORES_ROOT) -> Path:
    return store_dir(dataset, root) / f"{name}.zarr"


def report_dir(dataset: str, root: str | Path = REPORTS_ROOT) -> Path:
    return Path(root) / dataset


def write_latest_store(dataset: str, store: str | Path, root: str | Path = STORES_ROOT) -> Path:
    """Point stores/<dataset>/LATEST at `store` (what `make student` and `make inspect` default to)."""
    pointer = store_dir(dataset, root) / LATEST_FILE
    pointer.parent.mkdir(parents=True, exist_ok=True)
    pointer.write_text(str(Path(store)) + "\n")
    return pointer


def latest_store(dataset: str, root: str | Path = STORES_ROOT) -> str | None:
    """The store LATEST names, when it still exists."""
    pointer = store_dir(dataset, root) / LATEST_FILE
    if pointer.exists():
        path = pointer.read_text().strip()
        if Path(path).exists():
            return path
    return None


def write_crossfit(run: str | Path, record: dict) -> Path:
    path = Path(run) / CROSSFIT_FILE
    path.write_text(json.dumps(record, indent=1, default=float) + "\n")
    return path


def read_crossfit(run: str | Path) -> dict | None:
    """A cross-fitted run's record (members, held-out clips, out-of-fold scores); None for other runs."""
    path = Path(run) / CROSSFIT_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def is_crossfit_run(run: str | Path) -> bool:
    return (Path(run) / CROSSFIT_FILE).is_file()
