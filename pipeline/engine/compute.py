"""Worker side of stage one: compute one chunk of clips and write it into the store.

Runs inside a dask worker (or in-process). It opens the store, the manifest and the audio itself
and caches loaded teachers per process, so a task carries only a small plain-data spec.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..audio import AudioSource
from ..augment import AugmentSettings, draw_view, render_view
from ..config import FrontEndConfig
from ..features import wave_to_features
from ..manifests import load_manifest
from .teachers import MEAN_OF_TEACHERS

_TEACHERS: dict[str, torch.nn.Module] = {}  # per process: checkpoint path -> model
_MANIFESTS: dict = {}


@dataclass(frozen=True)
class ChunkSpec:
    """Everything a worker needs, as plain data (pickled to dask workers)."""

    store_path: str
    manifest_dir: str
    checkpoints: tuple[str, ...]
    held_out: tuple[tuple[str, int], ...]  # cross-fitting: clip_id -> member; empty for one teacher
    front_end: dict
    views: int
    view_seed: int
    augment: dict  # AugmentSettings fields
    partner_ids: tuple[str, ...]  # mixup partner pool (the training clips)
    batch_size: int = 16
    threads: int = 1
    device: str = "cpu"


def prime_teachers(models: dict[str, torch.nn.Module]) -> None:
    """Hand this process already built teachers (inline runs), so checkpoints are not read twice."""
    _TEACHERS.update({path: model.eval() for path, model in models.items()})


def _teacher(path: str, device: str) -> torch.nn.Module:
    if path not in _TEACHERS:
        from ..checkpoints import model_from_checkpoint

        model, _, _ = model_from_checkpoint(path)
        _TEACHERS[path] = model.to(device).eval()
    return _TEACHERS[path]


def _manifest(manifest_dir: str):
    if manifest_dir not in _MANIFESTS:
        manifest = load_manifest(manifest_dir)
        _MANIFESTS[manifest_dir] = (manifest, {c.clip_id: c for c in manifest.clips}, AudioSource(manifest))
    return _MANIFESTS[manifest_dir]


@torch.no_grad()
def _forward(models: list[torch.nn.Module], members: np.ndarray, inputs: list[torch.Tensor], batch_size: int,
             device: str) -> np.ndarray:
    """Logits per input: from its member teacher, or the mean over all members (member -1)."""
    results = []
    for start in range(0, len(inputs), batch_size):
        batch = torch.stack(inputs[start : start + batch_size]).to(device)
        with torch.autocast(device_type="cuda", enabled=device.startswith("cuda")):
            per_model = np.stack([m(batch).float().cpu().numpy() for m in models])  # [members, batch, classes]
        chosen = members[start : start + batch.shape[0]]
        rows = per_model[np.maximum(chosen, 0), np.arange(batch.shape[0])]
        rows[chosen == MEAN_OF_TEACHERS] = per_model.mean(axis=0)[chosen == MEAN_OF_TEACHERS]
        results.append(rows)
    return np.concatenate(results).astype(np.float32)


def compute_chunk(spec: ChunkSpec, chunk_index: int, start: int, stop: int) -> dict:
    """Compute rows [start, stop) and write them; returns the chunk's checksum and failures."""
    from ..store import write_chunk

    torch.set_num_threads(spec.threads)
    manifest, by_id, audio = _manifest(spec.manifest_dir)
    front_end = FrontEndConfig(**spec.front_end)
    models = [_teacher(p, spec.device) for p in spec.checkpoints]
    held_out = dict(spec.held_out)
    clips = manifest.clips[start:stop]
    settings = AugmentSettings(**spec.augment)
    waves, failures = {}, []
    for clip in clips:
        try:
            waves[clip.clip_id] = audio.read(clip)
        except Exception as error:  # any unreadable clip: recorded and masked, never filled
            failures.append((clip.clip_id, f"{type(error).__name__}: {error}"))
    ok = [c for c in clips if c.clip_id in waves]
    members = np.array([held_out.get(c.clip_id, MEAN_OF_TEACHERS) if len(models) > 1 else 0 for c in ok])
    num_classes = int(models[0].model_config["num_classes"])
    logits = np.full((len(clips), num_classes), np.nan, dtype=np.float32)  # failed rows stay NaN
    if ok:
        clean = _forward(models, members, [wave_to_features(waves[c.clip_id], front_end) for c in ok],
                         spec.batch_size, spec.device)
        position = {c.clip_id: i for i, c in enumerate(clips)}
        logits[[position[c.clip_id] for c in ok]] = clean
    valid = np.array([c.clip_id in waves for c in clips])
    teacher_index = np.array([held_out.get(c.clip_id, MEAN_OF_TEACHERS) if len(models) > 1 else 0 for c in clips],
                             dtype=np.int16)
    view_logits, view_arrays = None, None
    if spec.views > 0:
        view_logits, view_arrays = _views(spec, clips, waves, by_id, audio, models, settings, front_end, num_classes,
                                          held_out)
    checksum = write_chunk(spec.store_path, chunk_index, logits, valid, view_logits=view_logits,
                           view_arrays=view_arrays, teacher_index=teacher_index)
    return {"chunk": chunk_index, "sha256": checksum, "failures": failures, "clips": len(clips)}


def _views(spec, clips, waves, by_id, audio, models, settings, front_end, num_classes, held_out):
    """K augmented views per clip, drawn from (seed, clip_id, k) and computed by the same teacher rule."""
    from ..store import views_to_arrays

    all_views, inputs, where = [], [], []
    partner_cache: dict[str, np.ndarray | None] = {}
    for row, clip in enumerate(clips):
        views = [draw_view(spec.view_seed, clip.clip_id, k, list(spec.partner_ids), settings, front_end.n_mels,
                           front_end.target_length) for k in range(spec.views)]
        all_views.append(views)
        if clip.clip_id not in waves:
            continue
        for k, view in enumerate(views):
            partner = None
            if view.partner:
                if view.partner not in partner_cache:
                    try:
                        partner_cache[view.partner] = waves.get(view.partner)
                        if partner_cache[view.partner] is None:  # partner outside this chunk
                            partner_cache[view.partner] = audio.read(by_id[view.partner])
                    except Exception:
                        partner_cache[view.partner] = None
                partner = partner_cache[view.partner]
                if partner is None:
                    continue  # partner unreadable: this view stays NaN and stage two masks it
            inputs.append(render_view(waves[clip.clip_id], partner, view, front_end))
            where.append((row, k))
    view_logits = np.full((len(clips), spec.views, num_classes), np.nan, dtype=np.float32)
    if inputs:
        members = np.array([held_out.get(clips[r].clip_id, MEAN_OF_TEACHERS) if len(models) > 1 else 0
                            for r, _ in where])
        values = _forward(models, members, inputs, spec.batch_size, spec.device)
        for (row, k), value in zip(where, values):
            view_logits[row, k] = value
    return view_logits, views_to_arrays(all_views)
