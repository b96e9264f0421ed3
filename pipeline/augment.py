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
from dataclasses import dataclass

import numpy as np
import torch

from .config import Config, FrontEndConfig
from .features import fbank, normalise, pad_or_cut
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
    def from_config(cls, config: Config) -> "AugmentSettings":
        return cls(config.mixup, config.mixup_alpha, config.freqm, config.timem, config.time_shift)

    @property
    def active(self) -> bool:
        return bool(self.mixup > 0 or self.freqm or self.timem or self.time_shift)


def view_rng(seed: int, clip_id: str, view_index: int) -> np.random.Generator:
    """An RNG keyed by (seed, clip, view) through sha256: stable across processes and Python runs."""
    key = hashlib.sha256(f"{seed}\x00{clip_id}\x00{view_index}".encode()).digest()
    return np.random.default_rng(int.from_bytes(key[:8], "little"))


def draw_view(seed: int, clip_id: str, view_index: int, partners: list[str], settings: AugmentSettings,
              n_mels: int, target_length: int) -> View:
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
    return View(seed=seed, view_index=view_index, partner=partner, lam=round(lam, 6) if partner else 1.0,
                time_shift=shift, freq_masks=tuple(freq_masks), time_masks=tuple(time_masks))


def mix_waves(wave: np.ndarray, partner: np.ndarray, lam: float) -> np.ndarray:
    """Waveform mixup as in AST: the partner is zero-padded or cut to the clip's length."""
    if len(partner) < len(wave):
        partner = np.pad(partner, (0, len(wave) - len(partner)))
    else:
        partner = partner[: len(wave)]
    return (lam * wave + (1.0 - lam) * partner).astype(np.float32)


def apply_masks(features: torch.Tensor, view: View) -> torch.Tensor:
    """Zero the masked bands of normalised features [frames, mels] (zero = the dataset mean).

    Not torchaudio's FrequencyMasking/TimeMasking: those draw their own random numbers and cannot
    report them, and a replayable view needs the exact starts and widths.
    """
    features = features.clone()
    for start, width in view.freq_masks:
        features[:, start : start + width] = 0.0
    for start, width in view.time_masks:
        features[start : start + width, :] = 0.0
    return features


def render_view(wave: np.ndarray, partner_wave: np.ndarray | None, view: View, cfg: FrontEndConfig) -> torch.Tensor:
    """The exact input a model sees for this view: mix -> fbank -> pad/cut -> normalise -> shift -> mask."""
    if view.partner:
        if partner_wave is None:
            raise ValueError(f"view {view.view_index} mixes with {view.partner!r} but no partner audio was given")
        wave = mix_waves(wave, partner_wave, view.lam)
    features = normalise(pad_or_cut(fbank(wave, cfg), cfg.target_length), cfg)
    if view.time_shift:
        features = torch.roll(features, view.time_shift, dims=0)
    return apply_masks(features, view)
