"""Model inputs for the model tests: a short spectrogram shape and seeded random features."""

from __future__ import annotations

import torch

SHORT = {"n_mels": 64, "target_length": 100}


def features(batch: int, n_mels: int = 64, target_length: int = 100) -> torch.Tensor:
    return torch.randn(batch, target_length, n_mels, generator=torch.Generator().manual_seed(1))
