"""Clips -> model inputs: audio, the clip's view, multi-hot targets and, in stage two, KD targets.

One :class:`ClipDataset` serves supervised training, evaluation and every KD mode, so teacher and
student always see features built by the same code (:func:`pipeline.augment.render_view`).
Randomness comes only from views keyed by ``(seed, clip_id, view_index)``; the epoch is the view
index during training, so an epoch looks the same after a resume or with another worker count.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .audio import SAMPLE_RATE, AudioError, PackedAudio, read_audio
from .augment import IDENTITY, AugmentSettings, View, draw_view, render_view
from .config import FrontEndConfig
from .manifests import Clip, Manifest


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


class AudioSource:
    """Reads a clip's waveform from packed HDF5 shards when the dataset has them, else its file."""

    def __init__(self, manifest: Manifest):
        self.data_root = manifest.data_root
        shards = manifest.info.get("packed") or []
        self.packed = PackedAudio(shards) if shards else None

    def read(self, clip: Clip) -> np.ndarray:
        if self.packed is not None and clip.clip_id in self.packed:
            return self.packed.read(clip.clip_id)
        return read_audio(self.data_root / clip.path)


@dataclass
class KDSettings:
    """What the dataset attaches for stage two. mode: clean | replay (online runs in the loop)."""

    mode: str
    table: object  # pipeline.store.LogitTable
    rows: np.ndarray  # store row per dataset clip (-1: not in the store)
    class_map: np.ndarray | None = None  # store class index per manifest class, when they differ
    clean_views: np.ndarray | None = None  # [clip, view] True: stored partner unavailable, replay the clean clip


def multi_hot(clip: Clip, class_index: dict[str, int], num_classes: int) -> np.ndarray:
    target = np.zeros(num_classes, dtype=np.float32)
    for mid in clip.labels:
        target[class_index[mid]] = 1.0
    return target


class ClipDataset(Dataset):
    """Items are dicts of tensors: features [T, F], target [C], label_mask, index and KD fields."""

    def __init__(self, manifest: Manifest, clips: list[Clip], front_end: FrontEndConfig,
                 augment: AugmentSettings | None = None, seed: int = 0, partners: list[Clip] | None = None,
                 kd: KDSettings | None = None, skip_log: str | os.PathLike | None = None):
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
        clip = self.clips[index]
        if self.kd is not None and self.kd.mode == "replay":
            row = int(self.kd.rows[index])
            if row >= 0 and self.kd.table.num_views > 0:
                slot = self.epoch % self.kd.table.num_views
                if self.kd.clean_views is not None and self.kd.clean_views[index, slot]:
                    return IDENTITY, -1  # MISSING=mask: the clean clip with its clean-clip logits
                return self.kd.table.view_for(row, slot), slot
        if self.augment is None:
            return IDENTITY, -1
        view = draw_view(self.seed, clip.clip_id, self.epoch, self.partner_ids, self.augment,
                         self.front_end.n_mels, self.front_end.target_length)
        return view, -1

    def model_input(self, wave: np.ndarray, partner_wave: np.ndarray | None, view: View) -> dict:
        """The item's model input: features rendered here, in the DataLoader worker
        (pipeline.device_features.WaveDataset leaves them to the device)."""
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
        view, slot = self.view_for(index)
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
        if skipped:  # silence in place of the clip, weighing nothing in either loss term
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
        if self.kd is not None:
            item.update(self._kd_fields(index, view, slot))
            if skipped:
                item["kd_mask"] = torch.tensor(0.0)
        return item

    def _kd_fields(self, index: int, view: View, slot: int) -> dict:
        """Teacher logits for this item; kd_mask 0 where the store has no valid row for it."""
        table, row = self.kd.table, int(self.kd.rows[index])
        num_store_classes = len(table.vocabulary_mids)
        missing = np.zeros(num_store_classes, dtype=np.float32)
        teacher, partner_logits, mask = missing, missing, 0.0
        if row >= 0 and slot >= 0:  # replay: the stored view's logits already include its mixup
            teacher = table.view_logits_for(np.array([row]), np.array([slot]))[0]
            mask = 1.0
        elif row >= 0:
            teacher = table.logits_for(np.array([row]))[0]
            mask = 1.0
            if view.partner:  # clean logits under mixup: mix the targets with the input's lambda
                partner_row = int(table.rows([view.partner])[0])
                if partner_row >= 0:
                    partner_logits = table.logits_for(np.array([partner_row]))[0]
                else:
                    mask = 0.0
        if not np.isfinite(teacher).all() or not np.isfinite(partner_logits).all():
            mask = 0.0  # a failed row in the store: masked, never filled in
        if self.kd.class_map is not None:
            teacher, partner_logits = teacher[self.kd.class_map], partner_logits[self.kd.class_map]
        return {
            "teacher_logits": torch.from_numpy(np.nan_to_num(np.asarray(teacher, dtype=np.float32))),
            "partner_logits": torch.from_numpy(np.nan_to_num(np.asarray(partner_logits, dtype=np.float32))),
            "kd_mask": torch.tensor(mask, dtype=torch.float32),
            "kd_mixed": torch.tensor(1.0 if (view.partner and slot < 0) else 0.0),
        }


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

    def __init__(self, num_clips: int, seed: int, weights: np.ndarray | None = None, rank: int = 0,
                 world_size: int = 1, shuffle: bool = True):
        self.num_clips, self.seed, self.weights = num_clips, seed, weights
        self.rank, self.world_size, self.shuffle = rank, world_size, shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        order = (epoch_order(self.num_clips, self.seed, self.epoch, self.weights) if self.shuffle
                 else np.arange(self.num_clips))
        if self.world_size > 1:  # equal shares, or DDP ranks would wait on each other's last batch
            order = np.resize(order, len(self) * self.world_size)
        return iter(order[self.rank :: self.world_size].tolist())

    def __len__(self) -> int:
        return -(-self.num_clips // self.world_size)
