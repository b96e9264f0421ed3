"""Clips -> model inputs: audio, the clip's view, multi-hot targets and, in stage two, teacher logits.

One :class:`ClipDataset` serves supervised training, evaluation and every KD mode, so teacher and
student always see features built by the same code (:func:`pipeline.augment.render_view`).
Randomness comes only from views keyed by ``(seed, clip_id, view_index)``; the epoch is the view
index during training, so an epoch looks the same after a resume or with another worker count.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..audio import SAMPLE_RATE, AudioError
from ..audio_source import AudioSource
from ..augment import IDENTITY, AugmentSettings, View, draw_view, render_view
from ..config import FrontEndConfig
from ..manifests import Clip, Manifest
from .kd_source import StoreRows, TeacherRead

log = logging.getLogger(__name__)
# beside a run's metrics: one "clip_id,error" line per clip whose audio failed to read mid-run
SKIPPED_FILE = "skipped_clips.csv"


def read_skipped(path: str | os.PathLike) -> dict[str, str]:
    """clip_id -> first error of a skip log (every DataLoader worker appends to the same file)."""
    skipped: dict[str, str] = {}
    if Path(path).exists():
        for line in Path(path).read_text().splitlines():
            clip_id, _, error = line.partition(",")
            skipped.setdefault(clip_id, error)
    return skipped


def multi_hot(clip: Clip, class_index: dict[str, int], num_classes: int) -> np.ndarray:
    target = np.zeros(num_classes, dtype=np.float32)
    for mid in clip.labels:
        target[class_index[mid]] = 1.0
    return target


class ClipDataset(Dataset):
    """Items are dicts of tensors: features [T, F], target [C], label_mask, index and KD fields."""

    def __init__(
        self,
        manifest: Manifest,
        clips: list[Clip],
        front_end: FrontEndConfig,
        augment: AugmentSettings | None = None,
        seed: int = 0,
        partners: list[Clip] | None = None,
        kd: StoreRows | None = None,
        skip_log: str | os.PathLike | None = None,
    ):
        self.manifest = manifest
        self.skip_log = skip_log
        self.clips = clips
        self.front_end = front_end
        self.augment = augment if (augment is not None and augment.active) else None
        self.seed = seed
        self.partners = partners if partners is not None else clips
        self.partner_ids = [c.clip_id for c in self.partners]
        self.partner_by_id = {c.clip_id: c for c in self.partners}
        self.class_index = {mid: i for i, mid in enumerate(manifest.mids)}
        self.num_classes = manifest.num_classes
        self.manifest_by_id = {c.clip_id: c for c in manifest.clips}  # a stored view may name any clip
        self.audio = AudioSource(manifest)
        self.kd = kd
        # in shared memory: persistent DataLoader workers see set_epoch of the main process
        self._epoch = torch.zeros(1, dtype=torch.long).share_memory_()

    @property
    def epoch(self) -> int:
        return int(self._epoch[0])

    def set_epoch(self, epoch: int) -> None:
        """Called before each epoch's iterator starts, so every worker (persistent or not) draws its views."""
        self._epoch[0] = epoch

    def __len__(self) -> int:
        return len(self.clips)

    def view_for(self, index: int) -> tuple[View, int]:
        """(view, stored view slot or -1). replay: the teacher's stored view; else drawn per epoch."""
        if self.kd is not None:
            read = self._teacher(index)
            return read.view, read.slot
        return self._drawn_view(index), -1

    def _drawn_view(self, index: int) -> View:
        if self.augment is None:
            return IDENTITY
        return draw_view(
            self.seed,
            self.clips[index].clip_id,
            self.epoch,
            self.partner_ids,
            self.augment,
            self.front_end.n_mels,
            self.front_end.target_length,
        )

    def _teacher(self, index: int) -> TeacherRead:
        if self.kd is None:  # callers check first; a KD-less dataset has no teacher rows to read
            raise RuntimeError("this dataset has no KD store: no teacher row to read")
        return self.kd.read(index, self.epoch, lambda: self._drawn_view(index))

    def model_input(self, wave: np.ndarray, partner_wave: np.ndarray | None, view: View) -> dict:
        """The item's model input: features rendered here, in the DataLoader worker
        (pipeline.training.device_features.WaveDataset leaves them to the device)."""
        return {"features": render_view(wave, partner_wave, view, self.front_end)}

    def _target(self, clip: Clip) -> np.ndarray:
        return multi_hot(clip, self.class_index, self.num_classes)

    def _partner_clip(self, clip_id: str) -> Clip:
        return self.partner_by_id.get(clip_id) or self.manifest_by_id[clip_id]

    def _read(self, clip: Clip) -> np.ndarray | None:
        """The clip's samples, or None when they cannot be read (a file changed or vanished after
        the manifest checked it): the run records the clip and goes on instead of dying mid-epoch."""
        try:
            return self.audio.read(clip)
        except (AudioError, OSError) as error:
            message = str(error).replace("\n", " ")
            log.warning("skipping clip %s: %s", clip.clip_id, message)
            if self.skip_log is not None:
                with open(self.skip_log, "a") as handle:  # one short append per line: workers do not interleave
                    handle.write(f"{clip.clip_id},{message}\n")
            return None

    def __getitem__(self, index: int) -> dict:
        clip = self.clips[index]
        teacher = self._teacher(index) if self.kd is not None else None  # one store lookup per clip
        view = teacher.view if teacher is not None else self._drawn_view(index)
        wave = self._read(clip)
        partner_wave, target = None, self._target(clip)
        label_mask = 1.0 if clip.labels else 0.0
        skipped = wave is None
        if view.partner:
            partner = self._partner_clip(view.partner)
            partner_wave = self._read(partner)
            skipped = skipped or partner_wave is None
            target = view.lam * target + (1.0 - view.lam) * self._target(partner)
            if not partner.labels:
                label_mask = 0.0  # half the mixed target would be unknown
        # silence in place of the clip, weighing nothing in either loss term (skipped covers a None wave;
        # spelled out so the type checker sees it)
        if skipped or wave is None:
            wave = np.zeros(max(int(clip.duration_s * SAMPLE_RATE), SAMPLE_RATE), dtype=np.float32)
            partner_wave, view, label_mask = None, IDENTITY, 0.0
        item = {
            **self.model_input(wave, partner_wave, view),
            "target": torch.from_numpy(target),
            "label_mask": torch.tensor(label_mask, dtype=torch.float32),
            "index": torch.tensor(index),
            "lam": torch.tensor(view.lam if view.partner else 1.0, dtype=torch.float32),
            "skipped": torch.tensor(1.0 if skipped else 0.0),
        }
        if teacher is not None:  # the raw logits; the loop makes the target (pipeline.training.losses.kd_targets)
            item.update(
                {
                    "teacher_logits": torch.from_numpy(teacher.logits),
                    "partner_logits": torch.from_numpy(teacher.partner_logits),
                    "kd_mask": torch.tensor(0.0 if skipped else teacher.mask, dtype=torch.float32),
                    "kd_lam": torch.tensor(teacher.lam, dtype=torch.float32),
                }
            )
        return item


def balanced_weights(clips: list[Clip], mids: list[str]) -> np.ndarray:
    """PSLA's sampler weights: a clip weighs sum over its labels of 1000 / (label count + 0.01)."""
    index = {mid: i for i, mid in enumerate(mids)}
    counts = np.zeros(len(mids))
    for clip in clips:
        for mid in clip.labels:
            counts[index[mid]] += 1
    per_label = 1000.0 / (counts + 0.01)
    weights = np.array([sum(per_label[index[m]] for m in clip.labels) for clip in clips])
    if (weights == 0).any():  # unlabelled clips: give them the mean weight rather than never drawing them
        weights[weights == 0] = weights[weights > 0].mean() if (weights > 0).any() else 1.0
    return weights


def epoch_order(num_clips: int, seed: int, epoch: int, weights: np.ndarray | None = None) -> np.ndarray:
    """The clip order of one epoch from (seed, epoch) alone: a permutation, or a weighted draw with
    replacement for the balanced sampler. Independent of ranks and workers, so resume is exact."""
    rng = np.random.default_rng([seed, epoch, 0x5A3])
    if weights is None:
        return rng.permutation(num_clips)
    return rng.choice(num_clips, size=num_clips, replace=True, p=weights / weights.sum())


class EpochSampler(torch.utils.data.Sampler):
    """Yields this rank's share of :func:`epoch_order` (rank r takes every world_size-th index)."""

    def __init__(
        self,
        num_clips: int,
        seed: int,
        weights: np.ndarray | None = None,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
    ):
        self.num_clips, self.seed, self.weights = num_clips, seed, weights
        self.rank, self.world_size, self.shuffle = rank, world_size, shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        order = (
            epoch_order(self.num_clips, self.seed, self.epoch, self.weights)
            if self.shuffle
            else np.arange(self.num_clips)
        )
        if self.world_size > 1:  # equal shares, or DDP ranks would wait on each other's last batch
            order = np.resize(order, len(self) * self.world_size)
        return iter(order[self.rank :: self.world_size].tolist())

    def __len__(self) -> int:
        return -(-self.num_clips // self.world_size)
