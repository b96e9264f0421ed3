"""Scoring a model on a list of clips (clean input, no augmentation)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..config import FrontEndConfig
from ..manifests import Clip, Manifest
from ..metrics import evaluate_predictions
from ..progress import bar_options
from ..seeding import worker_init


class EvalInputs:
    """The batches one list of clips feeds a model at evaluation, kept in memory after the first pass
    when they fit in ``keep_mb``. Validation runs after every epoch on the same clean input (no
    augmentation, so every pass reads the same tensors), and decoding and rendering it again each
    time took 0.6 s of the 2.2 s of a validation pass of the demo's AST teacher (timed once on the
    2-core machine), plus a DataLoader worker started per pass. A list too large
    for the budget (a real dataset's eval split) is streamed from its files every time, as before."""

    def __init__(
        self,
        manifest: Manifest,
        clips: list[Clip],
        front_end: FrontEndConfig,
        batch_size: int = 32,
        num_workers: int = 0,
        features_on: str = "worker",
        pin_memory: bool = False,
        keep_mb: float = 0,
    ):
        from .device_features import dataset_class

        self.clips = clips
        self.dataset = dataset_class(features_on)(manifest, clips, front_end)
        self.batch_size, self.num_workers, self.pin_memory = batch_size, num_workers, pin_memory
        self.keep_bytes = keep_mb * 2**20
        self.kept: list[dict] | None = None

    def __len__(self) -> int:
        return -(-len(self.clips) // self.batch_size)

    def __iter__(self):
        if self.kept is not None:
            yield from self.kept
            return
        loader = DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            shuffle=False,
            num_workers=self.num_workers,
            worker_init_fn=worker_init if self.num_workers else None,
            pin_memory=self.pin_memory,
        )
        batches, size = [], 0
        for batch in loader:
            size += sum(value.nbytes for value in batch.values())
            if batches is not None and size <= self.keep_bytes:
                batches.append(batch)
            else:
                batches = None  # over the budget: streamed next time too
            yield batch
        self.kept = batches


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    manifest: Manifest,
    clips: list[Clip],
    front_end: FrontEndConfig,
    batch_size: int = 32,
    num_workers: int = 0,
    device: str = "cpu",
    desc: str = "eval",
    progress: bool = True,
    return_kept: bool = False,
    features_on: str = "worker",
    inputs: EvalInputs | None = None,
    class_map: np.ndarray | None = None,
):
    """(logits [N, C], targets [N, C]) in clip order, without clips whose audio could not be read;
    with ``return_kept`` also the [len(clips)] mask of the clips that were scored. `num_workers`
    DataLoader processes decode (and, features_on=worker, render) the clips; ``inputs`` (built for
    these clips) reuses batches an earlier call kept. ``class_map`` (the model's output column of each
    of the manifest's classes, from :func:`pipeline.manifests.vocabulary.class_map_for`) scores a model whose
    vocabulary is the manifest's in another order, or a superset of it."""
    from .device_features import features_on_device

    if inputs is None:
        inputs = EvalInputs(manifest, clips, front_end, batch_size, num_workers, features_on, device.startswith("cuda"))
    elif inputs.clips is not clips:
        raise ValueError("predict: `inputs` were built for another list of clips")
    model.eval()
    outputs, targets, kept = [], [], []
    for batch in tqdm(inputs, desc=desc, unit="batch", leave=False, **bar_options(progress)):
        batch_on_device = features_on_device({k: v.to(device, non_blocking=True) for k, v in batch.items()}, front_end)
        with torch.autocast(device_type="cuda", enabled=device.startswith("cuda")):
            logits = model(batch_on_device["features"])
        keep = batch["skipped"].numpy() == 0  # unreadable audio is left out of the scores, not scored as silence
        scores = logits.float().cpu().numpy()
        outputs.append((scores if class_map is None else scores[:, class_map])[keep])
        targets.append(batch["target"].numpy()[keep])
        kept.append(keep)
    if return_kept:
        return np.concatenate(outputs), np.concatenate(targets), np.concatenate(kept)
    return np.concatenate(outputs), np.concatenate(targets)


@dataclass
class Evaluation:
    """The scores behind a set of metrics: what a run saves as its eval predictions and per-class AP."""

    metrics: dict
    clip_ids: list[str]
    logits: np.ndarray  # [clips, classes], pre-activation
    targets: np.ndarray  # [clips, classes], 0/1


def evaluate_clips(
    model, manifest: Manifest, clips: list[Clip], front_end: FrontEndConfig, single_label: bool, **kwargs
) -> Evaluation:
    logits, targets, kept = predict(model, manifest, clips, front_end, return_kept=True, **kwargs)
    return Evaluation(
        evaluate_predictions(logits, targets, single_label=single_label),
        [clip.clip_id for clip, scored in zip(clips, kept) if scored],
        logits,
        targets,
    )


def evaluate_model(
    model, manifest: Manifest, clips: list[Clip], front_end: FrontEndConfig, single_label: bool, **kwargs
) -> dict:
    return evaluate_clips(model, manifest, clips, front_end, single_label, **kwargs).metrics
