"""The benchmark behind `make bench`: every speed, memory and size claim of the pipeline, measured.

    from bench import run_bench
    document = run_bench(only=["store_bytes"], quick=True, out="bench/results.json")

Entries live one concept per module (models, stage_one, stage_two, store, lookups, io); the harness
owns timing, result records and the two files (bench/results.json, bench/results.md).
"""

from .harness import BenchContext, EntryResult, Figure, Goal, Measured, markdown
from .suite import ENTRIES, Entry, entry_names, run_bench, select_entries

__all__ = [
    "ENTRIES",
    "BenchContext",
    "Entry",
    "EntryResult",
    "Figure",
    "Goal",
    "Measured",
    "entry_names",
    "markdown",
    "run_bench",
    "select_entries",
]
