"""`make gpu-check`: the code paths that only a CUDA machine exercises, run once on the embedded corpus.

1. supervised teacher training with AMP (GradScaler + autocast) on the GPU;
2. stage one on the GPU through a one-worker dask LocalCluster, then the store's integrity check;
3. one KD student epoch from that store with AMP, GPU utilisation sampled by nvidia-smi meanwhile, and
   one with ``features_on=device`` (the batched front end on the GPU);
4. the DistributedDataParallel path: ``torchrun --nproc_per_node=1`` (NCCL) training one epoch;
5. paper-size throughput (128 x 1024 input) of efficientnet_b2 and ast_base under AMP: a training
   step and an inference batch, timed with CUDA synchronisation;
6. inference cost under AMP: the student and teacher of the paper pair (efficientnet_b2, ast_base at
   128 x 1024) and of the demo pair, parameters, counted MACs, batch-1 latency and batch-32 throughput,
   and the student / teacher ratios (:func:`bench.inference.gpu_inference_cost`; `make bench`'s
   ``inference_cost`` entry gives the CPU figures);
7. stage one at paper size over packed audio, efficientnet_b2 and ast_base teachers, VIEWS=0 and 4:
   clips/s and the ratio to bare batched inference of the same teacher in the same run (goal >= 0.90),
   GPU utilisation sampled (:mod:`bench.gpu_stage_one`).

Everything lands in ``bench/gpu_check.json``; every figure is measured by the run that writes it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

from .gpu_stage_one import PaperStageOne, stage_one_vs_bare
from .inference import gpu_inference_cost

DATASET = "demo"
DEVICE = "cuda"
GPU_OVERRIDES = [f"device={DEVICE}", "amp=true", "num_workers=8", "batch_size=64", "threads=0"]


def sample_utilisation(samples: list, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits"],
                capture_output=True,
                text=True,
                timeout=5,
            )
            util, memory = out.stdout.split(",")[:2]
            samples.append((float(util), float(memory)))
        except (OSError, ValueError, subprocess.SubprocessError):
            pass  # no nvidia-smi or an odd line: the check still runs, without utilisation figures
        time.sleep(0.5)


def ensure_demo_corpus() -> None:
    """A fresh GPU machine has no data/: generate the corpus, its manifest and norm stats (~30 s)."""
    from pipeline.manifests.build import build_manifest
    from pipeline.recipe import load_config
    from pipeline.synthetic_corpus import generate_corpus
    from pipeline.training.norm_stats import compute_dataset_norm_stats

    if Path("data_manifests", DATASET, "dataset.json").exists():
        return
    generate_corpus("data", size=1.0, seed=0, progress=False, workers=min(8, os.cpu_count() or 1))
    build_manifest(DATASET, "fsd50k", "data/demo")
    compute_dataset_norm_stats(
        Path("data_manifests", DATASET), load_config("configs/demo.yaml"), max_clips=300, method="clean"
    )


def last_epoch_clips_per_s(run_dir: Path) -> float:
    from pipeline.training.runlog import read_metrics

    return float(read_metrics(run_dir / "metrics.csv")[-1]["clips_per_s"])


def train_teacher(runs: Path) -> dict:
    from pipeline.recipe import load_config
    from pipeline.training import run_training

    config = load_config("configs/demo.yaml", [*GPU_OVERRIDES, "epochs=2", "model=efficientnet_tiny"])
    started = time.time()
    summary = run_training(DATASET, config, "gpu-check/teacher", progress=False)
    return {
        "seconds": time.time() - started,
        "eval_map": summary["map"],
        "train_clips_per_s": last_epoch_clips_per_s(runs / "gpu-check/teacher"),
    }


def stage_one(runs: Path, store: str) -> dict:
    from pipeline.stage_one import StageOneJob, run_stage_one
    from pipeline.store import verify_store

    job = StageOneJob(
        dataset=DATASET,
        teacher=str(runs / "gpu-check/teacher"),
        out=store,
        workers=1,
        device=DEVICE,
        batch_size=64,
        overwrite=True,
    )
    summary = run_stage_one(job)
    problems = verify_store(store)
    return {
        "seconds": summary["seconds"],
        "clips": summary["clips"],
        "clips_per_s": summary["clips"] / summary["seconds"],
        "failures": summary["failures"],
        "engine": summary["engine"],
        "verify_problems": len(problems),
    }


def train_student(runs: Path, store: str, features_on: str = "worker") -> dict:
    from pipeline.recipe import load_config
    from pipeline.stage_two.run import train_student as run_student

    config = load_config(
        "configs/demo.yaml", [*GPU_OVERRIDES, "epochs=1", "kd=clean", f"logits={store}", f"features_on={features_on}"]
    )
    samples, stop = [], threading.Event()
    sampler = threading.Thread(target=sample_utilisation, args=(samples, stop), daemon=True)
    sampler.start()
    started = time.time()
    run = f"gpu-check/student-{features_on}"
    run_student(DATASET, config, run, progress=False)
    stop.set()
    return {
        "seconds": time.time() - started,
        "features_on": features_on,
        "train_clips_per_s": last_epoch_clips_per_s(runs / run),
        "gpu_util_mean": sum(s[0] for s in samples) / max(len(samples), 1),
        "gpu_util_max": max((s[0] for s in samples), default=0.0),
        "gpu_mem_mb_max": max((s[1] for s in samples), default=0.0),
    }


def torchrun_epoch(runs: Path) -> dict:
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=1",
        "-m",
        "stages.teacher",
        "--dataset",
        DATASET,
        "--config",
        "configs/demo.yaml",
        "--run-name",
        "gpu-check/ddp",
        "--",
        *GPU_OVERRIDES,
        "epochs=1",
    ]
    started = time.time()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"torchrun exited {done.returncode}: {done.stderr[-2000:]}")
    summary = json.loads((runs / "gpu-check/ddp/summary.json").read_text())
    return {"seconds": time.time() - started, "eval_map": summary["map"]}


def paper_size_throughput(name: str, batch: int, steps: int = 5) -> dict:
    from .harness import median
    from .models import model_throughput

    torch.cuda.reset_peak_memory_stats()
    seconds = model_throughput(name, (128, 1024), batch, steps, num_classes=527, device="cuda")
    figures = {f"{mode}_clips_per_s": batch / median(seconds[mode]) for mode in ("train", "infer")}
    figures.update(batch=batch, peak_mem_gb=torch.cuda.max_memory_allocated() / 2**30)
    torch.cuda.empty_cache()
    return figures


def run_gpu_check(out: str | Path = "bench/gpu_check.json") -> dict:
    if not torch.cuda.is_available():
        raise RuntimeError("gpu-check needs a CUDA device; none is visible here")
    ensure_demo_corpus()
    runs, store = Path("runs", DATASET), f"stores/{DATASET}/gpu-check.zarr"
    result = {"card": torch.cuda.get_device_name(0), "torch": torch.__version__, "cuda": torch.version.cuda}
    steps = [
        ("teacher_amp", lambda: train_teacher(runs)),
        ("stage_one", lambda: stage_one(runs, store)),
        ("student_kd_amp", lambda: train_student(runs, store)),
        ("student_kd_amp_features_on_device", lambda: train_student(runs, store, "device")),
        ("torchrun_ddp", lambda: torchrun_epoch(runs)),
        ("efficientnet_b2_128x1024", lambda: paper_size_throughput("efficientnet_b2", 64)),
        ("ast_base_128x1024", lambda: paper_size_throughput("ast_base", 32)),
        ("inference_cost_amp", lambda: gpu_inference_cost(DEVICE)),
    ]
    paper = Path("bench/tmp/gpu-check-stage-one")
    steps += [
        (
            f"stage_one_{name}_views{views}",
            lambda name=name, views=views, batch=batch: stage_one_vs_bare(
                paper, name, views, PaperStageOne(batch_size=batch), DEVICE, sample_utilisation
            ),
        )
        for name, batch in (("efficientnet_b2", 256), ("ast_base", 64))
        for views in (0, 4)
    ]
    for name, step in steps:
        print(f"gpu-check: {name} ...", flush=True)
        try:
            result[name] = step()
        except Exception as error:  # one broken path must not hide the others' figures
            result[name] = {"error": f"{type(error).__name__}: {error}"}
        print(f"gpu-check: {name} -> {result[name]}", flush=True)
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result, indent=2) + "\n")  # after each step: a timeout keeps what ran
    return result
