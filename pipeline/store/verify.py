"""Checking a store: `check_store` re-hashes everything and lists problems (`verify_store` returns them)."""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .encodings import decode_utf8, twin_problems
from .format import (
    ARRAY,
    CLASS_ARRAYS,
    SCORE_ARRAYS,
    Layout,
    StoreError,
    open_store,
    read_strings,
    strings_sha256,
    version_minor,
)
from .integrity import (
    checksum_names,
    compare_chunk,
    completion_problem,
    digest_problem,
    format_contradictions,
    iter_chunks,
    pin_problem,
    recorded_digest,
    uncovered_note,
)
from .location import is_local_dir
from .nodes import array_at, dimension_names
from .remote import RemoteReadError
from .writer import read_failures

REQUIRED_ATTR_PATHS = (
    "format",
    "version",
    "created",
    "activation",
    "teacher.checkpoint_sha256",
    "front_end",
    "manifest.sha256",
    "vocabulary.mids",
    "vocabulary.names",
    "vocabulary.sha256",
    "clips.sha256",
    "software.version",
    "software.git_commit",
    "views.count",
    "views.seed",
    "topk",
    "chunk_clips",
    "layout",
)


def _missing_attrs(attrs: dict) -> list[str]:
    missing: list[str] = []
    for dotted in REQUIRED_ATTR_PATHS:
        node: object = attrs
        for key in dotted.split("."):
            node = node.get(key) if isinstance(node, dict) else None
        if node is None:
            missing.append(dotted)
    return missing


def _schema_problems(group, layout: Layout, minor: int) -> list[str]:
    problems = []
    present = set(group.array_keys())
    for spec in layout.array_specs(minor):
        if spec.name not in present:
            problems.append(f"array {spec.name!r} is missing")
            continue
        array = array_at(group, spec.name)  # in array_keys(): an array
        dtype_ok = (np.dtype(array.dtype).kind in "OUT") if spec.dtype == "str" else array.dtype == np.dtype(spec.dtype)
        if not dtype_ok:
            problems.append(f"array {spec.name!r} has dtype {array.dtype}, expected {spec.dtype}")
        shape_ok = array.shape[1:] == spec.shape[1:] if spec.dims == ("failure",) else array.shape == spec.shape
        if not shape_ok:
            problems.append(f"array {spec.name!r} has shape {array.shape}, expected {spec.shape}")
        names = dimension_names(array)
        if names != spec.dims:
            problems.append(f"array {spec.name!r} has dimension names {names or None}, expected {spec.dims}")
    return problems


FLOAT16_LIMIT = float(np.finfo(np.float16).max)
LOGIT_SCORES = SCORE_ARRAYS  # every one holds scores (top-k fill values too)
VIEW_SCORES = (ARRAY.view_logits, ARRAY.view_topk_values)  # may be NaN as a whole view in a valid row


def _row_problems(named: dict[str, np.ndarray], chunk_index: int) -> list[str]:
    """Valid rows must be finite and failed rows NaN: masking is never silent filling.

    A view of a valid clip may be NaN as a whole (its mixup partner was unreadable), never in part.
    """
    valid = named[ARRAY.valid]
    problems = []
    for name in SCORE_ARRAYS:
        if name not in named:
            continue
        per_view = named[name].reshape(len(valid), -1, named[name].shape[-1])[valid]
        whole = np.isfinite(per_view).all(axis=-1) | ((name in VIEW_SCORES) & np.isnan(per_view).all(axis=-1))
        if not whole.all():
            problems.append(f"chunk {chunk_index}: {name} has non-finite values in valid rows")
        finite = per_view[np.isfinite(per_view)]
        if name in LOGIT_SCORES and finite.size and np.abs(finite).max() >= FLOAT16_LIMIT:
            problems.append(
                f"chunk {chunk_index}: {name} has values at float16's limit ({FLOAT16_LIMIT:g}) in valid "
                "rows: the teacher overflowed, these are no logits"
            )
        if not np.isnan(named[name][~valid]).all():
            problems.append(f"chunk {chunk_index}: {name} has numbers in failed rows (expected NaN)")
    return problems


@dataclass
class Verification:
    """What `check_store` found: problems (empty = intact and complete), the digest, and the work done."""

    location: str
    problems: list[str] = field(default_factory=list)
    digest: str = ""
    recorded_digest: str | None = None
    notes: list[str] = field(default_factory=list)  # what the checks could not cover (old formats)
    chunks_checked: int = 0
    bytes_checked: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems


def _attr_problems(group, layout: Layout, attrs: dict) -> list[str]:
    problems = []
    mids = attrs["vocabulary"]["mids"]
    if strings_sha256(mids) != attrs["vocabulary"]["sha256"] or len(mids) != layout.num_classes:
        problems.append("vocabulary: mids do not match vocabulary.sha256 or the class count")
    try:
        if strings_sha256(read_strings(array_at(group, ARRAY.clip_id))) != attrs["clips"]["sha256"]:
            problems.append("clip_id: the stored ids do not match clips.sha256")
    except RemoteReadError:
        raise
    except Exception as exc:  # reported per chunk below as well
        problems.append(f"clip_id does not decode ({type(exc).__name__})")
    if version_minor(attrs) >= 3:
        problems += _class_problems(group, layout, attrs)
    return problems


def _class_problems(group, layout: Layout, attrs: dict) -> list[str]:
    """1.3: the vocabulary arrays other readers use must say what attrs.vocabulary says."""
    if not layout.text_bytes:
        return ["format 1.3 but layout.text_bytes is missing (the uint8 copies cannot be checked)"]
    try:
        stored = {name: np.asarray(array_at(group, name)[...]) for name in CLASS_ARRAYS}
    except RemoteReadError:
        raise
    except Exception as exc:
        return [f"vocabulary arrays do not decode ({type(exc).__name__}: {str(exc)[:120]})"]
    vocabulary = attrs["vocabulary"]
    # (array, its uint8 twin) -> what attrs say they hold
    expected = {
        (ARRAY.class_, ARRAY.class_utf8): vocabulary["mids"],
        (ARRAY.class_name, ARRAY.class_name_utf8): vocabulary["names"],
    }
    problems = []
    for (name, twin), values in expected.items():
        for array_name, decoded in ((name, stored[name]), (twin, decode_utf8(stored[twin]))):
            if [str(v) for v in decoded] != [str(v) for v in values]:
                problems.append(f"array {array_name!r} differs from attrs.vocabulary")
    return problems


def check_store(path: str | os.PathLike, expected_digest: str | None = None) -> Verification:
    """Re-hash every chunk (never raising on undecodable bytes), check attrs, completion and the digest."""
    started = time.perf_counter()
    result = Verification(str(path))
    try:
        group, layout = open_store(path)
    except RemoteReadError:
        raise  # a transport failure says nothing about the store: one error line, not a failed check
    except StoreError as exc:
        result.problems.append(str(exc))
        return result
    attrs = group.attrs.asdict()
    result.recorded_digest = recorded_digest(attrs)
    problems = [f"attrs lack {key!r}" for key in _missing_attrs(attrs)]
    problems += _schema_problems(group, layout, version_minor(attrs))
    if problems:
        result.problems = problems
        return result
    problems += _attr_problems(group, layout, attrs)
    problems += format_contradictions(group, layout, attrs)
    note = uncovered_note(attrs)
    result.notes = [note] if note else []
    try:
        result.digest, problem = digest_problem(group, attrs)
        done = np.asarray(array_at(group, ARRAY.chunk_done)[:])
        checksums = read_strings(array_at(group, ARRAY.chunk_sha256))
        failure_counts = np.asarray(array_at(group, ARRAY.chunk_failures)[:])
        per_chunk = Counter(chunk for _, _, chunk in read_failures(group))
    except RemoteReadError:
        raise
    except Exception as exc:
        result.problems = problems + [f"bookkeeping arrays do not decode ({type(exc).__name__}: {str(exc)[:120]})"]
        return result
    problems += [problem] if problem else []
    names = checksum_names(layout, attrs)
    handles = {name: array_at(group, name) for name in {*names, ARRAY.clip_id}}  # opening an array reads its metadata
    for chunk_index, arrays in iter_chunks(handles, layout, names, np.flatnonzero(done)):
        check = compare_chunk(chunk_index, arrays, checksums[chunk_index])
        result.chunks_checked += 1
        result.bytes_checked += sum(a.nbytes for a in check.arrays.values() if a.dtype.kind not in "OUT")
        if check.problem:
            problems.append(check.message(path, handles, layout).removeprefix(f"{path}: "))
            continue
        problems += _row_problems(check.arrays, chunk_index)
        problems += twin_problems(check.arrays, f"chunk {chunk_index}")
        if per_chunk[chunk_index] != failure_counts[chunk_index]:
            problems.append(
                f"chunk {chunk_index}: {failure_counts[chunk_index]} failures counted but "
                f"{per_chunk[chunk_index]} in the failure table"
            )
    unfinished = completion_problem(group, attrs, layout)
    if unfinished:
        problems.append(unfinished)
    if is_local_dir(path):
        leftovers = sorted(str(p.relative_to(path)) for p in Path(path).rglob("*.partial"))
        if leftovers:
            problems.append(
                f"{len(leftovers)} partial files left by interrupted writes (safe to delete): {leftovers[:5]}"
            )
    pinned = pin_problem(result.digest, expected_digest)
    if pinned:
        problems.append(pinned)
    result.problems = problems
    result.seconds = time.perf_counter() - started
    return result


def verify_store(path: str | os.PathLike, expected_digest: str | None = None) -> list[str]:
    """Every problem found, as readable lines; an empty list means the store is complete and intact."""
    return check_store(path, expected_digest).problems
