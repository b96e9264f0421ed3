"""`predict` end to end: a model from anywhere, recordings from anywhere, tables out (see tagger.py)."""

from __future__ import annotations

import sys
from dataclasses import dataclass

from .model_source import load_tagger_model
from .sources import list_recordings
from .tagger import PredictSettings, PredictSummary, Tagger
from .writers import CLIP_FIELDS, WINDOW_FIELDS, TableWriter, output_format, windows_path


@dataclass(frozen=True)
class PredictJob:
    checkpoint: str
    audio: str
    out: str
    settings: PredictSettings = PredictSettings()
    engine: str = "torch"
    device: str = "auto"
    labels: str | None = None  # a published file's vocabulary
    model_name: str | None = None  # a published file that is not one of the known ones
    threads: int = 0
    progress: bool = True


def run_predict(job: PredictJob, log=print, errors=None) -> PredictSummary:
    """Tag every recording of job.audio into job.out (and its .windows table with frames); each
    unreadable file is one ``error: <path>: <why>`` line on ``errors`` (stderr) and the run goes on."""
    from tqdm import tqdm

    from ..progress import bar_options

    errors = errors or sys.stderr
    if job.settings.topk < 1:
        raise ValueError(f"TOPK must be at least 1, got {job.settings.topk}")
    if job.settings.batch_size < 1:
        raise ValueError(f"BATCH must be at least 1, got {job.settings.batch_size}")
    output_format(job.out)  # a wrong extension or a missing Parquet writer fails before any work
    if job.threads:
        import torch

        torch.set_num_threads(job.threads)
    model = load_tagger_model(job.checkpoint, job.engine, job.device, job.labels, job.model_name, threads=job.threads)
    recordings = list_recordings(job.audio)
    tagger = Tagger(model, job.settings)
    description = model.description
    log(
        f"predict: {description.model_name} ({len(description.mids)} classes, {description.activation}) from "
        f"{model.source} on {model.engine}/{model.device}; {len(recordings)} recording(s); windows of "
        f"{tagger.window / description.front_end.sample_rate:.2f} s every {tagger.hop / description.front_end.sample_rate:.2f} s"
    )
    clips = TableWriter(job.out, CLIP_FIELDS, description.mids, job.settings.topk)
    frames = (
        TableWriter(windows_path(job.out), WINDOW_FIELDS, description.mids, job.settings.topk)
        if job.settings.frames
        else None
    )
    bar = tqdm(total=len(recordings), unit="file", desc="predict", **bar_options(job.progress))

    def on_error(path: str, message: str) -> None:
        bar.write(f"error: {message}", file=errors)

    def on_windows(rows: list[dict]) -> None:
        assert frames is not None  # the tagger gets on_windows only when frames is set (below)
        for row in rows:
            frames.add(row)

    summary = tagger.run(recordings, clips.add, on_windows if frames else None, on_error, lambda: bar.update(1))
    bar.close()
    written = [clips.close()] + ([frames.close()] if frames else [])
    log(f"predict: {summary.line()}; written {', '.join(str(p) for p in written)}")
    if summary.failures:
        log(f"predict: {len(summary.failures)} file(s) could not be read (listed above as error: lines)")
    return summary
