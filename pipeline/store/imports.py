"""Importing peers' logit releases into stores, reading them as data and never running their code.

* EfficientAT: one dense N x C ``.npy`` (loaded with ``allow_pickle=False``) and a pickled
  filename -> row index, read by :class:`DataOnlyUnpickler`, which admits dicts, lists, tuples,
  strings and numbers and refuses every class or function a pickle could name.
* CED: per epoch and rank an HDF5 file of ``topk_values`` (float16 probabilities after the sigmoid),
  ``topk_indexes`` (int16) and ``seeds`` (int32), rows in the order of a filename index. CED writes
  that index as parquet; give it as CSV/TSV (a ``filename`` column) when pyarrow is not installed.
  The other classes are filled with CED's own rule, min(top-k) / (C - k) in probability. CED's
  augmentation seeds cannot be replayed here, so the rows are imported as clip logits (KD=clean).

The user supplies what the release does not say: the teacher's name, the activation, the vocabulary
and, with ``--manifest``, the clips. Clips of the manifest that the release lacks become failed rows
("not in the release"), never silent zero targets. ``attrs.imported`` records the peer format, every
file and its sha256.
"""

from __future__ import annotations

import csv
import io
import pickle
from pathlib import Path

import numpy as np

from .create import create_store
from .format import StoreError
from .lock import StoreLock
from .writer import chunk_plan, finalize_store, mark_chunk_done, write_chunk

ALLOWED_PICKLE_TYPES = (dict, list, tuple, str, int, float, bool, type(None))


class DataOnlyUnpickler(pickle.Unpickler):
    """Builds only the pickle protocol's own containers and scalars: any global (a class, a function,
    numpy's scalar constructor) is refused, so loading cannot run code."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(
            f"refusing {module}.{name}: the index may hold only dicts, lists, strings and numbers"
        )


def load_index(path) -> dict[str, int]:
    """A filename -> row index from a pickle (dict, or a list of names in row order), read as data only."""
    try:
        with open(path, "rb") as handle:
            index = DataOnlyUnpickler(io.BytesIO(handle.read())).load()
    except (pickle.UnpicklingError, EOFError, ValueError, IndexError) as exc:
        raise StoreError(f"{path}: not a data-only pickle ({exc})") from None
    if isinstance(index, (list, tuple)):
        index = {name: row for row, name in enumerate(index)}
    if not isinstance(index, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) for k, v in index.items()
    ):
        raise StoreError(f"{path}: expected a dict of filename -> row number (or a list of filenames)")
    return index


def read_vocabulary(path) -> tuple[list[str], list[str]]:
    """mids and names from labels.csv (index,mid,name) or AudioSet's class_labels_indices.csv (display_name)."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or "mid" not in rows[0]:
        raise StoreError(f"{path}: expected a CSV with a 'mid' column (labels.csv or class_labels_indices.csv)")
    rows.sort(key=lambda r: int(r.get("index", 0) or 0))
    return [r["mid"] for r in rows], [r.get("name") or r.get("display_name") or r["mid"] for r in rows]


def _sha256(path) -> str:
    from pipeline.manifests.records import sha256_file

    return sha256_file(path)


def clip_id_of(filename: str) -> str:
    """Release file names ("audio/Y--abc_30.000.wav") to clip ids: the file name without folder or suffix."""
    return Path(str(filename)).stem


def _read_filenames(path) -> list[str]:
    path = Path(path)
    if path.suffix == ".parquet":
        try:
            import pandas as pd

            return [str(f) for f in pd.read_parquet(path)["filename"]]
        except ImportError as exc:
            raise StoreError(
                f"{path}: reading parquet needs pyarrow ({exc}); convert the index to CSV with a 'filename' column"
            ) from None
    with open(path, newline="", encoding="utf-8") as handle:
        sample = handle.read(4096)
        handle.seek(0)
        reader = csv.DictReader(handle, delimiter="\t" if "\t" in sample.splitlines()[0] else ",")
        if "filename" not in (reader.fieldnames or []):
            raise StoreError(f"{path}: expected a 'filename' column")
        return [row["filename"] for row in reader]


def _write(
    out,
    release: dict[str, np.ndarray],
    manifest_dir,
    teacher: str,
    activation: str,
    vocabulary: str,
    imported: dict,
    sample_rate: int,
) -> dict:
    """release: clip_id -> dense logits. Rows follow the manifest (or the release's order)."""
    mids, names = read_vocabulary(vocabulary)
    width = {len(v) for v in release.values()}
    if width != {len(mids)}:
        raise StoreError(f"the release has {sorted(width)} classes per row but {vocabulary} lists {len(mids)}")
    if manifest_dir:
        from pipeline.manifests.records import load_manifest, manifest_hashes

        manifest = load_manifest(manifest_dir)
        if manifest.mids != mids:
            raise StoreError(f"{vocabulary}: its classes differ from the manifest {manifest.name}'s")
        clips = [(c.clip_id, c.split, c.fold or 0, c.fingerprint) for c in manifest.clips]
        manifest_attrs = {"name": manifest.name, "sha256": manifest_hashes(manifest_dir)}
    else:
        clips = [(clip_id, "", 0, "") for clip_id in release]
        manifest_attrs = {"name": "imported", "sha256": dict(imported["files"])}  # the release files stand in
    checkpoint = "release-" + next(iter(imported["files"].values()))
    attrs = {
        "teacher": {"model": teacher, "checkpoint_sha256": checkpoint},
        "manifest": manifest_attrs,
        "front_end": {"sample_rate": int(sample_rate), "imported": imported["format"]},
        "imported": imported,
    }
    dtype = "float32" if max(float(np.nanmax(np.abs(v))) for v in release.values()) > 6e4 else "float16"
    create_store(
        out,
        clip_ids=[c[0] for c in clips],
        splits=[c[1] for c in clips],
        folds=[c[2] for c in clips],
        fingerprints=[c[3] for c in clips],
        vocabulary_mids=mids,
        vocabulary_names=names,
        activation=activation,
        attrs=attrs,
        dtype=dtype,
        topk=imported.get("topk", 0),
    )
    with StoreLock(out):
        for chunk, start, stop in chunk_plan(out):
            ids = [c[0] for c in clips[start:stop]]
            valid = np.array([clip_id in release and np.isfinite(release[clip_id]).all() for clip_id in ids])
            logits = np.stack([release[c] if ok else np.zeros(len(mids)) for c, ok in zip(ids, valid)])
            sha = write_chunk(out, chunk, logits, valid)
            mark_chunk_done(
                out,
                chunk,
                sha,
                [
                    (c, "not in the release" if c not in release else "non-finite values")
                    for c, ok in zip(ids, valid)
                    if not ok
                ],
            )
        return finalize_store(out, {"imported": imported["format"], "release_rows": len(release)})


def import_efficientat(
    logits_path,
    index_path,
    out,
    *,
    teacher: str,
    vocabulary: str,
    activation: str = "sigmoid",
    values: str = "logits",
    manifest_dir=None,
    sample_rate: int = 16000,
) -> dict:
    try:
        dense = np.load(logits_path, allow_pickle=False, mmap_mode="r")
    except ValueError as exc:
        raise StoreError(f"{logits_path}: not a plain .npy array ({exc})") from None
    if dense.ndim != 2:
        raise StoreError(f"{logits_path}: expected N x C, got shape {dense.shape}")
    index = load_index(index_path)
    bad = [name for name, row in index.items() if not 0 <= row < dense.shape[0]]
    if bad:
        raise StoreError(
            f"{index_path}: {len(bad)} rows outside the {dense.shape[0]} of {logits_path} "
            f"(first: {bad[:5]}): the index does not belong to these logits"
        )
    release = {}
    for name, row in index.items():
        clip_id = clip_id_of(name)
        if clip_id in release:
            raise StoreError(f"{index_path}: two files give the clip id {clip_id!r}")
        release[clip_id] = np.asarray(dense[row], dtype=np.float64)
    if values == "probs":
        release = {k: _logit(v, activation) for k, v in release.items()}
    imported = {
        "format": "efficientat",
        "values": values,
        "files": {Path(logits_path).name: _sha256(logits_path), Path(index_path).name: _sha256(index_path)},
    }
    return _write(out, release, manifest_dir, teacher, activation, vocabulary, imported, sample_rate)


def _logit(p: np.ndarray, activation: str) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-7, 1 - 1e-7)
    return np.log(p) - np.log1p(-p) if activation == "sigmoid" else np.log(p)


def import_ced(
    hdf5_paths: list,
    index_paths: list,
    out,
    *,
    teacher: str,
    vocabulary: str,
    activation: str = "sigmoid",
    manifest_dir=None,
    sample_rate: int = 16000,
) -> dict:
    import h5py

    if len(hdf5_paths) != len(index_paths):
        raise ValueError("give one index (--index) per HDF5 file (--hdf5), in the same order")
    num_classes = len(read_vocabulary(vocabulary)[0])
    release, files, k = {}, {}, None
    for hdf5_path, index_path in zip(hdf5_paths, index_paths):
        names = _read_filenames(index_path)
        with h5py.File(hdf5_path, "r") as handle:
            missing = [n for n in ("topk_values", "topk_indexes") if n not in handle]
            if missing:
                raise StoreError(f"{hdf5_path}: lacks {missing}; not a CED logits file")
            values = np.asarray(handle["topk_values"][...], dtype=np.float64)
            indices = np.asarray(handle["topk_indexes"][...], dtype=np.int64)
        if len(names) != len(values):
            raise StoreError(f"{index_path}: {len(names)} filenames for {len(values)} rows of {hdf5_path}")
        if indices.size and (indices.min() < 0 or indices.max() >= num_classes):
            raise StoreError(f"{hdf5_path}: class indices outside 0..{num_classes - 1}")
        k = values.shape[1]
        fill = values.min(axis=1) / (num_classes - k)  # CED's rule, in probability
        for name, row_values, row_indices, row_fill in zip(names, values, indices, fill):
            probabilities = np.full(num_classes, row_fill)
            probabilities[row_indices] = row_values
            release[clip_id_of(name)] = _logit(probabilities, activation)
        files[Path(hdf5_path).name] = _sha256(hdf5_path)
        files[Path(index_path).name] = _sha256(index_path)
    imported = {
        "format": "ced",
        "values": "probs",
        "fill": "min(top-k)/(C-k) in probability",
        "topk": int(k or 0),
        "seeds": "not replayable here (CED's own augmentation): imported as clip logits",
        "files": files,
    }
    return _write(out, release, manifest_dir, teacher, activation, vocabulary, imported, sample_rate)
