"""One table of model names -> builders, and :func:`create_model`, the only way the pipeline builds a model.

A builder is registered with :func:`register_model` (timm's pattern). Every model that comes out of
:func:`create_model` carries ``model_name`` and ``model_config``: the architecture arguments (plain
Python values) that rebuild the same shapes with ``create_model(model.model_name, **model.model_config)``.
Initialisation sources (``pretrained``, ``checkpoint``) are deliberately left out of ``model_config``:
rebuilding a trained model from its checkpoint must never go back to ImageNet or re-import a file.
"""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from torch import nn

PRETRAINED_CHOICES = ("none", "imagenet")
FAMILIES = ("cnn", "ast")
# arguments every builder takes; anything else a builder declares is a model-specific option
COMMON_ARGS = ("num_classes", "n_mels", "target_length", "pooling", "drop_rate", "pretrained")


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable[..., nn.Module]
    summary: str
    family: str  # "cnn" | "ast": which config key picks its pooling (pooling | ast_pooling)

    @property
    def default_pooling(self) -> str:
        return inspect.signature(self.builder).parameters["pooling"].default

    def options(self) -> dict[str, object]:
        """Model-specific keyword options and their defaults (e.g. attention_heads, time_stride)."""
        params = inspect.signature(self.builder).parameters
        return {k: p.default for k, p in params.items() if k not in COMMON_ARGS}


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(summary: str, family: str = "cnn") -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: the builder's function name becomes its registry name; its ``pooling`` default is
    the head the model gets when none is asked for."""
    if family not in FAMILIES:
        raise ValueError(f"model family must be one of {FAMILIES}, got {family!r}")

    def add(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        name = builder.__name__
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        params = inspect.signature(builder).parameters
        missing = [a for a in COMMON_ARGS if a not in params]
        if missing:
            raise TypeError(f"builder {name!r} must accept {missing}")
        if not isinstance(params["pooling"].default, str):
            raise TypeError(f"builder {name!r} must give pooling a default (its standard head)")
        _REGISTRY[name] = ModelEntry(name, builder, summary, family)
        return builder

    return add


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def model_entry(name: str) -> ModelEntry:
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, _REGISTRY, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ValueError(f"unknown model {name!r}{hint}; registered: {', '.join(list_models())}")
    return _REGISTRY[name]


# what a stored model_config may hold: plain values only, never a path, module or callable
PLAIN_VALUES = (bool, int, float, str, type(None))


def validate_model_config(name: object, config: object, source: str = "checkpoint") -> tuple[str, dict]:
    """(name, config) after checking what a checkpoint or store says about its model against the
    registry: the name must be registered and every key one of its builder's architecture arguments
    with a plain value. Initialisation sources (pretrained, checkpoint) are refused: a received file
    must never make us fetch weights or unpickle a second file."""
    if not isinstance(name, str):
        raise ValueError(f"{source}: model_name must be a string, got {type(name).__name__}")
    try:
        entry = model_entry(name)
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from None
    if not isinstance(config, dict):
        raise ValueError(f"{source}: model_config must be a mapping, got {type(config).__name__}")
    allowed = {a for a in COMMON_ARGS if a != "pretrained"} | set(entry.options())
    unknown = sorted(str(k) for k in config if k not in allowed)
    bad = sorted(f"{k}={type(v).__name__}" for k, v in config.items()
                 if k in allowed and not isinstance(v, PLAIN_VALUES))
    if unknown or bad:
        problems = ([f"unknown key(s) {unknown}"] if unknown else []) + ([f"non-plain value(s) {bad}"] if bad else [])
        raise ValueError(f"{source}: model_config of {name!r} refused ({'; '.join(problems)}); "
                         f"allowed keys: {', '.join(sorted(allowed))}")
    return name, dict(config)


def _check_common(name: str, num_classes: int, n_mels: int, target_length: int, pretrained: str,
                  drop_rate: float) -> None:
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
    **options,
) -> nn.Module:
    """Build a registered model: features [batch, target_length, n_mels] -> pre-activation logits
    [batch, num_classes] (no sigmoid or softmax inside).

    ``pretrained="imagenet"`` starts from timm's ImageNet weights (fails at once when they are not
    cached and the hub cannot be reached). ``checkpoint`` then loads a published AST/PSLA checkpoint or
    one of ours on top (see :func:`pipeline.models.checkpoint_import.load_pretrained_checkpoint`); its
    report is kept as ``model.import_report``. ``options`` are model-specific (``list`` them with
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
    model = entry.builder(num_classes=num_classes, n_mels=n_mels, target_length=target_length, pooling=pooling,
                          drop_rate=float(drop_rate), pretrained=pretrained, **options)
    model.model_name = name
    model.model_config = {"num_classes": num_classes, "n_mels": n_mels, "target_length": target_length,
                          "pooling": pooling, "drop_rate": float(drop_rate), **known, **options}
    if checkpoint is not None:
        from .checkpoint_import import load_pretrained_checkpoint

        model.import_report = load_pretrained_checkpoint(model, checkpoint)
    return model
