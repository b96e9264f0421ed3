"""Views as store arrays: a [clip, view] grid of View records packed into plain columns and back.

The packing is exact: `arrays_to_view(views_to_arrays(v), row, k, seed=s) == v[row][k]`. Two
details make that hold. An unused mask slot is marked by start = -1 (not width 0), because
draw_view can draw a zero-width mask and View equality must still hold after the round trip.
lambda is stored as float32 and read back rounded to 6 decimals, which is how draw_view rounds it;
a lambda that would not survive that is refused at packing time rather than changed silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np

from pipeline.views import MAX_MASKS, View

from .format import ARRAY

UNUSED_SLOT = (-1, -1)
LAMBDA_DECIMALS = 6


def _lambda_survives(lam: float) -> bool:
    return round(float(np.float32(lam)), LAMBDA_DECIMALS) == lam


def _pack_masks(masks: tuple[tuple[int, int], ...], max_masks: int, where: str) -> np.ndarray:
    if len(masks) > max_masks:
        raise ValueError(f"{where}: {len(masks)} masks but the store keeps at most {max_masks} per axis")
    packed = np.full((max_masks, 2), UNUSED_SLOT, dtype=np.int32)
    for slot, (start, width) in enumerate(masks):
        if start < 0 or width < 0:
            raise ValueError(f"{where}: mask ({start}, {width}) has a negative start or width")
        packed[slot] = (start, width)
    return packed


def views_to_arrays(views: list[list[View]], max_masks: int = MAX_MASKS) -> dict[str, np.ndarray]:
    """Pack views[row][k] (every row the same number of views, view_index == k) into store columns."""
    n_rows = len(views)
    n_views = len(views[0]) if n_rows else 0
    arrays = {
        ARRAY.view_partner: np.full((n_rows, n_views), "", dtype=object),
        ARRAY.view_lambda: np.ones((n_rows, n_views), dtype=np.float32),
        ARRAY.view_time_shift: np.zeros((n_rows, n_views), dtype=np.int32),
        ARRAY.view_freq_masks: np.full((n_rows, n_views, max_masks, 2), -1, dtype=np.int32),
        ARRAY.view_time_masks: np.full((n_rows, n_views, max_masks, 2), -1, dtype=np.int32),
    }
    for row, row_views in enumerate(views):
        if len(row_views) != n_views:
            raise ValueError(f"row {row}: {len(row_views)} views, expected {n_views} like row 0")
        for k, view in enumerate(row_views):
            where = f"row {row} view {k}"
            if view.view_index != k:
                raise ValueError(f"{where}: view_index is {view.view_index}; views must be listed in order")
            if not _lambda_survives(view.lam):
                raise ValueError(
                    f"{where}: lambda {view.lam!r} has more than {LAMBDA_DECIMALS} decimals "
                    "and would not round-trip through float32"
                )
            arrays[ARRAY.view_partner][row, k] = view.partner
            arrays[ARRAY.view_lambda][row, k] = view.lam
            arrays[ARRAY.view_time_shift][row, k] = view.time_shift
            arrays[ARRAY.view_freq_masks][row, k] = _pack_masks(view.freq_masks, max_masks, where)
            arrays[ARRAY.view_time_masks][row, k] = _pack_masks(view.time_masks, max_masks, where)
    return arrays


def _unpack_masks(packed: np.ndarray) -> tuple[tuple[int, int], ...]:
    return tuple((int(start), int(width)) for start, width in packed if start >= 0)


class ViewCells(Protocol):
    """A [clip, view] grid read one cell at a time: a packed array, or the reader's partner lookup."""

    def __getitem__(self, key: tuple[int, int], /) -> Any: ...


def arrays_to_view(arrays: Mapping[str, ViewCells], row: int, k: int, seed: int = 0) -> View:
    """The View at [row, k] of packed arrays; `seed` is the store's view_seed (attrs views.seed)."""
    return View(
        seed=int(seed),
        view_index=int(k),
        partner=str(arrays[ARRAY.view_partner][row, k]),
        lam=round(float(arrays[ARRAY.view_lambda][row, k]), LAMBDA_DECIMALS),
        time_shift=int(arrays[ARRAY.view_time_shift][row, k]),
        freq_masks=_unpack_masks(arrays[ARRAY.view_freq_masks][row, k]),
        time_masks=_unpack_masks(arrays[ARRAY.view_time_masks][row, k]),
    )


def check_view_arrays(arrays: dict[str, np.ndarray], n_rows: int, n_views: int, max_masks: int) -> None:
    """Refuse packed views whose names or shapes do not fit a chunk of the store."""
    expected = {
        ARRAY.view_partner: (n_rows, n_views),
        ARRAY.view_lambda: (n_rows, n_views),
        ARRAY.view_time_shift: (n_rows, n_views),
        ARRAY.view_freq_masks: (n_rows, n_views, max_masks, 2),
        ARRAY.view_time_masks: (n_rows, n_views, max_masks, 2),
    }
    missing = sorted(set(expected) - set(arrays))
    if missing:
        raise ValueError(f"view_arrays lacks {missing}; build it with views_to_arrays")
    for name, shape in expected.items():
        if np.shape(arrays[name]) != shape:
            raise ValueError(f"view_arrays[{name!r}] has shape {np.shape(arrays[name])}, expected {shape}")
