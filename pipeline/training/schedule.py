"""Learning-rate schedule and weight averaging, as in the AST/PSLA recipes."""

from __future__ import annotations

import torch

from ..config import Config


def lr_factor(config: Config, step: int, epoch: int) -> float:
    """Linear warm-up over the first warmup_steps steps, then step decay per epoch (1-based epochs):
    multiplied by lr_decay every lr_decay_every epochs from lr_decay_start on."""
    warm = min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps > 0 else 1.0
    decays = 0
    if epoch >= config.lr_decay_start:
        decays = (epoch - config.lr_decay_start) // max(config.lr_decay_every, 1) + 1
    return warm * (config.lr_decay ** decays)


def set_lr(optimizer: torch.optim.Optimizer, config: Config, step: int, epoch: int) -> float:
    lr = config.lr * lr_factor(config, step, epoch)
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr


class WeightAverager:
    """Running mean of the weights at the end of epochs wa_start..wa_end (PSLA/AST 'WA')."""

    def __init__(self, config: Config):
        self.start, self.end = config.wa_start, config.wa_end
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
            self.state, self.count = current, 1
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
                out[key] = self.state[key].to(value.dtype)
            else:
                out[key] = value.detach().cpu().clone()
        return out

    def to_checkpoint(self) -> dict:
        return {"wa_state": self.state, "wa_count": self.count}

    def load(self, ckpt: dict) -> None:
        self.state, self.count = ckpt.get("wa_state"), int(ckpt.get("wa_count", 0))
