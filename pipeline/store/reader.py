"""Reading a store for stage two: one load into memory, then lookups by clip_id and row.

float16 logits stay float16 in memory (half the RAM; AudioSet-2M dense is ~2.1 GB a view) and are
widened to float32 only for the rows a batch asks for. Compact (top-k) stores stay compact and are
rebuilt per batch with the documented rule.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np

from pipeline.augment import View

from .format import Layout, dump_json, open_store, read_strings
from .topk import rebuild_dense
from .views import arrays_to_view

VIEW_PARAM_ARRAYS = ("view_lambda", "view_time_shift", "view_freq_masks", "view_time_masks")


class _PartnerLookup:
    """[row, k] -> partner clip_id, from int32 codes into one list of names (not a string per cell)."""

    def __init__(self, codes: np.ndarray, names: list[str]):
        self.codes, self.names = codes, names

    def __getitem__(self, key) -> str:
        return self.names[int(self.codes[key])]


class LogitTable:
    """A store's logits in memory. Build with :meth:`open`; rows index the loaded clips only."""

    def __init__(self, path: Path, attrs: dict, layout: Layout, clip_ids: list[str], arrays: dict[str, np.ndarray],
                 partner_names: list[str], complete: bool):
        self.path = path
        self.attrs = attrs
        self.layout = layout
        self.clip_ids = clip_ids
        self.index = {clip_id: row for row, clip_id in enumerate(clip_ids)}
        self.complete = complete
        self._arrays = arrays
        self._partner_names = partner_names
        self._shared: dict[str, str] = {}

    @classmethod
    def open(cls, path: str | os.PathLike, clip_ids=None, load_views: bool = True) -> "LogitTable":
        """Load the store (or only the rows of `clip_ids`; unknown ids are simply absent)."""
        group, layout = open_store(path)
        attrs = group.attrs.asdict()
        all_ids = read_strings(group["clip_id"])
        if clip_ids is None:
            rows = None
        else:
            position = {clip_id: row for row, clip_id in enumerate(all_ids)}
            rows = np.array(sorted({position[c] for c in clip_ids if c in position}), dtype=np.int64)

        def load(name: str) -> np.ndarray:
            array = group[name]
            if rows is None:
                return np.asarray(array[...])
            if len(rows) == 0:
                return np.empty((0, *array.shape[1:]), dtype=array.dtype)
            return np.asarray(array.get_orthogonal_selection((rows,) + (slice(None),) * (array.ndim - 1)))

        names = ["valid", "teacher_index"]
        names += ["topk_values", "topk_indices", "topk_fill"] if layout.topk else ["logits"]
        partner_names: list[str] = []
        with_views = bool(load_views and layout.views)
        if with_views:
            names += (["view_topk_values", "view_topk_indices", "view_topk_fill"] if layout.topk
                      else ["view_logits"])
            names += list(VIEW_PARAM_ARRAYS)
        arrays = {name: load(name) for name in names}
        if with_views:
            partners = load("view_partner")
            unique, codes = np.unique(partners, return_inverse=True)
            partner_names = [str(p) for p in unique]
            arrays["view_partner_code"] = codes.reshape(partners.shape).astype(np.int32)
        loaded_ids = all_ids if rows is None else [all_ids[row] for row in rows]
        complete = bool(np.asarray(group["chunk_done"][:]).all())
        return cls(Path(path), attrs, layout, loaded_ids, arrays, partner_names, complete)

    # -- lookups -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.clip_ids)

    def rows(self, clip_ids) -> np.ndarray:
        """Row of each clip_id in this table, -1 where the store (or the loaded subset) lacks it."""
        return np.array([self.index.get(clip_id, -1) for clip_id in clip_ids], dtype=np.int64)

    @property
    def valid(self) -> np.ndarray:
        return self._arrays["valid"]

    @property
    def teacher_index(self) -> np.ndarray:
        return self._arrays["teacher_index"]

    def usable(self, rows) -> np.ndarray:
        """True where a row exists and holds real logits (not missing, not a failed clip)."""
        rows = np.asarray(rows, dtype=np.int64)
        return (rows >= 0) & self.valid[np.maximum(rows, 0)]

    def valid_rows(self, rows) -> np.ndarray:
        """Same as :meth:`usable`: the name stage two's join uses."""
        return self.usable(rows)

    def _dense(self, prefix: str, rows: np.ndarray, ks: np.ndarray | None) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        if not self.clip_ids:  # a subset that matched no clip: every row is missing
            return np.full((len(rows), self.layout.num_classes), np.nan, dtype=np.float32)
        safe = np.maximum(rows, 0)
        pick = (safe,) if ks is None else (safe, np.asarray(ks, dtype=np.int64))
        if self.layout.topk:
            out = rebuild_dense(self._arrays[f"{prefix}topk_values"][pick], self._arrays[f"{prefix}topk_indices"][pick],
                                self._arrays[f"{prefix}topk_fill"][pick], self.layout.num_classes)
        else:
            out = self._arrays[f"{prefix}logits"][pick].astype(np.float32)
        out[rows < 0] = np.nan
        return out

    def logits_for(self, rows) -> np.ndarray:
        """float32 [len(rows), C] clean-clip logits; NaN rows for missing (-1) or failed clips."""
        return self._dense("", rows, None)

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
        return self._dense("view_", rows, ks)

    def view_for(self, row: int, k: int) -> View:
        """The exact View (mixup partner, lambda, shift, masks) the teacher saw for view k of row."""
        self._require_views()
        arrays = {name: self._arrays[name] for name in VIEW_PARAM_ARRAYS}
        arrays["view_partner"] = _PartnerLookup(self._arrays["view_partner_code"], self._partner_names)
        return arrays_to_view(arrays, row, k, seed=self.view_seed)

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
    def share(self, cache_dir: str | os.PathLike | None = None) -> "LogitTable":
        """Move the arrays to .npy files and memory-map them; returns self.

        Spawned DataLoader workers unpickle a shared table by reopening the same files with
        mmap_mode="r", so every worker reads the same page-cache pages instead of holding a private
        copy. The file names hash the store's checksums, so a rewritten store gets new files.
        """
        if self._shared:
            return self
        group, _ = open_store(self.path)
        key = hashlib.sha256(dump_json({
            "store": str(self.path.resolve()), "checksums": read_strings(group["chunk_sha256"]),
            "done": np.asarray(group["chunk_done"][:]).tolist(),
            "clips": hashlib.sha256("\n".join(self.clip_ids).encode()).hexdigest(),
            "arrays": sorted(self._arrays)}).encode()).hexdigest()[:24]
        folder = Path(cache_dir or Path(tempfile.gettempdir()) / "cmkd-logit-cache") / key
        folder.mkdir(parents=True, exist_ok=True)
        for name, array in self._arrays.items():
            target = folder / f"{name}.npy"
            if not target.exists():
                draft = folder / f"{name}.{os.getpid()}.tmp.npy"
                np.save(draft, np.ascontiguousarray(array), allow_pickle=False)
                os.replace(draft, target)  # concurrent sharers race harmlessly: same bytes
            self._shared[name] = str(target)
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
            self._arrays = {name: np.load(path, mmap_mode="r", allow_pickle=False) for name, path in self._shared.items()}
