"""Learning-rate schedule and weight averaging, with the meaning the AST/PSLA recipes give them.

The parent code bases step a ``MultiStepLR`` with milestones ``range(lrscheduler_start, 1000, step)`` once
at the end of every epoch, so ``lrscheduler_start = N`` leaves the first N epochs at the full rate and
decays from epoch N + 1 on. ``lr_decay_start`` here is that same N (docs/method.md, "Schedule keys").
Their warm-up sets the rate every 50 steps to ``lr * step / 1000`` from step 0 (a staircase from 0);
``warmup_every`` selects that staircase, 0 keeps this project's linear ramp.
"""

from __future__ import annotations

import torch

from ..config import Config


def decay_count(config: Config, epoch: int) -> int:
    """How many times the rate has decayed during 1-based ``epoch``: the milestones
    lr_decay_start, lr_decay_start + lr_decay_every, ... that the ends of epochs 1..epoch-1 passed."""
    finished = epoch if config.lr_schedule == "legacy" else epoch - 1
    if finished < config.lr_decay_start:
        return 0
    return (finished - config.lr_decay_start) // max(config.lr_decay_every, 1) + 1


def warmup_factor(config: Config, step: int) -> float:
    """The warm-up's share of the rate at 0-based global ``step``.

    warmup_every = 0: linear from 1/warmup_steps at step 0 to 1 at step warmup_steps - 1.
    warmup_every = k: upstream's staircase, (step // k) * k / warmup_steps, so 0 for the first k steps.
    """
    if config.warmup_steps <= 0 or step >= config.warmup_steps:
        return 1.0
    if config.warmup_every > 0:
        return (step // config.warmup_every) * config.warmup_every / config.warmup_steps
    return (step + 1) / config.warmup_steps


def lr_factor(config: Config, step: int, epoch: int) -> float:
    """Multiplier of ``config.lr`` at global step ``step`` (0-based) of epoch ``epoch`` (1-based)."""
    return warmup_factor(config, step) * config.lr_decay ** decay_count(config, epoch)


def set_lr(optimizer: torch.optim.Optimizer, config: Config, step: int, epoch: int) -> float:
    lr = config.lr * lr_factor(config, step, epoch)
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr


class WeightAverager:
    """Mean of the weights at the end of epochs wa_start..wa_end (PSLA/AST 'WA').

    AST's averaging counts each epoch once. PSLA's counts wa_start twice (its loop adds the first
    epoch's weights again to the copy it started from, then divides by n + 1); ``wa_first_twice``
    reproduces that weighting.
    """

    def __init__(self, config: Config):
        self.start, self.end = config.wa_start, config.wa_end
        self.first_weight = 2 if config.wa_first_twice else 1
        self.state: dict[str, torch.Tensor] | None = None
        self.count = 0

    @property
    def enabled(self) -> bool:
        return self.start > 0 and self.end >= self.start

    def update(self, model: torch.nn.Module, epoch: int) -> None:
        if not self.enabled or not (self.start <= epoch <= self.end):
            return
        current = {k: v.detach().float().cpu().clone() for k, v in model.state_dict().items()}
        if self.state is None:
            self.state, self.count = current, self.first_weight
            return
        self.count += 1
        for key, value in current.items():
            self.state[key] += (value - self.state[key]) / self.count

    def averaged_state(self, model: torch.nn.Module) -> dict:
        """The averaged weights cast back to each parameter's dtype (integer buffers: last value)."""
        reference = model.state_dict()
        out = {}
        for key, value in reference.items():
            if value.is_floating_point():
                if self.state is None:
                    raise RuntimeError("averaged_state() before any update(): no weights were averaged")
                out[key] = self.state[key].to(value.dtype)
            else:
                out[key] = value.detach().cpu().clone()
        return out

    def to_checkpoint(self) -> dict:
        return {"wa_state": self.state, "wa_count": self.count}

    def load(self, ckpt: dict) -> None:
        self.state, self.count = ckpt.get("wa_state"), int(ckpt.get("wa_count", 0))
