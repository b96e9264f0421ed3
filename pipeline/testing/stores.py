"""A random-init teacher and complete logit stores of simulated teacher output.

Both go through the code that handles the real things: the teacher is saved by the checkpoint writer
with every key stage one reads, and a store is written by create_store / write_chunk /
mark_chunk_done / finalize_store. Only the numbers are made up, which is what a benchmark of speed
and size needs (neither depends on whether a model was trained).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pipeline.config import Config, FrontEndConfig, config_to_dict
from pipeline.features import front_end_dict

from .datasets import generated_vocabulary

SIMULATED_SHA = "0" * 64  # stands where a real teacher's or manifest's hash would be


def save_random_teacher(
    run_dir: Path, model_name: str, num_classes: int, n_mels: int, target_length: int, seed: int = 0
) -> Path:
    """A random-init model saved as <run_dir>/checkpoints/final.pt, over :func:`generated_vocabulary`."""
    import torch

    from pipeline.checkpoints import save_checkpoint
    from pipeline.models import create_model

    torch.manual_seed(seed)
    model = create_model(model_name, num_classes=num_classes, n_mels=n_mels, target_length=target_length)
    config = Config(model=model_name, n_mels=n_mels, target_length=target_length)
    mids, names = generated_vocabulary(num_classes)
    state = {
        "model": model.state_dict(),
        "model_name": model.model_name,
        "model_config": model.model_config,
        "config": config_to_dict(config),
        "front_end": dataclasses.asdict(FrontEndConfig(n_mels=n_mels, target_length=target_length)),
        "vocabulary": {"mids": mids, "names": names},
        "activation": "sigmoid",
        "dataset": "generated",
        "epoch": 0,
        "kind": "random-init",
        "metrics": {},
    }
    path = run_dir / "checkpoints" / "final.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(state, path)
    return path


def simulated_logits(rows: int, num_classes: int, seed: int) -> np.ndarray:
    """float32 [rows, C] shaped like a multi-label AudioSet model's pre-sigmoid output.

    Most classes sit far below zero (probabilities around 0.1-1 %), with a per-class prior, and each
    clip has one to four active classes with logits around +1.5 (probabilities 50-95 %).
    """
    rng = np.random.default_rng(seed)
    prior = rng.normal(0.0, 1.0, size=num_classes)
    logits = rng.normal(-6.0, 1.2, size=(rows, num_classes)) + prior
    active = rng.integers(1, 5, size=rows)
    for row in range(rows):
        classes = rng.choice(num_classes, size=active[row], replace=False)
        logits[row, classes] = rng.normal(1.5, 1.5, size=active[row])
    return logits.astype(np.float32)


def simulated_provenance() -> dict:
    """The provenance a store requires, marked as simulated."""
    return {
        "teacher": {"model": "simulated", "checkpoint_sha256": SIMULATED_SHA},
        "manifest": {"name": "generated", "sha256": {"clips.csv": SIMULATED_SHA, "labels.csv": SIMULATED_SHA}},
        "front_end": front_end_dict(FrontEndConfig()),
    }


def write_simulated_store(
    path: Path,
    clip_ids: list[str],
    num_classes: int,
    chunk_logits: Callable[[int, int], np.ndarray],
    views: int = 0,
    chunk_views: Callable[[int, int], tuple[np.ndarray, dict]] | None = None,
    chunk_clips: int | None = None,
    dtype: str = "float16",
) -> Path:
    """A complete, finalized store of training clips over :func:`generated_vocabulary`.

    chunk_logits(start, stop) gives rows start:stop; with views, chunk_views(start, stop) gives
    (view_logits [n, K, C], views_to_arrays(...)).
    """
    from pipeline.store import chunk_plan, create_store, finalize_store, mark_chunk_done, write_chunk

    if views and chunk_views is None:
        raise ValueError("write_simulated_store: views need chunk_views")
    mids, names = generated_vocabulary(num_classes)
    n = len(clip_ids)
    create_store(
        path,
        clip_ids=clip_ids,
        splits=["train"] * n,
        folds=[0] * n,
        vocabulary_mids=mids,
        vocabulary_names=names,
        activation="sigmoid",
        attrs=simulated_provenance(),
        views=views,
        view_seed=0,
        dtype=dtype,
        chunk_clips=chunk_clips,
        overwrite=True,
    )
    for index, start, stop in chunk_plan(path):
        view_logits, view_arrays = chunk_views(start, stop) if views and chunk_views else (None, None)
        checksum = write_chunk(
            path,
            index,
            chunk_logits(start, stop),
            np.ones(stop - start, dtype=bool),
            view_logits=view_logits,
            view_arrays=view_arrays,
        )
        mark_chunk_done(path, index, checksum)
    finalize_store(path, {"simulated": True})
    return path
