"""Small real stores for the store tests (written with the library's own writer), and a comparison of
two stores array by array."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr

from pipeline.augment import AugmentSettings, View, draw_view
from pipeline.store import (
    LogitTable,
    chunk_plan,
    create_store,
    finalize_store,
    mark_chunk_done,
    verify_store,
    views_to_arrays,
    write_chunk,
)

MIDS = ["/m/dog", "/m/cat", "/m/rain", "/m/car", "/m/bird", "/m/wind"]
NAMES = ["Dog", "Cat", "Rain", "Car", "Bird", "Wind"]
SETTINGS = AugmentSettings(mixup=0.5, freqm=12, timem=30, time_shift=8)


def provenance(checkpoint="a" * 64, clips_sha="c" * 64, n_mels=128) -> dict:
    return {
        "teacher": {
            "model": "ast_tiny",
            "checkpoint_sha256": checkpoint,
            "config": {"lr": 1e-4},
            "metrics": {"mAP": 0.41, "broken": float("nan")},
        },
        "front_end": {"sample_rate": 16000, "n_mels": n_mels, "target_length": 100},
        "manifest": {"name": "demo", "sha256": {"clips.csv": clips_sha, "labels.csv": "d" * 64}},
        "views": {"settings": {"mixup": SETTINGS.mixup, "freqm": SETTINGS.freqm}},
    }


def clip_ids(n: int) -> list[str]:
    return [f"clip{i:03d}" for i in range(n)]


def make_store(path, n=10, mids=MIDS, **overrides) -> Path:
    ids = clip_ids(n)
    kwargs = dict(
        clip_ids=ids,
        splits=["train" if i % 3 else "eval" for i in range(n)],
        folds=[None if i % 2 else 1 + i % 5 for i in range(n)],
        vocabulary_mids=mids,
        vocabulary_names=[m.upper() for m in mids],
        activation="sigmoid",
        attrs=provenance(),
        chunk_clips=4,
    )
    kwargs.update(overrides)
    create_store(path, **kwargs)
    return Path(path)


def teacher_logits(n_rows: int, num_classes: int, seed: int, views: int = 0) -> np.ndarray:
    shape = (n_rows, views, num_classes) if views else (n_rows, num_classes)
    return (np.random.default_rng(seed).standard_normal(shape) * 4).astype(np.float32)


def chunk_views(ids: list[str], start: int, stop: int, views: int, seed: int = 7) -> list[list[View]]:
    return [[draw_view(seed, ids[row], k, ids, SETTINGS, 128, 100) for k in range(views)] for row in range(start, stop)]


def fill_store(
    path: Path, views: int = 0, failed: dict[str, str] | None = None, finalize: bool = True
) -> dict[str, np.ndarray]:
    """Write and mark every chunk (and finalize); returns the dense inputs so tests can compare against them."""
    failed = failed or {}
    table = LogitTable.open(path, load_views=False, verify=False)
    ids, num_classes = table.clip_ids, table.num_classes
    dense = teacher_logits(len(ids), num_classes, seed=1)
    view_dense = teacher_logits(len(ids), num_classes, seed=2, views=views) if views else None
    for chunk, start, stop in chunk_plan(path):
        valid = np.array([ids[row] not in failed for row in range(start, stop)])
        arrays = views_to_arrays(chunk_views(ids, start, stop, views)) if views else None
        sha = write_chunk(path, chunk, dense[start:stop], valid, view_dense[start:stop] if views else None, arrays)
        mark_chunk_done(path, chunk, sha, [(c, e) for c, e in failed.items() if ids.index(c) in range(start, stop)])
    if finalize:
        finalize_store(path)
    return {"logits": dense, "view_logits": view_dense}


def arrays_of(path: str | Path) -> dict[str, np.ndarray]:
    group = zarr.open_group(str(path), mode="r")
    return {name: np.asarray(array[:]) for name, array in group.arrays()}


def assert_same_store(path, reference: dict[str, np.ndarray]) -> None:
    assert verify_store(path) == []
    got = arrays_of(path)
    assert sorted(got) == sorted(reference)
    for name, expected in reference.items():
        if expected.dtype.kind == "f":
            assert np.array_equal(got[name], expected, equal_nan=True), name
        else:
            assert np.array_equal(got[name], expected), name
    ids = list(got["clip_id"])
    assert len(ids) == len(set(ids)) and np.asarray(got["valid"]).all()  # no row lost or duplicated
