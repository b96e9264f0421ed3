"""Timing helpers, result records and the two result files (bench/results.json, bench/results.md).

Every figure comes from the run that writes it. A ratio is measured inside one run: numerator and
denominator back to back in the same process, after warm-up, interleaved (A B A B ...) so that a
load spike on a shared machine hits both sides, and reported as the median of the per-repeat
ratios. Raw seconds of every repeat are kept in the JSON file next to the figure they produced.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

RESULTS_FORMAT = "cmkd-bench"
RESULTS_VERSION = 1
RATIO = "x"  # the unit of every "A / B" figure


@dataclass(frozen=True)
class Goal:
    op: str  # "<=" or ">="
    value: float

    def __post_init__(self):
        if self.op not in ("<=", ">="):
            raise ValueError(f"goal operator must be '<=' or '>=', got {self.op!r}")

    def met(self, measured: float) -> bool:
        if not math.isfinite(measured):
            return False
        return measured <= self.value if self.op == "<=" else measured >= self.value

    def text(self, unit: str) -> str:
        return f"{self.op} {self.value:g}x" if unit == RATIO else f"{self.op} {format_value(self.value, unit)}"


@dataclass
class Figure:
    """One number an entry reports; with a goal it also passes or fails."""

    label: str
    value: float
    unit: str
    goal: Goal | None = None

    @property
    def ok(self) -> bool | None:
        return None if self.goal is None else self.goal.met(self.value)

    def to_dict(self) -> dict:
        return {
            "label": self.label,
            "value": _finite_or_none(self.value),
            "unit": self.unit,
            "goal": asdict(self.goal) if self.goal else None,
            "ok": self.ok,
        }


@dataclass
class Measured:
    """What an entry function returns: its figures, the raw timings behind them, and context."""

    figures: list[Figure]
    timings: dict[str, list[float]] = field(default_factory=dict)
    details: dict = field(default_factory=dict)
    note: str = ""


@dataclass
class EntryResult:
    name: str
    title: str
    measured: Measured
    seconds: float
    date: str
    params: dict
    error: str = ""
    load_average: tuple[float, float] = (float("nan"), float("nan"))  # 1-min load before and after

    @property
    def ok(self) -> bool | None:
        if self.error:
            return False
        verdicts = [f.ok for f in self.measured.figures if f.ok is not None]
        return all(verdicts) if verdicts else None

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "title": self.title,
            "date": self.date,
            "seconds": round(self.seconds, 3),
            "load_average_before_after": [_finite_or_none(round(x, 2)) for x in self.load_average],
            "ok": self.ok,
            "error": self.error or None,
            "params": self.params,
            "figures": [f.to_dict() for f in self.measured.figures],
            "timings": {k: [round(float(s), 6) for s in v] for k, v in self.measured.timings.items()},
            "details": self.measured.details,
            "note": self.measured.note,
        }


@dataclass
class BenchContext:
    """What every entry gets: the size mode, its own scratch folder and the thread budget."""

    quick: bool
    scratch: Path
    threads: int
    log: Callable[[str], None] = print

    def folder(self, name: str) -> Path:
        path = self.scratch / name
        path.mkdir(parents=True, exist_ok=True)
        return path


# -- timing -----------------------------------------------------------------------------------------


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    """(seconds, result) of one call, on the monotonic high-resolution clock."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def repeat_timed(fn: Callable[[], object], repeats: int, warmup: int = 1) -> list[float]:
    """Seconds of `repeats` calls after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    return [timed(fn)[0] for _ in range(repeats)]


def interleaved(calls: dict[str, Callable[[], object]], repeats: int, warmup: int = 1) -> dict[str, list[float]]:
    """Time several calls in turn: slow phases of a shared machine hit them all.

    The order flips every repeat (A B, B A, A B ...) so that neither side always runs right after the
    other, which would hand it the other's warm caches or its leftover load.
    """
    for _ in range(warmup):
        for fn in calls.values():
            fn()
    seconds: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    for repeat in range(repeats):
        for name in names if repeat % 2 == 0 else names[::-1]:
            seconds[name].append(timed(calls[name])[0])
    return seconds


def median(values) -> float:
    values = [float(v) for v in values]
    if not values:
        raise ValueError("median of no measurements")
    return float(statistics.median(values))


def paired_ratio(numerator: list[float], denominator: list[float]) -> float:
    """Median over repeats of numerator[i] / denominator[i] (pairs measured back to back)."""
    if len(numerator) != len(denominator) or not numerator:
        raise ValueError(f"paired_ratio needs equal, non-empty lists, got {len(numerator)} and {len(denominator)}")
    return median([n / d for n, d in zip(numerator, denominator)])


def entry_params(full, quick, use_quick: bool, overrides: dict | None = None):
    """The entry's parameters: its full or quick dataclass, with explicit overrides (tests) on top."""
    chosen = quick if use_quick else full
    if overrides:
        known = {f.name for f in dataclasses.fields(chosen)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown parameter(s) {unknown} for {type(chosen).__name__}; known: {sorted(known)}")
        chosen = dataclasses.replace(chosen, **overrides)
    return chosen


# -- machine and files ------------------------------------------------------------------------------


def load_average() -> float:
    """The 1-minute load average (NaN where the OS has none): how shared the machine was."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info(threads: int) -> dict:
    import numpy
    import psutil
    import torch
    import zarr

    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {
        "date": utc_now(),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "zarr": zarr.__version__,
        "threads": threads,
        "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(libgomp default)"),
        "load_average_at_start": [round(x, 2) for x in load],
    }


def _finite_or_none(value: float):
    return float(value) if value is not None and math.isfinite(value) else None


def format_value(value: float | None, unit: str) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    if unit == RATIO:  # three decimals near 1, where goals sit (1.099 must not print as 1.1)
        return f"{value:.3g}x" if value < 0.1 else f"{value:.3f}x" if value < 10 else f"{value:.1f}x"
    if unit in ("fraction", "relative error"):
        return f"{100 * value:.3g} %"
    if unit in ("rows/s", "batches/s"):
        return f"{value:,.0f} {unit}"
    if unit in ("MB", "s"):
        return f"{value:,.1f} {unit}"
    return f"{value:.3g} {unit}"


def results_document(
    results: list[EntryResult], machine: dict, run: dict, order: list[str], previous: dict | None = None
) -> dict:
    """The JSON document, entries in suite order; entries of an earlier file are kept when this run
    measured only some of them (--only)."""
    entries = {r.name: r.to_dict() for r in results}
    if previous and previous.get("format") == RESULTS_FORMAT:
        kept = {e["name"]: e for e in previous.get("entries", []) if e["name"] not in entries}
        entries = {**kept, **entries}
    ordered = sorted(entries.values(), key=lambda e: order.index(e["name"]) if e["name"] in order else len(order))
    verdicts = [e["ok"] for e in ordered if e["ok"] is not None]
    return {
        "format": RESULTS_FORMAT,
        "version": RESULTS_VERSION,
        "machine": machine,
        "run": run,
        "all_goals_met": all(verdicts) if verdicts else None,
        "entries": ordered,
    }


def markdown(document: dict) -> str:
    """bench/results.md: one row per figure (entry | measured | goal | ok), then each entry's note."""
    machine, run = document["machine"], document["run"]
    mode = "--quick: smoke sizes" if run.get("quick") else "full sizes"
    lines = [
        "# Benchmark results",
        "",
        f"`python -m stages.bench` ({mode}), {machine['date']}: {machine['cpu_count']} x {machine['cpu_model']}, "
        f"{machine['memory_gb']} GB, torch {machine['torch']}, {machine['threads']} threads, "
        f"OMP_WAIT_POLICY={machine['omp_wait_policy']}, load average at start "
        f"{machine['load_average_at_start'][0]}. Total {run.get('total_seconds', 0):.0f} s. "
        "Every figure is measured in the run; ratios are medians of back-to-back repeats.",
        "",
        "| entry | measured | goal | ok |",
        "|---|---|---|---|",
    ]
    notes = []
    for entry in document["entries"]:
        if entry["error"]:
            lines.append(f"| {entry['name']} | error: {entry['error'].splitlines()[0][:120]} | | no |")
        for figure in entry["figures"]:
            goal = Goal(**figure["goal"]) if figure["goal"] else None
            ok = {True: "yes", False: "**no**", None: ""}[figure["ok"]]
            lines.append(
                f"| {entry['name']}: {figure['label']} | {format_value(figure['value'], figure['unit'])} | "
                f"{goal.text(figure['unit']) if goal else ''} | {ok} |"
            )
        if entry["note"]:
            notes.append(f"- **{entry['name']}** ({entry['seconds']:.0f} s, {entry['date']}): {entry['note']}")
    if notes:
        lines += ["", "## How each entry was measured", "", *notes]
    return "\n".join(lines) + "\n"


def write_results(document: dict, out_json: str | os.PathLike) -> tuple[Path, Path]:
    """Write the JSON file and the markdown table beside it (same name, .md)."""
    out_json = Path(out_json)
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_md = out_json.with_suffix(".md")
    for path, text in ((out_json, json.dumps(document, indent=2) + "\n"), (out_md, markdown(document))):
        draft = path.with_name(f".{path.name}.tmp")
        draft.write_text(text)
        os.replace(draft, path)
    return out_json, out_md


def read_previous(out_json: str | os.PathLike) -> dict | None:
    path = Path(out_json)
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
