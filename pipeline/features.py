"""The front end: waveform -> Kaldi fbank -> pad/cut -> normalise (AST/PSLA recipe).

One clip at a time it uses torchaudio's Kaldi-compatible fbank rather than a re-implementation, so
features match the published AST and PSLA checkpoints. :func:`fbank_batch` is the same computation
for a padded batch on any device (built from torchaudio's own window and mel banks; equal to the
per-clip path within float rounding, `tests/test_features.py`); pad/cut and normalise are shared.
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


def window_samples(cfg: FrontEndConfig) -> tuple[int, int]:
    """(window, shift) of one fbank frame in samples."""
    return int(cfg.sample_rate * cfg.frame_length_ms / 1000), int(cfg.sample_rate * cfg.frame_shift_ms / 1000)


def frame_counts(lengths: torch.Tensor, cfg: FrontEndConfig) -> torch.Tensor:
    """Fbank frames of clips of these sample counts (snip_edges; a clip shorter than a window gets one)."""
    window, shift = window_samples(cfg)
    return 1 + torch.clamp(lengths - window, min=0) // shift


def fbank_batch(waves: torch.Tensor, lengths: torch.Tensor, cfg: FrontEndConfig, centred: bool = False) -> torch.Tensor:
    """Padded waveforms [B, samples] (row i valid up to lengths[i]) -> log-mel [B, target_length, n_mels],
    zero past each clip's own frames: `pad_or_cut(fbank(wave))` of every row, computed together on
    the waves' device. Kaldi settings as :func:`fbank`: DC offset of the whole clip removed, per-frame
    DC removal, pre-emphasis 0.97, Hann window, power spectrum, log floored at float eps. `centred`:
    each row already had its whole clip's mean removed (and may be cut to the target's samples)."""
    from torchaudio.compliance.kaldi import get_mel_banks

    window, shift = window_samples(cfg)
    waves, lengths = waves.float(), lengths.to(waves.device)
    valid = torch.arange(waves.shape[1], device=waves.device)[None, :] < lengths[:, None]
    if not centred:  # the clip's DC offset, then zeros past its end (as per-clip padding)
        waves = waves - (waves * valid).sum(dim=1, keepdim=True) / lengths.clamp(min=1)[:, None]
    waves = waves * valid
    needed = samples_for_frames(cfg.target_length, cfg)  # frames past target_length are cut anyway
    if waves.shape[1] < needed:
        waves = torch.nn.functional.pad(waves, (0, needed - waves.shape[1]))
    frames = waves[:, :needed].unfold(1, window, shift)  # [B, target_length, window]
    frames = frames - frames.mean(dim=2, keepdim=True)
    previous = torch.cat([frames[:, :, :1], frames[:, :, :-1]], dim=2)
    frames = frames - 0.97 * previous
    frames = frames * torch.hann_window(window, periodic=False, device=waves.device, dtype=waves.dtype)
    padded = 1 << (window - 1).bit_length()
    spectrum = torch.fft.rfft(frames, n=padded)
    spectrum = spectrum.real.square() + spectrum.imag.square()  # |X|^2 without abs()'s sqrt (5x faster on CPU)
    banks, _ = get_mel_banks(cfg.n_mels, padded, float(cfg.sample_rate), 20.0, 0.0, 100.0, -500.0, 1.0)
    banks = torch.nn.functional.pad(banks.to(waves.device, waves.dtype), (0, 1))
    log_mel = torch.clamp(spectrum @ banks.T, min=torch.finfo(waves.dtype).eps).log()
    keep = torch.arange(cfg.target_length, device=waves.device)[None, :] < frame_counts(lengths, cfg)[:, None]
    return torch.where(keep[:, :, None], log_mel, 0.0)


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
