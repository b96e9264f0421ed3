"""Control teachers: stores that look like a teacher's but carry no knowledge of the clips.

A KD student can beat its no-KD baseline for reasons that have nothing to do with what the teacher
knows about each clip: soft targets regularise (like label smoothing), and lambda < 1 simply
re-weights the task loss. Two controls separate those from knowledge, each distilled with exactly
the student's KD settings:

* **prior**: every clip gets the same logits, those of the train split's label prior
  (``log p / (1 - p)`` per class for a sigmoid teacher, ``log p`` for a softmax teacher). Whatever
  a student gains from it is regularisation; only the gain *over this control* is knowledge.
* **shuffled**: a real teacher's logits assigned to the wrong clips (a seeded permutation within
  each split). It has the teacher's confidence and class co-occurrence, but not the clip's content.

Both are real stores written through the store writer, so stage two reads them like any other and
their provenance says plainly what they are (``teacher.control``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..manifests import Manifest, load_manifest, manifest_hashes
from ..store import LogitTable, StoreLock, create_store, finalize_store, mark_chunk_done, write_chunk
from ..store.format import open_store, public_location, sha256_hex

PRIOR_FLOOR = 1e-4  # keeps log p finite for a class absent from the train split


def label_prior(manifest: Manifest, fold: int | None = None) -> np.ndarray:
    """Share of labelled train clips carrying each class (vocabulary order)."""
    from ..training.dataset import multi_hot

    index = {mid: i for i, mid in enumerate(manifest.mids)}
    labelled = [c for c in manifest.select("train", fold) if c.labels]
    if not labelled:
        raise ValueError(f"{manifest.name}: no labelled train clips to take a label prior from")
    return np.mean([multi_hot(c, index, manifest.num_classes) for c in labelled], axis=0)


def prior_logits(prior: np.ndarray, activation: str) -> np.ndarray:
    """Logits whose activation gives back the prior: sigmoid(logit(p)) = p, softmax(log p) = p / sum p."""
    p = np.clip(prior, PRIOR_FLOOR, 1.0 - PRIOR_FLOOR)
    return np.log(p) if activation == "softmax" else np.log(p / (1.0 - p))


def _write_rows(
    out: str | Path,
    manifest: Manifest,
    logits: np.ndarray,
    valid: np.ndarray,
    activation: str,
    attrs: dict,
    overwrite: bool,
) -> dict:
    """Write a whole [clips, classes] table as a finished store (views=0), chunk by chunk."""
    with StoreLock(out):
        create_store(
            out,
            clip_ids=[c.clip_id for c in manifest.clips],
            splits=[c.split for c in manifest.clips],
            folds=[c.fold or 0 for c in manifest.clips],
            vocabulary_mids=manifest.mids,
            vocabulary_names=[label.name for label in manifest.labels],
            activation=activation,
            attrs=attrs,
            overwrite=overwrite,
        )
        _, layout = open_store(out)
        for chunk in range(layout.n_chunks):
            start, stop = layout.chunk_bounds(chunk)
            sha = write_chunk(out, chunk, logits[start:stop], valid[start:stop])
            mark_chunk_done(out, chunk, sha)
        return finalize_store(out, {"control": attrs["teacher"]["control"]})


def write_prior_store(
    manifest_dir: str | Path,
    out: str | Path,
    front_end: dict,
    activation: str,
    fold: int | None = None,
    overwrite: bool = False,
) -> dict:
    """The constant-prior control: every clip of the manifest gets the train split's prior as logits."""
    manifest = load_manifest(manifest_dir)
    prior = label_prior(manifest, fold)
    row = prior_logits(prior, activation).astype(np.float32)
    logits = np.tile(row, (len(manifest.clips), 1))
    identity = sha256_hex(
        json.dumps(
            {"control": "prior", "prior": prior.round(8).tolist(), "fold": fold, "activation": activation}
        ).encode()
    )
    attrs = {
        "teacher": {
            "control": "prior",
            "checkpoint_sha256": identity,
            "fold": fold,
            "description": "constant train-split label prior for every clip (a control, not a model)",
        },
        "front_end": dict(front_end),
        "manifest": {
            "name": manifest.name,
            "sha256": manifest_hashes(manifest_dir),
            "format": manifest.info.get("format"),
        },
        "views": {"count": 0, "seed": 0, "settings": None},
    }
    return _write_rows(out, manifest, logits, np.ones(len(manifest.clips), dtype=bool), activation, attrs, overwrite)


def shuffled_rows(splits: list[str], valid: np.ndarray, seed: int) -> np.ndarray:
    """For each row, the row whose logits it receives: a seeded permutation of the valid rows within
    each split that leaves no valid row on itself when the split has two or more of them."""
    rng = np.random.default_rng(seed)
    source = np.arange(len(splits))
    split_of_row = np.asarray(splits)
    for split in np.unique(split_of_row):
        rows = np.flatnonzero((split_of_row == split) & valid)
        if len(rows) < 2:
            continue
        # a random cyclic shift of a random order: a permutation with no fixed point
        order = rng.permutation(rows)
        source[order] = np.roll(order, int(rng.integers(1, len(rows))))
    return source


def write_shuffled_store(
    manifest_dir: str | Path, source_store: str | Path, out: str | Path, seed: int = 0, overwrite: bool = False
) -> dict:
    """The shuffled control: a real store's logits, each clip given another clip's row of its split."""
    manifest = load_manifest(manifest_dir)
    table = LogitTable.open(source_store, load_views=False)
    rows = table.rows([c.clip_id for c in manifest.clips])
    if (rows < 0).any():
        missing = [c.clip_id for c, r in zip(manifest.clips, rows) if r < 0][:5]
        raise ValueError(
            f"{source_store}: has no row for {int((rows < 0).sum())} of {manifest.name}'s clips "
            f"(first: {missing}); a shuffled control needs the teacher's full store"
        )
    valid = table.valid_rows(rows)
    logits = table.logits_for(rows).astype(np.float32)
    source = shuffled_rows([c.split for c in manifest.clips], valid, seed)
    teacher = dict(table.teacher)
    attrs = {
        "teacher": {
            **teacher,
            "control": "shuffled",
            "permutation_seed": int(seed),
            "source_store": public_location(source_store),
            "checkpoint_sha256": sha256_hex(f"{teacher.get('checkpoint_sha256')}:shuffled:{seed}".encode()),
            "description": "a real teacher's logits assigned to other clips of the same split (a control, not a model)",
        },
        "front_end": table.front_end,
        "manifest": {
            "name": manifest.name,
            "sha256": manifest_hashes(manifest_dir),
            "format": manifest.info.get("format"),
        },
        "views": {"count": 0, "seed": 0, "settings": None},
    }
    return _write_rows(out, manifest, logits[source], valid[source], table.activation, attrs, overwrite)
