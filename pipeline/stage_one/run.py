"""Stage one: run a teacher (or k cross-fitted teachers) once over every clip into a Zarr store.

One dask task per store chunk (the work unit, 256 clips by default; several chunks share a store
file); each worker computes and writes whole chunks (chunks of one file take turns under a dask
lock), and only this client records which chunks are done and their checksums. A task carries its
row range and a small spec, never per-clip lists. Rerunning skips done chunks, so a killed run
resumes; a second writer is refused by the store's lock.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from ..audio import AudioChanged
from ..augment import AugmentSettings
from ..checkpoints import model_from_state
from ..cluster import ClusterResources, open_client
from ..config import Config, FrontEndConfig, config_from_dict
from ..config_check import check_config
from ..features import front_end_dict
from ..manifests import load_manifest, manifest_hashes
from ..progress import bar_options
from ..seeding import pick_device
from .compute import ChunkSpec, compute_chunk, default_decode_threads, prime_teachers
from .teachers import load_members, load_teacher_set, teacher_provenance


@dataclass
class StageOneJob:
    dataset: str
    teacher: str  # run dir, cross-fitted run dir, or checkpoint file
    out: str
    views: int = 0
    view_seed: int = 0
    augment: AugmentSettings | None = None  # None: the teacher's own training augmentation
    scheduler: str = ""  # "" local cluster, "inline" in this process, "slurm" SLURM jobs, else a scheduler address
    cluster: ClusterResources = field(default_factory=ClusterResources)  # SCHEDULER=slurm: each job's resources
    workers: int = 0  # local cluster size (0: one per core)
    topk: int = 0
    dtype: str = "float16"
    overwrite: bool = False
    batch_size: int = 0  # inputs per teacher forward; 0: 16 on a CPU, 256 on a GPU
    chunk_clips: int | None = None  # rows per work unit (default: format.UNIT_CLIPS)
    manifests_root: str = "data_manifests"
    device: str = "auto"
    vocab_remap: bool = False  # a teacher whose classes differ from the dataset's in order (or as a superset)
    changed_audio: str = (
        "fail"  # a clip whose audio no longer matches its manifest row: fail (recorded, masked) | error
    )


def prepare(job: StageOneJob):
    """Create (or reopen for resume) the store; returns (chunk spec, manifest, teachers, store attrs)."""
    from ..store import create_store

    manifest_dir = Path(job.manifests_root) / job.dataset
    manifest = load_manifest(manifest_dir)
    teachers = load_teacher_set(job.teacher)
    loaded = load_members(teachers)
    first = loaded[teachers.checkpoints[0]]
    # the teacher's recipe came with its checkpoint: its values are checked before they set the views
    teacher_config = check_config(config_from_dict(first["config"]), source=f"{teachers.checkpoints[0]} (recipe)")
    front_end = FrontEndConfig(**first["front_end"])
    augment = job.augment or AugmentSettings.from_config(teacher_config)
    vocabulary = first["vocabulary"]
    # the vocabulary first: a teacher of another dataset is refused for what it is (another label set),
    # not for the fold layout that follows from it
    check_vocabulary(vocabulary.get("mids", []), manifest, job)
    partner_fold = _teacher_fold(manifest, teacher_config, job)
    attrs = {
        "teacher": teacher_provenance(teachers, loaded),
        "front_end": front_end_dict(front_end),
        "manifest": {
            "name": manifest.name,
            "sha256": manifest_hashes(manifest_dir),
            "format": manifest.info.get("format"),
        },
        "views": {"count": job.views, "seed": job.view_seed, "settings": dataclasses.asdict(augment)},
    }
    create_store(
        job.out,
        clip_ids=[c.clip_id for c in manifest.clips],
        splits=[c.split for c in manifest.clips],
        folds=[c.fold or 0 for c in manifest.clips],
        vocabulary_mids=vocabulary["mids"],
        vocabulary_names=vocabulary["names"],
        activation=first.get("activation", "sigmoid"),
        attrs=attrs,
        views=job.views,
        view_seed=job.view_seed,
        dtype=job.dtype,
        topk=job.topk,
        chunk_clips=job.chunk_clips,
        overwrite=job.overwrite,
        fingerprints=[c.fingerprint for c in manifest.clips],
    )
    # SLURM jobs with GPUs: the workers' device, whatever the submitting login node has
    slurm_gpus = job.device == "auto" and job.scheduler == "slurm" and job.cluster.gpus > 0
    device = "cuda" if slurm_gpus else pick_device(job.device)
    layout = store_layout(job.out)
    spec = ChunkSpec(
        store_path=str(Path(job.out).resolve()),
        manifest_dir=str(manifest_dir.resolve()),
        teacher=str(Path(job.teacher).resolve()),
        front_end=dataclasses.asdict(front_end),
        views=job.views,
        view_seed=job.view_seed,
        augment=dataclasses.asdict(augment),
        partner_fold=partner_fold,
        batch_size=job.batch_size or (256 if device == "cuda" else 16),
        device=device,
        shard_clips=layout.shard_clips if layout.sharded else 0,
    )
    if job.scheduler == "inline":  # this process computes the chunks: build the models from what is loaded
        prime_teachers({path: model_from_state(ckpt).to(device) for path, ckpt in loaded.items()}, device)
    return spec, manifest, teachers, attrs


def store_layout(path):
    from ..store.format import open_store

    return open_store(path)[1]


def check_vocabulary(teacher_mids: list[str], manifest, job: StageOneJob) -> None:
    """A store is only worth writing if stage two can use it: every class of the dataset must be one
    of the teacher's (by mid), and any other order or extra classes need vocab_remap, the flag stage
    two then maps them with. Refused before the store is touched (and before LATEST moves)."""
    from ..manifests.vocabulary import class_map_for

    if not set(teacher_mids) & set(manifest.mids):
        raise ValueError(
            f"{job.teacher}: the teacher's vocabulary ({len(teacher_mids)} classes, e.g. "
            f"{list(teacher_mids)[:3]}) shares no class with {manifest.name} (e.g. {manifest.mids[:3]}); "
            f"this teacher was trained on other labels"
        )
    class_map_for(teacher_mids, manifest, job.vocab_remap, job.teacher)


def _teacher_fold(manifest, teacher_config: Config, job: StageOneJob) -> int | None:
    """Fold-based data: mixup partners come from the teacher's own training folds only, so no
    augmented view ever carries audio of the fold its student will be evaluated on."""
    if not manifest.fold_based:
        return None
    if teacher_config.fold is None:
        raise ValueError(
            f"{job.teacher}: {manifest.name} is fold-based; point TEACHER at one fold's run "
            f"(e.g. runs/{manifest.name}/<run>/fold1)"
        )
    return teacher_config.fold


def run_stage_one(job: StageOneJob, progress: bool = True) -> dict:
    try:
        return _run_locked(job, progress)
    except OSError as error:  # zarr's write errors name no file: say which store could not be written
        if error.filename is None and error.errno is not None:
            raise OSError(error.errno, error.strerror or str(error), str(job.out)) from error
        raise


def _run_locked(job: StageOneJob, progress: bool) -> dict:
    from ..store import StoreLock, chunk_plan, done_chunks, finalize_store, mark_chunk_done

    # the lock comes first: OVERWRITE deletes, and a resume appends to the sessions log
    with StoreLock(job.out):
        spec, manifest, teachers, attrs = prepare(job)
        started = time.time()
        plan = chunk_plan(job.out)
        done = done_chunks(job.out)
        todo = [c for c in plan if c[0] not in done]
        total_clips = sum(stop - start for _, start, stop in todo)
        bar = tqdm(total=total_clips, unit="clip", desc="teacher-logits", **bar_options(progress))
        failures: list = []
        if done:
            print(f"resuming: {len(done)}/{len(plan)} chunks already done")
        if job.changed_audio not in CHANGED_AUDIO:
            raise ValueError(f"changed_audio must be one of {CHANGED_AUDIO}, got {job.changed_audio!r}")
        for result in _results(job, spec, todo):
            mark_chunk_done(job.out, result["chunk"], result["sha256"], result["failures"])
            changed = [(clip, why) for clip, why in result["failures"] if why.startswith(AudioChanged.__name__)]
            if changed and job.changed_audio == "error":
                # the chunk is recorded (nothing finished is lost); the run stops at the first such clip
                raise AudioChanged(
                    f"{changed[0][1].split(': ', 1)[1]} (clip {changed[0][0]}; CHANGED_AUDIO=error "
                    f"stops here, {len(done_chunks(job.out))}/{len(plan)} chunks kept)"
                )
            failures.extend(result["failures"])
            bar.update(result["clips"])
            bar.set_postfix(
                clips_s=f"{bar.n / max(time.time() - started, 1e-9):.1f}", failures=len(failures), refresh=False
            )  # shown at the next redraw: no extra log line per chunk
        bar.close()
        seconds = time.time() - started
        summary = {
            "clips": len(manifest.clips),
            "computed_clips": total_clips,
            "chunks": len(plan),
            "failures": len(failures),
            "seconds": round(seconds, 3),
            "views": job.views,
            "cross_fitted": teachers.cross_fitted,
            "engine": _engine_name(job),
        }
        if teachers.cross_fitted:
            summary["teachers"] = len(teachers.checkpoints)
            summary["out_of_fold"] = attrs["teacher"].get("out_of_fold", {})
        finalize_store(job.out, summary)
    return summary


CHANGED_AUDIO = ("fail", "error")
CPU_THREADS = 1  # torch threads per stage-one process on a CPU, whatever the engine (ChunkSpec.threads)


def _engine_name(job: StageOneJob) -> str:
    return "inline" if job.scheduler == "inline" else (job.scheduler or "local-cluster")


def local_workers(device: str) -> int:
    """One worker per core on a CPU; one teacher process per GPU (its CPU share decodes audio)."""
    if device == "cuda":
        import torch

        return max(torch.cuda.device_count(), 1)
    return os.cpu_count() or 1


def start_local_cluster(workers: int):
    """The LocalCluster stage one starts (:func:`pipeline.cluster.local_cluster`)."""
    from ..cluster import local_cluster

    return local_cluster(workers)


def _results(job: StageOneJob, spec: ChunkSpec, todo: list):
    """Yield chunk results as they finish: in this process, or as dask tasks."""
    if job.scheduler == "inline":
        # on a CPU one torch thread, as each cluster worker has: torch splits a convolution's or matmul's
        # reduction by thread count, so two threads moved the last bits of logits (3e-8 in every row of
        # the tiny test store; 7.6e-6 in 5 of 320 demo rows) and the two engines' digests differed. A
        # store must not depend on the engine that computed it, and a resume may switch engines. On a
        # GPU the model runs on the device and the cores decode ahead of it.
        spec = dataclasses.replace(
            spec,
            threads=CPU_THREADS if spec.device == "cpu" else max(os.cpu_count() or 1, 1),
            decode_threads=default_decode_threads(1) if spec.device == "cuda" else 0,
        )
        for index, start, stop in todo:
            yield compute_chunk(spec, index, start, stop)
        return
    from distributed import Client, as_completed

    if job.scheduler:
        client, cluster = (
            open_client("slurm", job.cluster, 0) if job.scheduler == "slurm" else (Client(job.scheduler), None)
        )
        if spec.device == "cuda":  # each remote GPU worker decodes on the cores its job was given
            spec = dataclasses.replace(spec, decode_threads=-1)
    else:
        workers = job.workers or local_workers(spec.device)
        cluster = start_local_cluster(workers)
        client = Client(cluster)
        if spec.device == "cuda":  # a GPU worker's CPU share decodes audio ahead of its device
            spec = dataclasses.replace(spec, decode_threads=default_decode_threads(workers))
    try:
        futures = [
            client.submit(compute_chunk, spec, index, start, stop, key=f"chunk-{index}-{spec.store_path}", pure=False)
            for index, start, stop in todo
        ]
        for future in as_completed(futures):
            yield future.result()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
