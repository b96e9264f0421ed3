"""Worker side of stage one: compute one chunk (a work unit) of clips and write it into the store.

Runs inside a dask worker (or in-process). A task carries a small plain-data spec and its own row
range, nothing that grows with the dataset: each worker process reads the manifest, the mixup
partner pool (the manifest's training clips) and the teacher set (which member labels which clip)
once, and caches them with the loaded teachers. Decoding runs on CPU threads one block ahead of the
device (prefetch), which runs the front end and the teacher batched (:mod:`.batches`).
"""

from __future__ import annotations

import contextlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from ..audio_source import AudioSource
from ..augment import AugmentSettings, draw_view
from ..config import FrontEndConfig
from ..manifests import Manifest, load_manifest
from .batches import Block, compute_block
from .teachers import TeacherSet, load_teacher_set

_TEACHERS: dict[tuple[str, str], torch.nn.Module] = {}  # per process: (checkpoint, device) -> model
_SOURCES: dict = {}  # per process: (manifest dir, teacher, fold) -> WorkerSource


@dataclass(frozen=True)
class ChunkSpec:
    """Everything a worker needs, as plain data (pickled to dask workers): the same for every task."""

    store_path: str
    manifest_dir: str
    teacher: str  # what load_teacher_set reads: a run dir, a cross-fitted run dir or a checkpoint
    front_end: dict
    views: int
    view_seed: int
    augment: dict  # AugmentSettings fields
    partner_fold: int | None = None  # fold-based data: mixup partners from the teacher's training folds
    batch_size: int = 16
    threads: int = 1
    device: str = "cpu"
    decode_threads: int = 0  # 0: decode in the task's thread (a CPU device has no idle core to overlap with);
    # -1: as many threads as this worker process may use cores (a GPU worker of a remote cluster)
    shard_clips: int = 0  # rows per store file (0: one chunk per file): chunks of one file take turns writing


@dataclass
class WorkerSource:
    """What a worker process reads once: the manifest, its clips by id, the audio and the partner pool."""

    manifest: Manifest
    by_id: dict
    audio: AudioSource
    partners: tuple[str, ...]  # read-only, shared by every view this process draws; never copied
    teachers: TeacherSet


def prime_teachers(models: dict[str, torch.nn.Module], device: str) -> None:
    """Hand this process already built teachers (inline runs), so checkpoints are not read twice."""
    _TEACHERS.update({(path, str(device)): model.eval() for path, model in models.items()})


def _teacher(path: str, device: torch.device) -> torch.nn.Module:
    key = (path, str(device))
    if key not in _TEACHERS:
        from ..checkpoints import model_from_checkpoint

        model, _, _ = model_from_checkpoint(path)
        _TEACHERS[key] = model.to(device).eval()
    return _TEACHERS[key]


def worker_source(spec: ChunkSpec) -> WorkerSource:
    key = (spec.manifest_dir, spec.teacher, spec.partner_fold)
    if key not in _SOURCES:
        manifest = load_manifest(spec.manifest_dir)
        partners = tuple(c.clip_id for c in manifest.select("train", spec.partner_fold))
        _SOURCES[key] = WorkerSource(
            manifest,
            {c.clip_id: c for c in manifest.clips},
            AudioSource(manifest),
            partners,
            load_teacher_set(spec.teacher),
        )
    return _SOURCES[key]


def worker_device(device: str) -> torch.device:
    """One teacher process per GPU: a local cluster's worker n takes GPU n (mod the count)."""
    if device == "cuda" and torch.cuda.device_count() > 1:
        with contextlib.suppress(ImportError, ValueError):
            from distributed import get_worker

            name = get_worker().name
            if isinstance(name, int) or str(name).isdigit():
                return torch.device(f"cuda:{int(name) % torch.cuda.device_count()}")
    return torch.device(device)


def shard_lock(spec: ChunkSpec, start: int):
    """Chunks of one store file are written one at a time (zarr rewrites the whole file): a dask lock
    per file when tasks run on a cluster; nothing to share inline (one process) or unsharded."""
    if spec.shard_clips <= 0:
        return contextlib.nullcontext()
    try:
        from distributed import Lock, get_worker

        get_worker()
    except (ImportError, ValueError):
        return contextlib.nullcontext()
    return Lock(f"cmkd-store-file:{spec.store_path}:{start // spec.shard_clips}")


def _read(audio: AudioSource, clip):
    """(wave, None), or (None, why) for a clip that cannot be read or whose audio no longer matches
    its manifest row (AudioSource.read checks the fingerprint of the samples it decoded)."""
    try:
        return audio.read(clip), None
    except Exception as error:  # any unreadable clip: recorded and masked, never filled
        return None, f"{type(error).__name__}: {_without_root(str(error), audio.data_root)}"


def _without_root(text: str, root) -> str:
    """Failure texts travel inside a published store: paths relative to the data root, never the
    writer's own folder layout (user names included)."""
    for prefix in {str(root), str(root.resolve())}:
        text = text.replace(prefix.rstrip("/") + "/", "")
    return text


def decoded_blocks(blocks: list[range], clips, all_views, source: WorkerSource, threads: int):
    """Yield each block's ``(rows, reads, partner reads)``, every read a ``(wave, error)`` pair (each
    mixup partner decoded once per block). With ``threads`` > 0 the next block decodes on a thread pool
    while the caller computes this one (the device never waits for audio it could have had); with 0
    everything decodes in the calling thread, one block at a time."""

    def partners_of(rows: range) -> list[str]:
        return list(dict.fromkeys(v.partner for row in rows for v in all_views[row] if v.partner))

    if threads <= 0:
        for rows in blocks:
            yield (
                rows,
                [_read(source.audio, clips[row]) for row in rows],
                {p: _read(source.audio, source.by_id[p]) for p in partners_of(rows)},
            )
        return
    with ThreadPoolExecutor(threads) as pool:

        def submit(rows: range):
            return (
                [pool.submit(_read, source.audio, clips[row]) for row in rows],
                {p: pool.submit(_read, source.audio, source.by_id[p]) for p in partners_of(rows)},
            )

        ahead = submit(blocks[0]) if blocks else None
        for number, rows in enumerate(blocks):
            assert ahead is not None  # submitted for this block: before the loop, or by the previous turn
            reads, partner_reads = ahead
            ahead = submit(blocks[number + 1]) if number + 1 < len(blocks) else None
            yield rows, [r.result() for r in reads], {p: r.result() for p, r in partner_reads.items()}


def compute_chunk(spec: ChunkSpec, chunk_index: int, start: int, stop: int) -> dict:
    """Compute rows [start, stop) and write them; returns the chunk's checksum and failures."""
    from ..models import model_config_of
    from ..store import views_to_arrays, write_chunk

    torch.set_num_threads(spec.threads)
    source = worker_source(spec)
    device = worker_device(spec.device)
    front_end = FrontEndConfig(**spec.front_end)
    models = [_teacher(path, device) for path in source.teachers.checkpoints]
    clips = source.manifest.clips[start:stop]
    settings = AugmentSettings(**spec.augment)
    all_views = [
        [
            draw_view(
                spec.view_seed, clip.clip_id, k, source.partners, settings, front_end.n_mels, front_end.target_length
            )
            for k in range(spec.views)
        ]
        for clip in clips
    ]
    members = [source.teachers.member_for(clip.clip_id) for clip in clips]
    num_classes = int(model_config_of(models[0])["num_classes"])
    logits = np.full((len(clips), num_classes), np.nan, dtype=np.float32)  # failed rows stay NaN
    view_logits = np.full((len(clips), spec.views, num_classes), np.nan, dtype=np.float32)
    failures, valid = [], np.zeros(len(clips), dtype=bool)
    per_block = max(1, spec.batch_size // (1 + spec.views))  # about one forward batch of inputs per block
    blocks = [range(lo, min(lo + per_block, len(clips))) for lo in range(0, len(clips), per_block)]
    threads = _worker_cores() if spec.decode_threads < 0 else spec.decode_threads
    for rows, reads, partner_reads in decoded_blocks(blocks, clips, all_views, source, threads):
        block = Block([], [], [], [], [])
        for row, (wave, error) in zip(rows, reads):
            if wave is None:
                failures.append((clips[row].clip_id, error))
                continue
            valid[row] = True
            block.rows.append(row)
            block.waves.append(wave)
            block.views.append(all_views[row])
            block.members.append(members[row])
            # an unreadable partner leaves its view NaN: stage two masks that view alone
            block.partners.append([partner_reads[v.partner][0] if v.partner else None for v in all_views[row]])
        if not block.rows:
            continue
        for row, k, values in compute_block(block, models, front_end, device, spec.batch_size):
            if k < 0:
                logits[row] = values
            else:
                view_logits[row, k] = values
    view_arrays = views_to_arrays(all_views) if spec.views else None
    with shard_lock(spec, start):
        checksum = write_chunk(
            spec.store_path,
            chunk_index,
            logits,
            valid,
            view_logits=view_logits if spec.views else None,
            view_arrays=view_arrays,
            teacher_index=np.array(members, dtype=np.int16),
        )
    return {"chunk": chunk_index, "sha256": checksum, "failures": failures, "clips": len(clips)}


def _worker_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))  # a batch job's allocation, not the node's core count
    except AttributeError:
        return os.cpu_count() or 1


def default_decode_threads(workers: int) -> int:
    """Decoding threads per worker: the cores a worker's share leaves (at least one, ahead of the device)."""
    return max(1, (os.cpu_count() or 1) // max(workers, 1))
