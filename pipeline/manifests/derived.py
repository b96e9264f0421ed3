"""Things computed once from a finished manifest: packed HDF5 audio (normalisation statistics:
:mod:`pipeline.training.norm_stats`). Recorded in dataset.json so every later stage finds them through the
manifest alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..audio import PACK_FORMAT, PACK_VERSION, pack_clips
from ..audio_hdf5 import HDF5Rows
from ..audio_source import read_clip_audio
from ..paths import PACKED_ROOT
from .records import Clip, Manifest, load_manifest, manifest_hashes, update_dataset_info

PACK_STAMP = "pack.json"


def training_clips(manifest: Manifest) -> list[Clip]:
    """The clips normalisation stats may see: split 'train', or every clip of fold-based data.

    Fold-based sets (ESC-50) use all folds, like the AST recipe: the stats are two scalars, so the
    leak from the held-out fold is negligible and one set of stats serves all five folds.
    """
    if manifest.fold_based:
        return list(manifest.clips)
    return [c for c in manifest.clips if c.split == "train"]


def sample_clips(clips: list[Clip], max_clips: int, seed: int = 0) -> list[Clip]:
    """A fixed subset (same seed -> same clips), kept in manifest order."""
    if not max_clips or len(clips) <= max_clips:
        return clips
    chosen = np.random.default_rng(seed).choice(len(clips), size=max_clips, replace=False)
    return [clips[i] for i in sorted(chosen)]


def pack_dataset(
    manifest_dir: str | Path, packed_root: str | Path = PACKED_ROOT, shard_clips: int = 20000, progress: bool = True
) -> list[Path]:
    """Pack every clip into ``packed_root/<name>/audio_*.h5``; a rerun skips finished shards.

    Shards are only reused when ``pack.json`` says they were cut from this very clips.csv with the same
    shard size; otherwise they would silently hold another manifest's clips, so they are rebuilt.
    """
    manifest_dir = Path(manifest_dir)
    manifest = load_manifest(manifest_dir)
    if shard_clips < 1:
        raise ValueError(f"shard_clips must be at least 1, got {shard_clips}")
    out_dir = Path(packed_root) / manifest.name
    stamp = {
        "format": PACK_FORMAT,
        "version": PACK_VERSION,
        "shard_clips": shard_clips,
        "clips.csv": manifest_hashes(manifest_dir)["clips.csv"],
    }
    stamp_path = out_dir / PACK_STAMP
    old_stamp = json.loads(stamp_path.read_text()) if stamp_path.exists() else None
    if old_stamp != stamp:
        for stale in list(out_dir.glob("audio_*.h5")) + list(out_dir.glob("audio_*.h5.tmp")):
            stale.unlink()
        out_dir.mkdir(parents=True, exist_ok=True)
        stamp_path.write_text(json.dumps(stamp, indent=2) + "\n")
    rows = HDF5Rows(manifest.data_root)
    shards = pack_clips(
        manifest.clips,
        manifest.data_root,
        out_dir,
        shard_clips,
        progress,
        read=lambda clip: read_clip_audio(manifest.data_root, clip.path, rows),
    )
    update_dataset_info(manifest_dir, packed=[str(p) for p in shards])
    return shards
