"""The training loop: one function, supervised or distillation, CPU or GPU, single process or DDP.

Everything random is keyed by (seed, epoch): the clip order (:func:`pipeline.training.dataset.epoch_order`) and
each clip's view. A checkpoint is written at every epoch end, so a killed run resumed with
``resume=True`` reaches the same weights as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time

import torch
from torch.utils.data import DataLoader

from ..augment import AugmentSettings
from ..checkpoints import load_checkpoint, save_checkpoint
from ..config import Config, RunPaths, save_config
from ..manifests import Manifest
from ..models import create_model, import_report_of
from ..models.init_model import model_for_init
from ..progress import ClipBar, bar_options, batch_clips
from ..seeding import pick_device, seed_everything, set_threads, worker_init
from . import runlog
from .dataset import SKIPPED_FILE, EpochSampler, balanced_weights
from .device_features import dataset_class, features_on_device
from .evaluate import EvalInputs, evaluate_model
from .finish import checkpoint_identity, eval_inputs_for, finish_run
from .job import TrainJob
from .kd_source import KDSource
from .losses import cmkd_loss, kd_targets, resolve_kd_loss, single_label_task
from .model_options import checkpoint_grid_for, model_options_for, pooling_for
from .resume import check_resume
from .schedule import WeightAverager, set_lr
from .tracking import open_tracker


def distributed_context() -> tuple[int, int]:
    """(rank, world size) under torchrun, else (0, 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend)
    return (torch.distributed.get_rank(), world) if world > 1 else (0, 1)


def single_label_of(config: Config, manifest: Manifest) -> bool:
    return single_label_task(config.loss, manifest.single_label)


def train(job: TrainJob, resume: bool = False, progress: bool = True) -> dict:
    """Train ``job`` epoch by epoch and return its summary (rank 0; other DDP ranks return {})."""
    rank, world = distributed_context()
    job, model_options = resolved_job(job, announce=rank == 0 and not resume)
    config, paths = job.config, RunPaths(job.run_dir).make()
    device = device_for(config, world)
    set_threads(config.threads)
    seed_everything(config.seed)
    single_label = single_label_of(config, job.manifest)
    model = build_model(job, device, model_options, announce=rank == 0 and not resume)
    beta1, beta2 = config.betas  # two numbers: config_check validated them
    optimizer = torch.optim.Adam(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay, betas=(beta1, beta2)
    )
    scaler = torch.amp.GradScaler("cuda", enabled=device.startswith("cuda") and config.amp)
    averager = WeightAverager(config)
    start_epoch, step, best = restore(job, paths, model, optimizer, averager, resume, rank)
    tracker = open_tracker(paths.root, rank == 0, kd=job.kd is not None, resumed_step=step)
    if job.kd is not None and job.kd.online_teacher is not None:
        job.kd.online_teacher.to(device).eval()
    train_model = (
        model
        if world == 1
        else torch.nn.parallel.DistributedDataParallel(model, device_ids=[device] if "cuda" in device else None)
    )
    dataset, sampler, loader = training_data(job, paths, rank, world, device)
    val_inputs = eval_inputs_for(job, job.val_clips, device)
    stopped_early = 0  # the epoch early stopping ended the run at (0: it ran all epochs)
    for epoch in range(start_epoch, config.epochs + 1):
        dataset.set_epoch(epoch)
        sampler.set_epoch(epoch)
        started = time.time()
        step, lr, losses, seen = run_epoch(
            train_model,
            optimizer,
            scaler,
            loader,
            len(sampler),
            job,
            single_label,
            step,
            epoch,
            tracker,
            device,
            progress and rank == 0,
        )
        seconds = time.time() - started
        averager.update(model, epoch)
        if rank == 0:
            row = {
                "epoch": epoch,
                "train_loss": losses["total"] / seen,
                "task_loss": losses["task"] / seen,
                "kd_loss": losses["kd"] / seen,
                "lr": lr,
                "seconds": seconds,
            }
            best = end_epoch(
                job,
                model,
                optimizer,
                averager,
                paths,
                row,
                step,
                best,
                val_inputs,
                single_label,
                device,
                progress,
                tracker,
                seen,
            )
        if plateaued(config, epoch, best):
            stopped_early = epoch
            if rank == 0:
                print(
                    f"early stop after epoch {epoch}: no better val score for {config.patience} epochs "
                    f"(best {best['metric']:.4f} at epoch {best['epoch']})"
                )
            break
    tracker.close()
    if rank != 0:
        return {}
    return finish_run(job, model, averager, best, single_label, device, progress, stopped_early)


def resolved_job(job: TrainJob, announce: bool) -> tuple[TrainJob, dict]:
    """The job as it trains (a copy; the caller's is left as it was), and extra model options: the KD
    loss when nothing resolved ``auto`` yet (stage two's join normally has, and warned), and a
    published PSLA file given as ``init``, which fixes the architecture and head whatever the recipe's
    ``pooling`` says."""
    config = job.config
    if config.kd_loss == "auto":
        config = dataclasses.replace(config, kd_loss=resolve_kd_loss("auto", single_label_of(config, job.manifest))[0])
    init_model = model_for_init(config.model, config.pooling, config.init)
    if init_model is None:
        return dataclasses.replace(job, config=config), {}
    if init_model.note and announce:
        print(init_model.note)
    config = dataclasses.replace(config, model=init_model.model, pooling=init_model.pooling)
    return dataclasses.replace(job, config=config), dict(init_model.options)


def device_for(config: Config, world: int) -> str:
    """The run's device; under torchrun with GPUs, this rank's GPU."""
    device = pick_device(config.device)
    if device == "cuda" and world > 1:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
        torch.cuda.set_device(device)
    return device


def build_model(job: TrainJob, device: str, options: dict, announce: bool):
    """The model the recipe names, started from ``init`` when given (what was loaded is printed)."""
    config = job.config
    model = create_model(
        config.model,
        num_classes=job.manifest.num_classes,
        n_mels=job.front_end.n_mels,
        target_length=job.front_end.target_length,
        pooling=pooling_for(config),
        pretrained=config.pretrained,
        drop_rate=config.drop_rate,
        checkpoint=config.init or None,
        checkpoint_grid=checkpoint_grid_for(config),
        fine_tune=True,
        **model_options_for(config),
        **options,
    ).to(device)
    if config.init and announce:
        report = import_report_of(model)
        print(report.summary())  # what of the published (or own) checkpoint was loaded
        report.print_warnings()
    return model


def restore(
    job: TrainJob, paths: RunPaths, model, optimizer, averager: WeightAverager, resume: bool, rank: int
) -> tuple[int, int, dict]:
    """(first epoch, step, best so far): from ``last.pt`` when resuming (checked against the recipe),
    else a fresh start; the recipe is saved beside the run."""
    start_epoch, step, best = 1, 0, {"metric": -math.inf, "epoch": 0}
    last_path = paths.checkpoints / "last.pt"
    if resume and last_path.exists():
        ckpt = load_checkpoint(last_path)
        check_resume(ckpt, job.config, job.front_end, last_path)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        torch.set_rng_state(ckpt["torch_rng"])
        averager.load(ckpt)
        start_epoch, step, best = ckpt["epoch"] + 1, ckpt["step"], ckpt["best"]
        runlog.truncate_metrics(paths.root / "metrics.csv", ckpt["epoch"])
        print(f"resuming {paths.root} after epoch {ckpt['epoch']}")
    elif rank == 0:
        (paths.root / "metrics.csv").unlink(missing_ok=True)
    if rank == 0:
        save_config(job.config, paths.root / "config.yaml")
    return start_epoch, step, best


def training_data(job: TrainJob, paths: RunPaths, rank: int, world: int, device: str):
    """(dataset, sampler, loader) of the training clips. One loader for the run: its workers persist
    across epochs and read the epoch from shared memory."""
    config, kd = job.config, job.kd
    dataset = dataset_class(config.features_on)(
        job.manifest,
        job.train_clips,
        job.front_end,
        AugmentSettings.from_config(config),
        seed=config.seed,
        partners=job.train_clips,
        kd=kd.store if kd else None,
        skip_log=paths.root / SKIPPED_FILE,
    )
    weights = balanced_weights(job.train_clips, job.manifest.mids) if config.balanced_sampler else None
    sampler = EpochSampler(len(dataset), config.seed, weights, rank, world)
    loader = DataLoader(
        dataset,
        batch_size=config.batch_size,
        sampler=sampler,
        num_workers=config.num_workers,
        worker_init_fn=worker_init if config.num_workers else None,
        drop_last=False,
        pin_memory=device.startswith("cuda"),
        persistent_workers=config.num_workers > 0,
    )
    return dataset, sampler, loader


def run_epoch(
    train_model,
    optimizer,
    scaler,
    loader,
    clips: int,
    job: TrainJob,
    single_label: bool,
    step: int,
    epoch: int,
    tracker,
    device: str,
    progress: bool,
) -> tuple[int, float, dict, int]:
    """One pass over the training clips: (step, last lr, summed losses {total, task, kd}, clips seen)."""
    config = job.config
    train_model.train()
    sums, seen, lr = torch.zeros(3, dtype=torch.float64, device=device), 0, 0.0
    bar = ClipBar(loader, clips, batch_clips, desc=f"epoch {epoch}/{config.epochs}", **bar_options(progress))
    for batch in bar:
        lr = set_lr(optimizer, config, step, epoch)
        batch = features_on_device({k: v.to(device, non_blocking=True) for k, v in batch.items()}, job.front_end)
        total, parts = train_step(train_model, optimizer, scaler, batch, job.kd, single_label)
        step += 1
        tracker.step(step, lr, total, parts)
        count = batch["features"].shape[0]
        seen += count
        # summed on the device: no host sync per step (the bar's loss is read every 50 steps)
        sums += torch.stack([total.detach(), parts["task"], parts["kd"]]).double() * count
        if step % 50 == 1:  # refresh=False: shown at the bar's next redraw, no extra log line per batch
            bar.set_postfix(loss=f"{float(total.detach()):.4f}", refresh=False)
    return step, lr, dict(zip(("total", "task", "kd"), sums.tolist())), seen


def end_epoch(
    job: TrainJob,
    model,
    optimizer,
    averager: WeightAverager,
    paths: RunPaths,
    row: dict,
    step: int,
    best: dict,
    val_inputs: EvalInputs,
    single_label: bool,
    device: str,
    progress: bool,
    tracker,
    seen: int,
) -> dict:
    """Rank 0 after each epoch: validate, keep the best weights, log the epoch's row, write ``last.pt``
    (what a resumed run starts from). Returns the best so far."""
    val = evaluate_model(
        model,
        job.manifest,
        job.val_clips,
        job.front_end,
        single_label,
        device=device,
        progress=progress,
        desc="val",
        inputs=val_inputs,
    )
    score = val["accuracy"] if single_label else val["map"]
    state = {"model": model.state_dict(), **checkpoint_identity(job, model, single_label)}
    if score > best["metric"]:
        best = {"metric": float(score), "epoch": row["epoch"]}
        save_checkpoint({**state, "epoch": row["epoch"], "metrics": {"val": val}}, paths.checkpoints / "best.pt")
    row = {
        **row,
        "val_map": val["map"],
        "val_mauc": val["mauc"],
        "val_dprime": val["dprime"],
        "val_accuracy": val["accuracy"],
    }
    row = {
        **{
            k: row[k]
            for k in (
                "epoch",
                "train_loss",
                "task_loss",
                "kd_loss",
                "lr",
                "val_map",
                "val_mauc",
                "val_dprime",
                "val_accuracy",
                "seconds",
            )
        },
        "clips_per_s": seen / row["seconds"],
    }
    runlog.append_metrics(paths.root / "metrics.csv", row)
    tracker.epoch(step, row)
    save_checkpoint(
        {
            **state,
            "optimizer": optimizer.state_dict(),
            "epoch": row["epoch"],
            "step": step,
            "best": best,
            "torch_rng": torch.get_rng_state(),
            **averager.to_checkpoint(),
        },
        paths.checkpoints / "last.pt",
    )
    if progress:
        print(
            f"epoch {row['epoch']}: loss {row['train_loss']:.4f}  val mAP {val['map']:.4f}  "
            f"acc {val['accuracy']:.4f}  {row['clips_per_s']:.1f} clips/s"
        )
    return best


def plateaued(config: Config, epoch: int, best: dict) -> bool:
    """Early stopping (patience > 0): the val score has not improved for `patience` epochs. Every
    rank sees the same epochs, so DDP ranks stop together; only rank 0 knows the score, so under
    torchrun early stopping is rank 0's decision broadcast to the others."""
    if config.patience <= 0 or epoch >= config.epochs:
        return False
    stop = torch.tensor([float(epoch - best["epoch"] >= config.patience)])
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.broadcast(stop, src=0)
    return bool(stop.item())


def train_step(model, optimizer, scaler, batch: dict, kd: KDSource | None, single_label: bool):
    """One optimiser step on a collated batch of :class:`pipeline.training.dataset.ClipDataset` items (already on
    the device): forward, the teacher's targets (``kd``), the CMKD loss, backward. Returns
    ``(total, {"task", "kd"})``. `make bench` times this same function."""
    with torch.autocast(device_type="cuda", enabled=scaler.is_enabled()):
        logits = model(batch["features"])
    targets = None
    if kd is not None:
        targets = kd_targets(_teacher_logits(kd, batch), kd.loss, batch.get("partner_logits"), batch.get("kd_lam"))
    total, parts = cmkd_loss(
        logits.float(),
        batch["target"],
        targets,
        kd_mask=batch.get("kd_mask", torch.ones_like(batch["label_mask"])) if kd else None,
        label_mask=batch["label_mask"],
        single_label=single_label,
        kd=kd.loss if kd else None,
    )
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(total).backward()
    scaler.step(optimizer)
    scaler.update()
    return total, parts


def _teacher_logits(kd: KDSource, batch: dict) -> torch.Tensor:
    """The teacher's logits for the batch: the online teacher run on it, or the cached ones."""
    if kd.online_teacher is None:
        return batch["teacher_logits"]
    with torch.no_grad(), torch.autocast(device_type="cuda", enabled=batch["features"].is_cuda):
        return kd.online_teacher(batch["features"]).float()
