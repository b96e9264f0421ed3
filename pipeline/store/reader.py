"""Reading a store for stage two: one load into memory, then lookups by clip_id and row.

float16 logits stay float16 in memory (half the RAM; AudioSet-2M dense is ~2.1 GB a view) and are
widened to float32 only for the rows a batch asks for. Compact (top-k) stores stay compact and are
rebuilt per batch with the documented rule.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import numpy as np

from pipeline.views import View

from .cache import share_arrays
from .format import ARRAY, VIEW_PARAM_ARRAYS, Layout, StoreError, dump_json, open_store, read_strings, strings_sha256
from .integrity import (
    checksum_names,
    compare_chunk,
    completion_problem,
    digest_problem,
    format_contradictions,
    iter_chunks,
    pin_problem,
    pinned_digests,
    store_digest,
)
from .location import identity, is_local_dir
from .nodes import array_at
from .topk import rebuild_dense
from .views import ViewCells, arrays_to_view

OPT_OUT = "verify=false skips this check, at your risk"
# what a clean-clip or a view lookup reads: (top-k values, indices, fill) in a top-k store, else the dense array
CLEAN_LOGITS = ((ARRAY.topk_values, ARRAY.topk_indices, ARRAY.topk_fill), ARRAY.logits)
VIEW_LOGITS = ((ARRAY.view_topk_values, ARRAY.view_topk_indices, ARRAY.view_topk_fill), ARRAY.view_logits)
_VERIFIED_CHUNKS: set[tuple[str, str, int]] = set()  # (store, digest, chunk) hashed in this process


def _check_store_level(group, layout: Layout, attrs: dict, path) -> str:
    """Refuse an unfinished store or one edited after completion; returns the store digest."""
    problem = completion_problem(group, attrs, layout)
    if not problem:
        digest, problem = digest_problem(group, attrs)
    if not problem and strings_sha256(attrs["vocabulary"]["mids"]) != attrs["vocabulary"]["sha256"]:
        problem = "vocabulary mids do not match vocabulary.sha256"
    if not problem:
        problem = "; ".join(format_contradictions(group, layout, attrs))
    if problem:
        raise StoreError(f"{path}: {problem} ({OPT_OUT})")
    return digest


def _load_rows(
    group, layout: Layout, attrs: dict, names: list[str], rows: np.ndarray | None, path, digest: str | None
) -> dict[str, np.ndarray]:
    """Rows of `names` (all rows when rows is None), chunk by chunk; with a digest every chunk read is
    re-hashed against its recorded checksum first (once per process and store)."""
    n_rows = layout.n_clips if rows is None else len(rows)
    out: dict[str, np.ndarray] = {}
    if n_rows == 0:
        empty = {name: array_at(group, name) for name in names}
        return {name: np.empty((0, *array.shape[1:]), dtype=array.dtype) for name, array in empty.items()}
    chunks = range(layout.n_chunks) if rows is None else np.unique(rows // layout.chunk_clips).tolist()
    recorded = read_strings(array_at(group, ARRAY.chunk_sha256)) if digest is not None else []
    covered = checksum_names(layout, attrs)
    opened = {name: array_at(group, name) for name in {*covered, *names, ARRAY.clip_id}}  # open each array once
    key = identity(path)
    todo = set() if digest is None else {c for c in chunks if (key, digest, c) not in _VERIFIED_CHUNKS}
    for chunk, arrays in iter_chunks(opened, layout, covered if todo else names, chunks):
        start, stop = layout.chunk_bounds(chunk)
        if chunk in todo:
            assert digest is not None  # todo is empty without a digest
            check = compare_chunk(chunk, arrays, recorded[chunk])
            if check.problem:  # a chunk that did not decode (arrays is its reason) is a problem too
                raise StoreError(f"{check.message(path, opened, layout)}; re-download or rebuild the store ({OPT_OUT})")
            _VERIFIED_CHUNKS.add((key, digest, chunk))
        if isinstance(arrays, str):  # only reached for a chunk that was not hashed (see above)
            raise StoreError(f"{path}: chunk {chunk}: {arrays}")
        pieces = {name: arrays[name] for name in names}
        take: slice | np.ndarray
        if rows is None:
            into, take = slice(start, stop), slice(None)
        else:
            lo, hi = np.searchsorted(rows, [start, stop])
            into, take = slice(lo, hi), rows[lo:hi] - start
        for name, piece in pieces.items():
            if name not in out:
                out[name] = np.empty((n_rows, *piece.shape[1:]), dtype=piece.dtype)
            out[name][into] = piece[take]
    return out


def _unusable(values: np.ndarray) -> np.ndarray:
    """Per row: not every value finite, or some value at float16's saturation limit."""
    finite = np.isfinite(values)
    return ~finite.all(axis=-1) | (np.where(finite, np.abs(values), 0) >= FLOAT16_LIMIT).any(axis=-1)


FLOAT16_LIMIT = float(np.finfo(np.float16).max)


class _PartnerLookup:
    """[row, k] -> partner clip_id, from int32 codes into one list of names (not a string per cell)."""

    def __init__(self, codes: np.ndarray, names: list[str]):
        self.codes, self.names = codes, names

    def __getitem__(self, key) -> str:
        return self.names[int(self.codes[key])]


class LogitTable:
    """A store's logits in memory. Build with :meth:`open`; rows index the loaded clips only."""

    def __init__(
        self,
        path: str | os.PathLike,  # a local folder as a Path, else the URL or zip file as given
        attrs: dict,
        layout: Layout,
        clip_ids: list[str],
        arrays: dict[str, np.ndarray],
        partner_names: list[str],
        complete: bool,
    ):
        self.path = path
        self.attrs = attrs
        self.layout = layout
        self.clip_ids = clip_ids
        self.index = {clip_id: row for row, clip_id in enumerate(clip_ids)}
        self.complete = complete
        self._arrays = arrays
        self._partner_names = partner_names
        self._shared: dict[str, str] = {}
        self.digest = ""  # the store digest; checked against the recorded one when verified
        self.verified = False
        self.pinned = False  # the digest was checked against one the user gave (DIGEST=)
        self.fingerprints: list[str] = []  # audio fingerprint per loaded row ("" unknown; none in 1.0 stores)

    @classmethod
    def open(
        cls,
        path: str | os.PathLike,
        clip_ids=None,
        load_views: bool = True,
        verify: bool = True,
        expected_digest: str | None = None,
    ) -> LogitTable:
        """Load the store (or only the rows of `clip_ids`; unknown ids are simply absent).

        verify=True (the default) refuses an unfinished store and a store whose digest differs from
        the one recorded at completion, and re-hashes every chunk it reads (once per process); the
        error names the store, the chunk and its clips. verify=False reads as is, with a warning.
        ``expected_digest`` (a published digest, comma-separated for several) pins the store: its
        digest must be one of them, and every chunk read must hash to the checksums that digest
        covers, so the rows loaded are the published rows (this implies verify=True).
        """
        pinned_digests(expected_digest)  # a malformed pin is refused before anything is read
        verify = verify or bool(expected_digest)
        group, layout = open_store(path)
        attrs = group.attrs.asdict()
        if verify:
            digest = _check_store_level(group, layout, attrs, path)
            pinned = pin_problem(digest, expected_digest)
            if pinned:
                raise StoreError(f"{path}: {pinned}")
        else:
            digest = store_digest(group, attrs)
            print(
                f"warning: {path}: verify=false: reading without checking chunk checksums or completion; "
                "corrupted or unfinished rows would train the student",
                file=sys.stderr,
            )
        all_ids = read_strings(array_at(group, ARRAY.clip_id))
        if clip_ids is None:
            rows = None
        else:
            position = {clip_id: row for row, clip_id in enumerate(all_ids)}
            rows = np.array(sorted({position[c] for c in clip_ids if c in position}), dtype=np.int64)
        names = [ARRAY.valid, ARRAY.teacher_index]
        names += list(CLEAN_LOGITS[0]) if layout.topk else [CLEAN_LOGITS[1]]
        with_views = bool(load_views and layout.views)
        if with_views:
            names += list(VIEW_LOGITS[0]) if layout.topk else [VIEW_LOGITS[1]]
            names += [*VIEW_PARAM_ARRAYS, ARRAY.view_partner]
        arrays = _load_rows(group, layout, attrs, names, rows, path, digest if verify else None)
        partner_names: list[str] = []
        if with_views:
            partners = arrays.pop(ARRAY.view_partner)
            unique, codes = np.unique(partners, return_inverse=True)
            partner_names = [str(p) for p in unique]
            arrays["view_partner_code"] = codes.reshape(partners.shape).astype(np.int32)
        loaded_ids = all_ids if rows is None else [all_ids[row] for row in rows]
        complete = bool(np.asarray(array_at(group, ARRAY.chunk_done)[:]).all())
        table = cls(
            Path(path) if is_local_dir(path) else path, attrs, layout, loaded_ids, arrays, partner_names, complete
        )
        table.digest, table.verified, table.pinned = digest, verify, bool(expected_digest)
        if ARRAY.fingerprint in group:
            stored = read_strings(array_at(group, ARRAY.fingerprint))
            table.fingerprints = stored if rows is None else [stored[row] for row in rows]
        return table

    # -- lookups -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.clip_ids)

    def rows(self, clip_ids) -> np.ndarray:
        """Row of each clip_id in this table, -1 where the store (or the loaded subset) lacks it."""
        return np.array([self.index.get(clip_id, -1) for clip_id in clip_ids], dtype=np.int64)

    @property
    def valid(self) -> np.ndarray:
        return self._arrays[ARRAY.valid]

    @property
    def teacher_index(self) -> np.ndarray:
        return self._arrays[ARRAY.teacher_index]

    def usable(self, rows) -> np.ndarray:
        """True where a row exists and holds real logits (not missing, not a failed clip)."""
        rows = np.asarray(rows, dtype=np.int64)
        return (rows >= 0) & self.valid[np.maximum(rows, 0)]

    def valid_rows(self, rows) -> np.ndarray:
        """Same as :meth:`usable`: the name stage two's join uses."""
        return self.usable(rows)

    def _dense(self, which: tuple[tuple[str, str, str], str], rows: np.ndarray, ks: np.ndarray | None) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        if not self.clip_ids:  # a subset that matched no clip: every row is missing
            return np.full((len(rows), self.layout.num_classes), np.nan, dtype=np.float32)
        safe = np.maximum(rows, 0)
        pick = (safe,) if ks is None else (safe, np.asarray(ks, dtype=np.int64))
        (values, indices, fill), dense = which
        if self.layout.topk:
            out = rebuild_dense(
                self._arrays[values][pick],
                self._arrays[indices][pick],
                self._arrays[fill][pick],
                self.layout.num_classes,
            )
        else:
            out = self._arrays[dense][pick].astype(np.float32)
        out[rows < 0] = np.nan
        return out

    def logits_for(self, rows) -> np.ndarray:
        """float32 [len(rows), C] clean-clip logits; NaN rows for missing (-1) or failed clips."""
        return self._dense(CLEAN_LOGITS, rows, None)

    def bad_values(self, rows, block: int = 1 << 16) -> np.ndarray:
        """True where a row marked valid holds logits no teacher gives: NaN/inf, or values at float16's
        limit (65504, what an overflowing teacher saturates to): verify's row check, per row, in blocks
        so a large store is never widened to float32 whole. Views count too, when loaded: a view is
        NaN as a whole (its mixup partner was unreadable) or finite."""
        rows = np.asarray(rows, dtype=np.int64)
        bad = np.zeros(len(rows), dtype=bool)
        views = self.layout.views if "view_partner_code" in self._arrays else 0
        for lo in range(0, len(rows), block):
            part = rows[lo : lo + block]
            bad[lo : lo + block] = _unusable(self.logits_for(part))
            for k in range(views):
                values = self.view_logits_for(part, np.full(len(part), k))
                whole_nan = np.isnan(values).all(axis=-1)
                bad[lo : lo + block] |= _unusable(values) & ~whole_nan
        return bad & self.usable(rows)

    def _require_views(self) -> None:
        if self.layout.views == 0:
            raise ValueError(f"{self.path} has no views (created with views=0)")
        if "view_partner_code" not in self._arrays:
            raise ValueError(f"{self.path}: views were not loaded; open with load_views=True")

    def view_logits_for(self, rows, ks) -> np.ndarray:
        """float32 [len(rows), C]: the logits of view ks[i] of row rows[i]."""
        self._require_views()
        ks = np.asarray(ks, dtype=np.int64)
        if ks.size and (ks.min() < 0 or ks.max() >= self.layout.views):
            raise ValueError(f"view indices must be in 0..{self.layout.views - 1}")
        return self._dense(VIEW_LOGITS, rows, ks)

    def view_for(self, row: int, k: int) -> View:
        """The exact View (mixup partner, lambda, shift, masks) the teacher saw for view k of row."""
        self._require_views()
        arrays: dict[str, ViewCells] = {name: self._arrays[name] for name in VIEW_PARAM_ARRAYS}
        arrays[ARRAY.view_partner] = _PartnerLookup(self._arrays["view_partner_code"], self._partner_names)
        return arrays_to_view(arrays, row, k, seed=self.view_seed)

    @property
    def partner_names(self) -> list[str]:
        """The distinct mixup-partner clip ids of the loaded views ("" = no mixup)."""
        self._require_views()
        return list(self._partner_names)

    def partner_codes(self, rows) -> np.ndarray:
        """[len(rows), K] index into :attr:`partner_names` of each view's partner."""
        self._require_views()
        return np.asarray(self._arrays["view_partner_code"][np.asarray(rows, dtype=np.int64)])

    def rejoin(self, index: dict[str, int], partner_alias: dict[str, str] | None = None) -> LogitTable:
        """Look clips up by another lab's names: `index` maps their clip ids to rows of this table, and
        replayed views name partners by `partner_alias` (store id -> their id). Returns self."""
        self.index = dict(index)
        if partner_alias:
            self._partner_names = [partner_alias.get(name, name) for name in self._partner_names]
        return self

    # -- attrs -----------------------------------------------------------------------------------
    @property
    def vocabulary_mids(self) -> list[str]:
        return list(self.attrs["vocabulary"]["mids"])

    @property
    def vocabulary_names(self) -> list[str]:
        return list(self.attrs["vocabulary"]["names"])

    @property
    def num_classes(self) -> int:
        return self.layout.num_classes

    @property
    def activation(self) -> str:
        return self.attrs["activation"]

    @property
    def front_end(self) -> dict:
        return self.attrs["front_end"]

    @property
    def num_views(self) -> int:
        return self.layout.views

    @property
    def view_seed(self) -> int:
        return int(self.attrs["views"]["seed"])

    @property
    def teacher(self) -> dict:
        return self.attrs["teacher"]

    @property
    def cross_fitted(self) -> bool:
        """True when several teachers produced the rows (one checkpoint sha256 per teacher)."""
        shas = self.attrs["teacher"]["checkpoint_sha256"]
        return isinstance(shas, list) and len(shas) > 1

    # -- sharing with DataLoader workers -----------------------------------------------------------
    def share(self, cache_dir: str | os.PathLike | None = None) -> LogitTable:
        """Move the arrays to .npy files and memory-map them; returns self.

        Spawned DataLoader workers unpickle a shared table by reopening the same files with
        mmap_mode="r", so every worker reads the same page-cache pages instead of holding a private
        copy. The cache (:mod:`pipeline.store.cache`) is keyed by the store digest and re-checks the
        hash of every file it reuses against the arrays just read.
        """
        if self._shared:
            return self
        key = hashlib.sha256(
            dump_json(
                {
                    "digest": self.digest,
                    "verified": self.verified,
                    "arrays": sorted(self._arrays),
                    "clips": hashlib.sha256("\n".join(self.clip_ids).encode()).hexdigest(),
                }
            ).encode()
        ).hexdigest()[:32]
        self._shared = share_arrays(self._arrays, key, cache_dir)
        self._arrays = {name: np.load(path, mmap_mode="r", allow_pickle=False) for name, path in self._shared.items()}
        return self

    @property
    def shared(self) -> bool:
        return bool(self._shared)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        if self._shared:
            state["_arrays"] = {}  # reopened from the files in __setstate__
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if self._shared:
            self._arrays = {
                name: np.load(path, mmap_mode="r", allow_pickle=False) for name, path in self._shared.items()
            }
