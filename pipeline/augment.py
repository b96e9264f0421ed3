"""Augmented views as plain data: drawn from a seed, applied anywhere, replayed exactly.

A :class:`~pipeline.views.View` (numpy-free, so the store imports without torch) holds every random choice behind one augmented input: the mixup partner (by
clip_id) and lambda, a time shift, and the SpecAugment masks. It is drawn from
``(seed, clip_id, view_index)`` alone, so it never depends on batch order, worker count or GPU
count. Stage one stores the views its teacher saw; stage two rebuilds the identical input from them
(consistent teaching with cached logits, which CED cannot do for mixup:
https://github.com/RicherMans/CED/issues/23).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .config import Config, FrontEndConfig
from .features import fbank, fbank_batch, normalise, pad_or_cut
from .views import IDENTITY, MAX_MASKS, View  # noqa: F401  (re-exported: the record lives in pipeline.views)


@dataclass(frozen=True)
class AugmentSettings:
    mixup: float = 0.0
    mixup_alpha: float = 10.0
    freqm: int = 0
    timem: int = 0
    time_shift: int = 0
    n_freq_masks: int = 1
    n_time_masks: int = 1

    @classmethod
    def from_config(cls, config: Config) -> AugmentSettings:
        return cls(config.mixup, config.mixup_alpha, config.freqm, config.timem, config.time_shift)

    @property
    def active(self) -> bool:
        return bool(self.mixup > 0 or self.freqm or self.timem or self.time_shift)


def view_rng(seed: int, clip_id: str, view_index: int) -> np.random.Generator:
    """An RNG keyed by (seed, clip, view) through sha256: stable across processes and Python runs."""
    key = hashlib.sha256(f"{seed}\x00{clip_id}\x00{view_index}".encode()).digest()
    return np.random.default_rng(int.from_bytes(key[:8], "little"))


def draw_view(
    seed: int,
    clip_id: str,
    view_index: int,
    partners: Sequence[str],
    settings: AugmentSettings,
    n_mels: int,
    target_length: int,
) -> View:
    """Draw one view; `partners` is the ordered pool mixup partners come from (the training clips)."""
    rng = view_rng(seed, clip_id, view_index)
    # draw every value unconditionally so each setting's draws stay the same when another changes
    do_mix = rng.random() < settings.mixup
    partner_pick = int(rng.integers(0, max(len(partners), 1)))
    lam = float(rng.beta(settings.mixup_alpha, settings.mixup_alpha))
    shift = int(rng.integers(-settings.time_shift, settings.time_shift + 1)) if settings.time_shift else 0
    freq_masks = []
    for _ in range(settings.n_freq_masks if settings.freqm else 0):
        width = int(rng.integers(0, settings.freqm + 1))
        freq_masks.append((int(rng.integers(0, max(n_mels - width, 0) + 1)), width))
    time_masks = []
    for _ in range(settings.n_time_masks if settings.timem else 0):
        width = int(rng.integers(0, settings.timem + 1))
        time_masks.append((int(rng.integers(0, max(target_length - width, 0) + 1)), width))
    partner = partners[partner_pick] if (do_mix and partners) else ""
    if partner == clip_id:  # mixing a clip with itself is a no-op; record it as no mixup
        partner = ""
    return View(
        seed=seed,
        view_index=view_index,
        partner=partner,
        lam=round(lam, 6) if partner else 1.0,
        time_shift=shift,
        freq_masks=tuple(freq_masks),
        time_masks=tuple(time_masks),
    )


def mix_waves(wave: np.ndarray, partner: np.ndarray, lam: float) -> np.ndarray:
    """Waveform mixup as in AST: the partner is zero-padded or cut to the clip's length."""
    if len(partner) < len(wave):
        partner = np.pad(partner, (0, len(wave) - len(partner)))
    else:
        partner = partner[: len(wave)]
    return (lam * wave + (1.0 - lam) * partner).astype(np.float32)


def view_tensors(views: list[View], device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Views as the batched front end takes them: lam [B] (float64), time_shift [B], and mask slots
    [B, M, 2] with start -1 for unused slots (the store's encoding)."""
    slots = max([MAX_MASKS] + [max(len(v.freq_masks), len(v.time_masks)) for v in views])
    masks = {
        "freq_masks": torch.full((len(views), slots, 2), -1, dtype=torch.long),
        "time_masks": torch.full((len(views), slots, 2), -1, dtype=torch.long),
    }
    for row, view in enumerate(views):
        for name, pairs in (("freq_masks", view.freq_masks), ("time_masks", view.time_masks)):
            if pairs:
                masks[name][row, : len(pairs)] = torch.tensor(pairs, dtype=torch.long)
    return {
        "lam": torch.tensor([v.lam if v.partner else 1.0 for v in views], dtype=torch.float64, device=device),
        "time_shift": torch.tensor([v.time_shift for v in views], dtype=torch.long, device=device),
        **{name: value.to(device) for name, value in masks.items()},
    }


def _band_hits(masks: torch.Tensor, size: int) -> torch.Tensor:
    """[B, M, 2] (start, width) slots -> [B, size] True inside any used band."""
    position = torch.arange(size, device=masks.device)[None, None, :]
    start, width = masks[..., 0:1], masks[..., 1:2]
    return ((position >= start) & (position < start + width) & (start >= 0)).any(dim=1)


def apply_views(
    features: torch.Tensor, time_shift: torch.Tensor, freq_masks: torch.Tensor, time_masks: torch.Tensor
) -> torch.Tensor:
    """Each view's circular time shift, then its SpecAugment masks zeroed (zero = the dataset mean),
    on normalised features [B, frames, mels]: the one implementation the per-clip and batched paths use.

    Not torchaudio's FrequencyMasking/TimeMasking: those draw their own random numbers and cannot
    report them, and a replayable view needs the exact starts and widths.
    """
    frames, mels = features.shape[1], features.shape[2]
    source = (torch.arange(frames, device=features.device)[None, :] - time_shift.to(features.device)[:, None]) % frames
    shifted = torch.gather(features, 1, source[:, :, None].expand(-1, -1, mels))  # = torch.roll per row
    hidden = (
        _band_hits(freq_masks.to(features.device), mels)[:, None, :]
        | _band_hits(time_masks.to(features.device), frames)[:, :, None]
    )
    return shifted.masked_fill(hidden, 0.0)


def apply_masks(features: torch.Tensor, view: View) -> torch.Tensor:
    """One view's masks on normalised features [frames, mels] (no shift)."""
    arrays = view_tensors([view])
    return apply_views(features[None], torch.zeros(1, dtype=torch.long), arrays["freq_masks"], arrays["time_masks"])[0]


def render_view(wave: np.ndarray, partner_wave: np.ndarray | None, view: View, cfg: FrontEndConfig) -> torch.Tensor:
    """The exact input a model sees for this view: mix -> fbank -> pad/cut -> normalise -> shift -> mask."""
    if view.partner:
        if partner_wave is None:
            raise ValueError(f"view {view.view_index} mixes with {view.partner!r} but no partner audio was given")
        wave = mix_waves(wave, partner_wave, view.lam)
    features = normalise(pad_or_cut(fbank(wave, cfg), cfg.target_length), cfg)
    arrays = view_tensors([view])
    return apply_views(features[None], arrays["time_shift"], arrays["freq_masks"], arrays["time_masks"])[0]


def mix_batch(waves: torch.Tensor, partner_waves: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """:func:`mix_waves` for padded rows: a row with lam < 1 gets lam * clip + (1 - lam) * partner
    (the partner zero past its own end, cut at the buffer's width); lam = 1 rows stay as they are."""
    if partner_waves.shape[1] < waves.shape[1]:
        partner_waves = torch.nn.functional.pad(partner_waves, (0, waves.shape[1] - partner_waves.shape[1]))
    partner_waves = partner_waves[:, : waves.shape[1]].to(waves.device, waves.dtype)
    lam = lam.to(waves.device)
    mixed = lam.to(waves.dtype)[:, None] * waves + (1.0 - lam).to(waves.dtype)[:, None] * partner_waves
    return torch.where((lam < 1.0)[:, None], mixed, waves)


def render_batch(
    waves: torch.Tensor,
    lengths: torch.Tensor,
    cfg: FrontEndConfig,
    views: dict | None = None,
    partner_waves: torch.Tensor | None = None,
) -> torch.Tensor:
    """:func:`render_view` for a padded batch [B, samples] on the waves' device: mix (when views and
    partner_waves are given) -> fbank -> pad/cut -> normalise -> shift -> mask, [B, frames, mels]."""
    if views is not None and partner_waves is not None:
        waves = mix_batch(waves, partner_waves, views["lam"])
    features = normalise(fbank_batch(waves, lengths, cfg), cfg)
    if views is None:
        return features
    return apply_views(features, views["time_shift"], views["freq_masks"], views["time_masks"])
