"""Entry `models`: training and inference throughput (clips/s) of every registered model size.

Training is a whole step (forward, BCE loss, backward, Adam step); inference is a forward pass under
``torch.no_grad`` in eval mode. Paper-size models run at 128 mels x 1024 frames, the CPU-sized ones
at 64 x 400. No goal: these numbers size every other run (how long an epoch or a stage one takes).
"""

from __future__ import annotations

import gc
from dataclasses import dataclass

import torch

from .harness import BenchContext, Figure, Measured, median, repeat_timed


@dataclass(frozen=True)
class ModelSpeedParams:
    paper_models: tuple[str, ...] = ("efficientnet_b2", "ast_base")
    paper_shape: tuple[int, int] = (128, 1024)  # (mels, frames)
    paper_batch: int = 2
    paper_steps: int = 2  # timed steps after one warm-up step (ast_base trains at well under 1 clip/s)
    cpu_models: tuple[str, ...] = ("efficientnet_tiny", "efficientnet_b0", "ast_micro", "ast_tiny")
    cpu_shape: tuple[int, int] = (64, 400)
    cpu_batch: int = 8
    cpu_steps: int = 5
    num_classes: int = 527


FULL = ModelSpeedParams()
QUICK = ModelSpeedParams(
    paper_models=("efficientnet_b2",),
    paper_batch=1,
    paper_steps=1,
    cpu_models=("efficientnet_tiny", "ast_micro"),
    cpu_batch=4,
    cpu_steps=2,
)


def model_throughput(
    name: str, shape: tuple[int, int], batch: int, steps: int, num_classes: int, device: str = "cpu"
) -> dict[str, list[float]]:
    """Seconds per training step and per inference batch; on CUDA under AMP (autocast + GradScaler,
    as the trainer runs there) and synchronised after each call, so a step's time is the GPU's."""
    from pipeline.models import create_model

    cuda = device.startswith("cuda")
    n_mels, frames = shape
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(batch, frames, n_mels, generator=generator).to(device)
    targets = (torch.rand(batch, num_classes, generator=generator) < 0.01).float().to(device)
    model = create_model(name, num_classes=num_classes, n_mels=n_mels, target_length=frames).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler("cuda", enabled=cuda)  # disabled: scale() and step() are plain calls
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def finish():
        if cuda:
            torch.cuda.synchronize()

    def train_step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cuda", enabled=cuda):
            loss = loss_fn(model(features), targets)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        finish()

    def infer():
        with torch.no_grad(), torch.autocast("cuda", enabled=cuda):
            model(features)
        finish()

    model.train()
    train_seconds = repeat_timed(train_step, steps, warmup=1)
    model.eval()
    infer_seconds = repeat_timed(infer, steps, warmup=1)
    model = optimizer = None  # freed before the next model is built (the closures above hold them too)
    gc.collect()
    return {"train": train_seconds, "infer": infer_seconds}


def run(ctx: BenchContext, params: ModelSpeedParams) -> Measured:
    figures, timings, details = [], {}, {}
    groups = [(name, params.paper_shape, params.paper_batch, params.paper_steps) for name in params.paper_models]
    groups += [(name, params.cpu_shape, params.cpu_batch, params.cpu_steps) for name in params.cpu_models]
    for name, shape, batch, steps in groups:
        ctx.log(f"  {name} at {shape[0]}x{shape[1]}, batch {batch}")
        seconds = model_throughput(name, shape, batch, steps, params.num_classes)
        size = f"{shape[0]}x{shape[1]}"
        for mode in ("train", "infer"):
            timings[f"{name}_{size}_{mode}_s_per_batch"] = seconds[mode]
            rate = batch / median(seconds[mode])
            figures.append(Figure(f"{name} {size} {mode}", rate, "clips/s"))
            details[f"{name}_{size}_{mode}_clips_per_s"] = rate
    note = (
        f"Random-init models and random features ({params.num_classes} classes); training = forward + "
        "BCE + backward + Adam step, inference = eval-mode forward without gradients; clips/s = batch / "
        f"median step time after one warm-up step (paper size: batch {params.paper_batch}, "
        f"{params.paper_steps} timed steps; CPU size: batch {params.cpu_batch}, {params.cpu_steps} steps), "
        f"{torch.get_num_threads()} torch threads."
    )
    return Measured(figures, timings, details, note)
