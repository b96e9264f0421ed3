"""The front end: waveform -> Kaldi fbank -> pad/cut -> normalise (AST/PSLA recipe).

Uses torchaudio's Kaldi-compatible fbank rather than a re-implementation, so features match the
published AST and PSLA checkpoints.
"""

from __future__ import annotations

import numpy as np
import torch
import torchaudio.compliance.kaldi as kaldi

from .config import FrontEndConfig


def fbank(wave: torch.Tensor | np.ndarray, cfg: FrontEndConfig) -> torch.Tensor:
    """float waveform [samples] at cfg.sample_rate -> log-mel [frames, n_mels], not yet padded."""
    if isinstance(wave, np.ndarray):
        wave = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))
    wave = wave.float().reshape(1, -1)
    wave = wave - wave.mean()  # the parent code removes the DC offset before fbank
    min_samples = int(cfg.sample_rate * cfg.frame_length_ms / 1000)
    if wave.shape[1] < min_samples:  # shorter than one window: pad so there is at least one frame
        wave = torch.nn.functional.pad(wave, (0, min_samples - wave.shape[1]))
    return kaldi.fbank(
        wave,
        htk_compat=True,
        sample_frequency=cfg.sample_rate,
        use_energy=False,
        window_type="hanning",
        num_mel_bins=cfg.n_mels,
        dither=0.0,
        frame_length=cfg.frame_length_ms,
        frame_shift=cfg.frame_shift_ms,
    )


def pad_or_cut(features: torch.Tensor, target_length: int) -> torch.Tensor:
    """Zero-pad at the end, or cut the tail, to exactly target_length frames."""
    frames = features.shape[0]
    if frames < target_length:
        return torch.nn.functional.pad(features, (0, 0, 0, target_length - frames))
    return features[:target_length]


def normalise(features: torch.Tensor, cfg: FrontEndConfig) -> torch.Tensor:
    return (features - cfg.norm_mean) / (cfg.norm_divisor * cfg.norm_std)


def wave_to_features(wave, cfg: FrontEndConfig) -> torch.Tensor:
    """The whole front end for one clip: [samples] -> normalised [target_length, n_mels]."""
    return normalise(pad_or_cut(fbank(wave, cfg), cfg.target_length), cfg)


def samples_for_frames(frames: int, cfg: FrontEndConfig) -> int:
    """Waveform length that yields exactly `frames` fbank frames (Kaldi snip_edges)."""
    window = int(cfg.sample_rate * cfg.frame_length_ms / 1000)
    shift = int(cfg.sample_rate * cfg.frame_shift_ms / 1000)
    return window + shift * (frames - 1)


def front_end_dict(cfg: FrontEndConfig) -> dict:
    """The front end as plain data, recorded in stores and checkpoints to detect mismatches."""
    return {
        "sample_rate": cfg.sample_rate,
        "fbank": {
            "type": "kaldi",
            "n_mels": cfg.n_mels,
            "frame_length_ms": cfg.frame_length_ms,
            "frame_shift_ms": cfg.frame_shift_ms,
            "window": "hanning",
            "dither": 0.0,
            "htk_compat": True,
            "use_energy": False,
            "remove_dc": True,
        },
        "target_length": cfg.target_length,
        "norm": {"mean": cfg.norm_mean, "std": cfg.norm_std, "divisor": cfg.norm_divisor},
    }


def compute_norm_stats(waves, cfg: FrontEndConfig) -> tuple[float, float]:
    """Mean and std of un-normalised, un-padded fbank values over an iterable of waveforms."""
    total, total_sq, count = 0.0, 0.0, 0
    for wave in waves:
        feats = fbank(wave, cfg).double()
        total += float(feats.sum())
        total_sq += float((feats * feats).sum())
        count += feats.numel()
    if count == 0:
        raise ValueError("no training clips to compute normalisation stats from")
    mean = total / count
    std = max((total_sq / count - mean * mean), 0.0) ** 0.5
    return mean, std
