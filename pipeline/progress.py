"""Progress bars that suit where the output goes: every tqdm call takes its options from here.

On a terminal a bar redraws in place, as usual. Into a file or a pipe (a cluster job's log, `make demo
> log`) every redraw would be appended as another carriage-return-separated copy of the bar, which is
how a single training run once wrote 270 KB of log; there a bar refreshes at most once a minute, and
the one-line-per-epoch messages carry the record.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from tqdm import tqdm

LOG_REFRESH_S = 60.0  # seconds between redraws when the output is not a terminal


def is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def bar_options(enabled: bool = True, stream=None) -> dict:
    """Keyword arguments for ``tqdm(...)``: off when not enabled, live on a terminal, rare in a log.
    ``stream`` is where the bar goes (tqdm's default: sys.stderr)."""
    if not enabled:
        return {"disable": True}
    stream = sys.stderr if stream is None else stream
    if is_terminal(stream):
        return {"disable": False}
    return {"disable": False, "mininterval": LOG_REFRESH_S, "maxinterval": 10 * LOG_REFRESH_S, "ncols": 100}


class ClipBar:
    """A bar over a DataLoader that counts clips, not batches, so tqdm's own rate reads clips/s and
    refreshes at tqdm's own interval (a hand-made rate in the postfix was refreshed every 50 steps: a
    14-step epoch showed the first step's rate, later epochs none). A batch counts once its step is done
    (the loop body ran), so the rate is of clips trained, not clips loaded."""

    def __init__(self, batches: Iterable, total: int, size: Callable[[Any], int], **options):
        self.batches, self.size = batches, size
        self.bar = tqdm(total=total, unit="clip", **options)

    def __iter__(self) -> Iterator:
        try:
            for batch in self.batches:
                yield batch
                self.bar.update(self.size(batch))
        finally:
            self.bar.close()

    def set_postfix(self, **values) -> None:
        self.bar.set_postfix(**values)


def batch_clips(batch: dict) -> int:
    """Clips in a collated batch of :class:`pipeline.training.dataset.ClipDataset` items."""
    return int(batch["index"].shape[0])
