"""Prediction tables: one row per file (and, with FRAMES=1, one per window in ``<OUT stem>.windows<ext>``),
written as CSV, Parquet or JSON by OUT's extension.

CSV and Parquet rows are flat: ``id``, ``path`` (always strings), then ``duration_s`` and
``windows`` (clip rows) or ``window``, ``start_s``, ``end_s`` (window rows), then the top-k labels as
``top1_mid``, ``top1_name``, ``top1_score``, ... and one ``score:<mid>`` column per class in vocabulary
order. JSON rows nest the same content: ``"top": [{"mid", "name", "score"}, ...]`` and
``"scores": {mid: score}``. CSV rows are written as each file finishes (a stopped run keeps what it
had finished in ``OUT.partial``); Parquet and JSON are written at the end. Every table is written
under a temporary name and renamed, so OUT is never half written.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".json": "json"}
CLIP_FIELDS = ("id", "path", "duration_s", "windows")
WINDOW_FIELDS = ("id", "path", "window", "start_s", "end_s")


def output_format(out: str | Path) -> str:
    suffix = Path(out).suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"OUT={out}: the extension picks the format: {', '.join(sorted(FORMATS))}")
    fmt = FORMATS[suffix]
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ValueError(
                f"OUT={out}: Parquet needs pyarrow, which is not installed "
                f"(pip install 'cmkd-pipeline[parquet]'), or write .csv / .json"
            ) from None
    return fmt


def windows_path(out: str | Path) -> Path:
    """Where FRAMES=1 puts the window rows: tags.csv -> tags.windows.csv."""
    out = Path(out)
    return out.with_name(f"{out.stem}.windows{out.suffix}")


class TableWriter:
    def __init__(self, out: str | Path, fields: tuple[str, ...], mids: list[str], topk: int):
        self.out = Path(out)
        self.format = output_format(out)
        self.fields, self.mids = fields, mids
        self.topk = min(topk, len(mids))
        self.partial = self.out.with_name(self.out.name + ".partial")
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.rows: list[dict] = []
        self.count = 0
        self._file: TextIO | None = None  # the open CSV file (format csv only)
        if self.format == "csv":
            self._file = open(self.partial, "w", newline="", encoding="utf-8")
            self._csv = csv.writer(self._file)
            self._csv.writerow(self.columns())

    def columns(self) -> list[str]:
        top = [f"top{rank}_{part}" for rank in range(1, self.topk + 1) for part in ("mid", "name", "score")]
        return [*self.fields, *top, *(f"score:{mid}" for mid in self.mids)]

    def flat(self, row: dict) -> list:
        top = [value for label in row["top"] for value in (label["mid"], label["name"], label["score"])]
        return [
            *(str(row[f]) if f in ("id", "path") else row[f] for f in self.fields),
            *top,
            *(float(s) for s in row["scores"]),
        ]

    def add(self, row: dict) -> None:
        self.count += 1
        if self.format == "csv":
            assert self._file is not None  # __init__ opened it for csv
            self._csv.writerow(self.flat(row))
            self._file.flush()
        else:
            self.rows.append(row)

    def close(self) -> Path:
        if self.format == "csv":
            assert self._file is not None  # __init__ opened it for csv
            self._file.close()
        elif self.format == "json":
            records = [
                {
                    **{f: row[f] for f in self.fields},
                    "top": row["top"],
                    "scores": {mid: float(s) for mid, s in zip(self.mids, row["scores"])},
                }
                for row in self.rows
            ]
            self.partial.write_text(json.dumps(records, indent=1) + "\n", encoding="utf-8")
        else:
            self._write_parquet()
        os.replace(self.partial, self.out)
        return self.out

    def _write_parquet(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        columns = self.columns()
        values: list[Sequence[Any]] = list(zip(*(self.flat(row) for row in self.rows))) or [[] for _ in columns]
        arrays = []
        for name, column in zip(columns, values):
            text = name in ("id", "path") or name.endswith(("_mid", "_name"))
            kind = pa.string() if text else (pa.int64() if name in ("windows", "window") else pa.float64())
            arrays.append(pa.array(list(column), type=kind))
        pq.write_table(pa.Table.from_arrays(arrays, names=columns), self.partial)
