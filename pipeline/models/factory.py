""":func:`create_model`, the only way the pipeline builds a model: a registered builder, the
common checks, and optionally a checkpoint loaded on top (:mod:`pipeline.models.checkpoint_import`).

It sits above the registry and the checkpoint importer, which sit above the builders: the import
graph has no circle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from .checkpoint_import import ImportReport, load_pretrained_checkpoint
from .registry import PRETRAINED_CHOICES, model_entry


def _check_common(
    name: str, num_classes: int, n_mels: int, target_length: int, pretrained: str, drop_rate: float
) -> None:
    for field, value in (("num_classes", num_classes), ("n_mels", n_mels), ("target_length", target_length)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"create_model({name!r}): {field} must be a positive integer, got {value!r}")
    if pretrained not in PRETRAINED_CHOICES:
        raise ValueError(f"create_model({name!r}): pretrained must be one of {PRETRAINED_CHOICES}, got {pretrained!r}")
    if not 0.0 <= float(drop_rate) < 1.0:
        raise ValueError(f"create_model({name!r}): drop_rate must be in [0, 1), got {drop_rate!r}")


def create_model(
    name: str,
    num_classes: int,
    n_mels: int = 128,
    target_length: int = 1024,
    pooling: str | None = None,
    pretrained: str = "none",
    drop_rate: float = 0.0,
    checkpoint: str | Path | None = None,
    checkpoint_grid: tuple[int, int] | None = None,
    fine_tune: bool = False,
    **options,
) -> nn.Module:
    """Build a registered model: features [batch, target_length, n_mels] -> pre-activation logits
    [batch, num_classes] (no sigmoid or softmax inside).

    ``pretrained="imagenet"`` starts from timm's ImageNet weights (fails at once when they are not
    cached and the hub cannot be reached). ``checkpoint`` then loads a published AST/PSLA checkpoint or
    one of ours on top (see :func:`pipeline.models.checkpoint_import.load_pretrained_checkpoint`, which
    takes ``checkpoint_grid`` and ``fine_tune``); its report is kept as ``model.import_report``. ``options`` are model-specific (``list`` them with
    ``model_entry(name).options()``). ``pooling=None`` gives the model its standard head.
    """
    entry = model_entry(name)
    pooling = entry.default_pooling if pooling is None else pooling
    _check_common(name, num_classes, n_mels, target_length, pretrained, drop_rate)
    known = entry.options()
    unknown = sorted(set(options) - set(known))
    if unknown:
        accepted = ", ".join(known) or "none"
        raise ValueError(f"create_model({name!r}): unknown option(s) {unknown}; this model accepts: {accepted}")
    model = entry.builder(
        num_classes=num_classes,
        n_mels=n_mels,
        target_length=target_length,
        pooling=pooling,
        drop_rate=float(drop_rate),
        pretrained=pretrained,
        **options,
    )
    _attach(
        model,
        model_name=name,
        model_config={
            "num_classes": num_classes,
            "n_mels": n_mels,
            "target_length": target_length,
            "pooling": pooling,
            "drop_rate": float(drop_rate),
            **known,
            **options,
        },
    )
    if checkpoint is not None:
        _attach(model, import_report=load_pretrained_checkpoint(model, checkpoint, checkpoint_grid, fine_tune))
    return model


def _attach(model: nn.Module, **values: object) -> None:
    """Plain-Python attributes on a model. nn.Module types an unknown attribute as Tensor | Module, so
    they are set here and read back typed through :func:`model_config_of` / :func:`import_report_of`."""
    for key, value in values.items():
        setattr(model, key, value)


def model_config_of(model: nn.Module) -> dict[str, Any]:
    """The ``model_config`` :func:`create_model` kept on a model it built."""
    config = getattr(model, "model_config", None)
    if not isinstance(config, dict):
        raise AttributeError(f"{type(model).__name__} was not built by create_model: it has no model_config")
    return config


def import_report_of(model: nn.Module) -> ImportReport:
    """The :class:`ImportReport` :func:`create_model` kept on a model it loaded a checkpoint into."""
    report = getattr(model, "import_report", None)
    if not isinstance(report, ImportReport):
        raise AttributeError(f"{type(model).__name__} has no import_report: create_model loaded no checkpoint into it")
    return report
