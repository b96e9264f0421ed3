"""Progress bars: live on a terminal, rare in a log file, absent when disabled."""

from __future__ import annotations

import io
import time

from tqdm import tqdm

from pipeline.progress import LOG_REFRESH_S, bar_options


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def redraws(stream: io.StringIO) -> int:
    return stream.getvalue().count("\r")


def run_bar(stream: io.StringIO, **options) -> None:
    for _ in tqdm(range(60), file=stream, **options):
        time.sleep(0.005)  # 0.3 s in all: several redraws at tqdm's default 0.1 s interval


def test_options_follow_the_stream():
    assert bar_options(False) == {"disable": True}
    assert bar_options(True, FakeTerminal()) == {"disable": False}
    into_file = bar_options(True, io.StringIO())
    assert into_file["disable"] is False and into_file["mininterval"] == LOG_REFRESH_S >= 30


def test_a_bar_into_a_file_redraws_far_less_than_the_default():
    default, ours = io.StringIO(), io.StringIO()
    run_bar(default)
    run_bar(ours, **bar_options(True, ours))
    assert redraws(ours) <= 2  # the opening and the closing state only
    assert redraws(default) > redraws(ours)
    assert "60/60" in ours.getvalue()  # the bar still ends on its final count


def test_a_closed_or_plain_stream_counts_as_a_log():
    closed = io.StringIO()
    closed.close()
    assert "mininterval" in bar_options(True, closed)
    assert "mininterval" in bar_options(True, object())


def test_a_training_bar_counts_clips_so_tqdms_own_rate_reads_clips_per_second():
    import torch

    from pipeline.progress import ClipBar, batch_clips

    stream = io.StringIO()
    batches = [{"index": torch.arange(n)} for n in (8, 8, 6)]  # 22 clips in three batches
    bar = ClipBar(batches, 22, batch_clips, file=stream, mininterval=0)
    seen = [batch_clips(batch) for batch in bar]
    assert seen == [8, 8, 6]
    final = stream.getvalue().split("\r")[-1]
    assert "22/22" in final and "clip/s" in final  # tqdm's rate, in clips, on the closing line
