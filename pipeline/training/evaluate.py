"""Scoring a model on a list of clips (clean input, no augmentation)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..config import FrontEndConfig
from ..data import ClipDataset
from ..manifests import Clip, Manifest
from ..metrics import evaluate_predictions
from ..progress import bar_options
from ..seeding import worker_init


@torch.no_grad()
def predict(model: torch.nn.Module, manifest: Manifest, clips: list[Clip], front_end: FrontEndConfig,
            batch_size: int = 32, num_workers: int = 0, device: str = "cpu", desc: str = "eval",
            progress: bool = True, return_kept: bool = False, features_on: str = "worker"):
    """(logits [N, C], targets [N, C]) in clip order, without clips whose audio could not be read;
    with ``return_kept`` also the [len(clips)] mask of the clips that were scored. `num_workers`
    DataLoader processes decode (and, features_on=worker, render) the clips."""
    from ..device_features import dataset_class, features_on_device

    dataset = dataset_class(features_on)(manifest, clips, front_end)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        worker_init_fn=worker_init if num_workers else None, pin_memory=device.startswith("cuda"))
    model.eval()
    outputs, targets, kept = [], [], []
    for batch in tqdm(loader, desc=desc, unit="batch", leave=False, **bar_options(progress)):
        inputs = features_on_device({k: v.to(device, non_blocking=True) for k, v in batch.items()}, front_end)
        with torch.autocast(device_type="cuda", enabled=device.startswith("cuda")):
            logits = model(inputs["features"])
        keep = batch["skipped"].numpy() == 0  # unreadable audio is left out of the scores, not scored as silence
        outputs.append(logits.float().cpu().numpy()[keep])
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


def evaluate_clips(model, manifest: Manifest, clips: list[Clip], front_end: FrontEndConfig,
                   single_label: bool, **kwargs) -> Evaluation:
    logits, targets, kept = predict(model, manifest, clips, front_end, return_kept=True, **kwargs)
    return Evaluation(evaluate_predictions(logits, targets, single_label=single_label),
                      [clip.clip_id for clip, scored in zip(clips, kept) if scored], logits, targets)


def evaluate_model(model, manifest: Manifest, clips: list[Clip], front_end: FrontEndConfig,
                   single_label: bool, **kwargs) -> dict:
    return evaluate_clips(model, manifest, clips, front_end, single_label, **kwargs).metrics
