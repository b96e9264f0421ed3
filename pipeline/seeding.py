"""The one place seeds, threads and the device are set, so CPU runs are reproducible."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed every global RNG. Data randomness does not rely on these: views and epoch orders are
    keyed by (seed, clip, epoch) explicitly, so they survive resume and changes of worker count."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    # warn_only: a few CPU kernels have no deterministic variant; the ones we use do
    torch.use_deterministic_algorithms(True, warn_only=True)


def pick_device(requested: str = "auto") -> str:
    """The device a run (training or stage one) uses: ``auto`` is the GPU when there is one, else the CPU;
    anything else (``cpu``, ``cuda``, ``cuda:1``) as given."""
    if requested != "auto":
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


def set_threads(threads: int = 0) -> int:
    """Intra-op threads for this process (0: one per core). Worker processes should use 1."""
    count = threads or os.cpu_count() or 1
    torch.set_num_threads(count)
    return count


def worker_init(_worker_id: int) -> None:
    """DataLoader workers: one thread each, so workers x threads never oversubscribes the cores."""
    torch.set_num_threads(1)
