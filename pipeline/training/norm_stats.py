"""Normalisation statistics of a dataset's training clips, recorded as ``norm_stats`` in its dataset.json.

Two methods (docs/method.md, "Normalisation statistics"): ``upstream``, the procedure of AST's
``src/get_norm_stats.py`` on this project's training loader, so a new dataset's numbers are comparable
with the published ones; ``clean``, every value of each clip's clean, unpadded fbank pooled.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..audio_hdf5 import HDF5Rows
from ..audio_source import read_clip_audio
from ..config import Config
from ..features import compute_norm_stats
from ..manifests import Clip, Manifest, load_manifest, training_clips
from ..manifests.derived import sample_clips
from ..manifests.records import update_dataset_info
from ..progress import bar_options

NORM_METHODS = ("upstream", "clean")
UPSTREAM_BATCH = 1000  # the loader batch of AST's get_norm_stats.py


def compute_dataset_norm_stats(
    manifest_dir: str | Path, config: Config, max_clips: int = 0, method: str = "upstream", progress: bool = True
) -> dict:
    """Normalisation statistics of the training clips; stored as ``norm_stats`` in dataset.json and returned.

    ``upstream`` (default) computes them as AST's ``src/get_norm_stats.py`` does, so the numbers are
    comparable with the published ones: the training loader's un-normalised features (mixup,
    SpecAugment masks and zero padding to ``target_length`` included, from the recipe), in batches
    of 1000 in manifest order; the mean of the batch means and the mean of the batch standard
    deviations. ``clean`` pools every value of the clean, unpadded fbank of each clip instead.
    """
    from tqdm import tqdm

    if method not in NORM_METHODS:
        raise ValueError(f"norm-stats method must be one of {NORM_METHODS}, got {method!r}")
    manifest = load_manifest(manifest_dir)
    clips = sample_clips(training_clips(manifest), max_clips)
    if not clips:
        raise ValueError(f"{manifest.name}: no training clips (split 'train') to compute normalisation stats from")
    if method == "clean":
        rows = HDF5Rows(manifest.data_root)  # clips may be rows of AudioSet HDF5 files
        waves = (
            read_clip_audio(manifest.data_root, c.path, rows)
            for c in tqdm(clips, unit="clip", desc="norm stats", **bar_options(progress))
        )
        mean, std = compute_norm_stats(waves, config.raw_front_end())
    else:
        mean, std = loader_norm_stats(manifest, clips, config, progress)
    stats = {"norm_mean": mean, "norm_std": std, "n_mels": config.n_mels, "clips": len(clips), "method": method}
    if method == "upstream":
        stats.update(
            {"target_length": config.target_length, "freqm": config.freqm, "timem": config.timem, "mixup": config.mixup}
        )
    update_dataset_info(manifest_dir, norm_stats=stats)
    return stats


def loader_norm_stats(
    manifest: Manifest, clips: list[Clip], config: Config, progress: bool = True, batch_size: int = UPSTREAM_BATCH
) -> tuple[float, float]:
    """(mean of batch means, mean of batch standard deviations) of the training features with the
    normalisation left out: upstream's procedure, on this project's loader (views of epoch 1)."""
    import torch
    from tqdm import tqdm

    from ..augment import AugmentSettings
    from .dataset import ClipDataset

    dataset = ClipDataset(
        manifest, clips, config.raw_front_end(), AugmentSettings.from_config(config), seed=config.seed, partners=clips
    )
    dataset.set_epoch(1)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=config.num_workers)
    means, stds = [], []
    for batch in tqdm(loader, unit="batch", desc="norm stats", **bar_options(progress)):
        features = batch["features"].double()
        means.append(float(features.mean()))
        stds.append(float(features.std()))  # torch's default, the unbiased estimate, as upstream
    return float(np.mean(means)), float(np.mean(stds))
