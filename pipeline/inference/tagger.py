"""Tagging recordings: windows of every file, batched across files, through the model's own front end.

Each window is a training clip to the model: its waveform goes through ``fbank_batch`` (the batched
form of the per-clip front end: the window's own DC offset removed, frames past its end zero) and
``normalise`` with the model's recorded statistics, so a window shorter than the input (a short file,
the end of a long one) is padded exactly as a short training clip is.

Clip scores, from the windows' scores:

- multi-label models (sigmoid): the **maximum** over windows of each class's probability. A sound
  that occurs once in an hour-long recording is present in the recording; a mean would dilute it by
  the recording's length.
- single-label models (softmax): the **mean** over windows of the probability vectors, which stays a
  distribution over classes (it sums to 1) and weighs each stretch of the recording equally.

Windows from consecutive files share batches; rows come out in input order, one file at a time, as
soon as its last window is scored. A file that cannot be read is reported with its path and skipped,
and its windows already queued are dropped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import torch

from ..audio import AudioError
from ..features import fbank_batch, normalise
from .model_source import TaggerModel
from .sources import Recording
from .stream import AudioStream
from .windows import Window, hop_samples, window_length, windows


@dataclass(frozen=True)
class PredictSettings:
    hop_seconds: float | None = None  # None: half a window
    topk: int = 5
    frames: bool = False  # also one row per window
    batch_size: int = 32  # windows per forward pass


@dataclass
class FileState:
    recording: Recording
    duration_s: float = 0.0
    queued: int = 0
    scored: int = 0
    read_done: bool = False
    failed: str = ""
    peak: np.ndarray | None = None  # running max of probabilities (multi-label)
    total: np.ndarray | None = None  # running sum of probabilities (single-label)
    window_rows: list[dict] = field(default_factory=list)


@dataclass
class PredictSummary:
    files: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)  # (path, message)
    windows: int = 0
    audio_seconds: float = 0.0
    seconds: float = 0.0

    def line(self) -> str:
        rate = self.audio_seconds / self.seconds if self.seconds else float("nan")
        return (
            f"{self.files} file(s), {self.audio_seconds / 60:.1f} min of audio, {self.windows} windows in "
            f"{self.seconds:.1f} s: {rate:.1f}x real time, {self.windows / max(self.seconds, 1e-9):.1f} windows/s; "
            f"{len(self.failures)} failed"
        )


def top_labels(scores: np.ndarray, mids: list[str], names: list[str], k: int) -> list[dict]:
    order = np.argsort(-scores, kind="stable")[: max(0, min(k, len(scores)))]
    return [{"mid": mids[i], "name": names[i], "score": float(scores[i])} for i in order]


class Tagger:
    def __init__(self, model: TaggerModel, settings: PredictSettings):
        self.model = model
        self.settings = settings
        self.front = model.description.front_end
        self.window = window_length(self.front)
        self.hop = hop_samples(self.front, settings.hop_seconds)
        self.single_label = model.description.activation == "softmax"
        self.pending: list[tuple[FileState, Window]] = []

    def probabilities(self, waves: list[np.ndarray]) -> np.ndarray:
        """[windows, classes] scores of a batch of windows (each at most a window long)."""
        device = self.model.device
        lengths = torch.tensor([len(w) for w in waves])
        batch = torch.zeros(len(waves), self.window)
        for row, wave in enumerate(waves):
            batch[row, : len(wave)] = torch.from_numpy(wave)
        features = normalise(fbank_batch(batch.to(device), lengths.to(device), self.front), self.front)
        logits = torch.from_numpy(self.model.forward(features)).double()
        # float64 for the activation, float32 out: one precision in every table column
        return (logits.softmax(dim=1) if self.single_label else logits.sigmoid()).numpy().astype(np.float32)

    def _flush(self, finished: Callable[[FileState], None]) -> None:
        if not self.pending:
            return
        batch, self.pending = self.pending, []
        scores = self.probabilities([w.samples for _, w in batch])
        rate = self.front.sample_rate
        description = self.model.description
        for (state, window), row in zip(batch, scores):
            if self.single_label:
                state.total = row.copy() if state.total is None else state.total + row
            else:
                state.peak = row.copy() if state.peak is None else np.maximum(state.peak, row)
            state.scored += 1
            if self.settings.frames:
                state.window_rows.append(
                    {
                        "id": state.recording.id,
                        "path": state.recording.path,
                        "window": window.index,
                        "start_s": window.start / rate,
                        "end_s": (window.start + len(window.samples)) / rate,
                        "top": top_labels(row, description.mids, description.names, self.settings.topk),
                        "scores": row,
                    }
                )
            if state.read_done and state.scored == state.queued:
                finished(state)

    def clip_row(self, state: FileState) -> dict:
        scores = state.total if self.single_label else state.peak
        if scores is None:
            raise ValueError(f"{state.recording.path}: no window of it was scored")
        if self.single_label:
            scores = scores / state.scored
        description = self.model.description
        return {
            "id": state.recording.id,
            "path": state.recording.path,
            "duration_s": state.duration_s,
            "windows": state.scored,
            "top": top_labels(scores, description.mids, description.names, self.settings.topk),
            "scores": scores.astype(np.float32, copy=False),
        }

    def run(
        self,
        recordings: Iterable[Recording],
        on_clip: Callable[[dict], None],
        on_windows: Callable[[list[dict]], None] | None = None,
        on_error: Callable[[str, str], None] | None = None,
        on_file: Callable[[], None] | None = None,
    ) -> PredictSummary:
        """Tag every recording; ``on_clip`` gets each clip row (and ``on_windows`` its window rows) in
        input order; ``on_error(path, message)`` each file that could not be read."""
        summary = PredictSummary()
        started = time.perf_counter()

        def finished(state: FileState) -> None:
            on_clip(self.clip_row(state))
            if on_windows is not None and self.settings.frames:
                on_windows(state.window_rows)
            state.window_rows = []
            summary.files += 1
            summary.windows += state.scored
            summary.audio_seconds += state.duration_s

        for recording in recordings:
            state = FileState(recording)
            try:
                stream = AudioStream(recording.path)
                state.duration_s = stream.duration_s
                for window in windows(stream, self.window, self.hop):
                    self.pending.append((state, window))
                    state.queued += 1
                    if len(self.pending) >= self.settings.batch_size:
                        self._flush(finished)
            except AudioError as error:
                self.pending = [(s, w) for s, w in self.pending if s is not state]
                summary.failures.append((recording.path, str(error)))
                if on_error is not None:
                    on_error(recording.path, str(error))
                if on_file is not None:
                    on_file()
                continue
            state.read_done = True
            if state.scored == state.queued:  # every window already scored in an earlier batch
                finished(state)
            if on_file is not None:
                on_file()
        self._flush(finished)
        summary.seconds = time.perf_counter() - started
        return summary
