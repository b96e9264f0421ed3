"""`make gpu-check`'s stage-one step: stage one at paper size against bare batched inference.

For one teacher (random-init, 128 x 1024 input, 527 classes) and a number of views, in one run:
stage one over packed int16 10-s clips (the engine in-process: decode threads, the batched front
end and the teacher on one device; store creation and the teacher load excluded, as a long run
amortises them) and the bare forward of the same teacher over the same number of inputs (random
features already on the device, the same batch size and AMP). The figure is their throughput
ratio, goal >= 0.90; the GPU's utilisation is sampled while stage one runs. The function runs on
any device, so its CPU-sized form is tested without a GPU (tests/bench/test_bench.py).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from pipeline.testing import save_random_teacher, write_generated_clips, write_generated_manifest

from .harness import median

GOAL = 0.90


@dataclass(frozen=True)
class PaperStageOne:
    clips: int = 1024
    clip_seconds: float = 10.0
    n_mels: int = 128
    target_length: int = 1024
    num_classes: int = 527
    batch_size: int = 256
    repeats: int = 2
    mixup: float = 0.5  # the AudioSet recipe's view augmentation (AST: mixup 0.5, freqm 48, timem 192)
    freqm: int = 48
    timem: int = 192


def packed_project(root: Path, params: PaperStageOne) -> str:
    """Generated WAVs, a manifest over them, packed into int16 HDF5 shards (what stage one then reads)."""
    from pipeline.manifests.derived import pack_dataset

    if not (root / "data_manifests" / "paper" / "clips.csv").exists():
        wavs = write_generated_clips(root / "audio", params.clips, params.clip_seconds)
        write_generated_manifest(root, "paper", wavs, params.num_classes, params.clip_seconds, 16000)
        pack_dataset(root / "data_manifests" / "paper", root / "packed", progress=False)
    return "paper"


def bare_inference_seconds(model: torch.nn.Module, inputs: int, params: PaperStageOne, device: str) -> float:
    """The teacher alone over `inputs` inputs in batches of batch_size, features resident on the device."""
    cuda = device.startswith("cuda")
    features = torch.randn(params.batch_size, params.target_length, params.n_mels, device=device)
    started = time.perf_counter()
    with torch.no_grad(), torch.autocast("cuda", enabled=cuda):
        for start in range(0, inputs, params.batch_size):
            model(features[: min(params.batch_size, inputs - start)]).float().cpu()  # the engine copies back too
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - started


def stage_one_vs_bare(
    root: Path, model_name: str, views: int, params: PaperStageOne, device: str, sample_utilisation=None
) -> dict:
    """clips/s of stage one, of bare inference on the same inputs, their ratio, and GPU utilisation."""
    from pipeline.augment import AugmentSettings
    from pipeline.checkpoints import model_from_checkpoint
    from pipeline.stage_one import StageOneJob, run_stage_one
    from pipeline.store import verify_store

    dataset = packed_project(root, params)
    teacher = root / "runs" / model_name
    if not (teacher / "checkpoints" / "final.pt").exists():
        save_random_teacher(teacher, model_name, params.num_classes, params.n_mels, params.target_length)
    model = model_from_checkpoint(teacher)[0].to(device).eval()
    augment = AugmentSettings(mixup=params.mixup, freqm=params.freqm, timem=params.timem)
    out = root / "stores" / f"{model_name}-v{views}.zarr"

    def job() -> StageOneJob:
        return StageOneJob(
            dataset=dataset,
            teacher=str(teacher),
            out=str(out),
            views=views,
            augment=augment,
            scheduler="inline",
            batch_size=params.batch_size,
            overwrite=True,
            manifests_root=str(root / "data_manifests"),
            device=device,
        )

    inputs = params.clips * (1 + views)
    bare_inference_seconds(model, params.batch_size, params, device)  # warm-up (cudnn autotuning, allocator)
    stage, bare, samples = [], [], []
    for _ in range(params.repeats):
        stop = threading.Event()
        sampler = (
            threading.Thread(target=sample_utilisation, args=(samples, stop), daemon=True)
            if sample_utilisation
            else None
        )
        if sampler:
            sampler.start()
        summary = run_stage_one(job(), progress=False)
        stop.set()
        stage.append(float(summary["seconds"]))
        bare.append(bare_inference_seconds(model, inputs, params, device))
    problems = verify_store(out)
    del model
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    ratio = median(b / s for b, s in zip(bare, stage))
    return {
        "model": model_name,
        "views": views,
        "clips": params.clips,
        "inputs": inputs,
        "batch_size": params.batch_size,
        "packed_audio": True,
        "cpu_cores": os.cpu_count(),
        "stage_one_s": stage,
        "bare_inference_s": bare,
        "stage_one_clips_per_s": params.clips / median(stage),
        "bare_inputs_per_s": inputs / median(bare),
        "ratio_to_bare": ratio,
        "goal": f">= {GOAL}",
        "meets_goal": ratio >= GOAL,
        "gpu_util_mean": sum(s[0] for s in samples) / len(samples) if samples else None,
        "gpu_util_max": max((s[0] for s in samples), default=None),
        "failures": summary["failures"],
        "verify_problems": len(problems),
    }
