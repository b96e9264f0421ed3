"""One table of model names -> builders (:func:`register_model`, timm's pattern) and the checks a
stored model description must pass. Building is :func:`pipeline.models.factory.create_model`.

This module imports no model and no checkpoint code, so the builders' modules can register
themselves here without an import circle. Every model that comes out of ``create_model`` carries ``model_name`` and ``model_config``: the architecture arguments (plain
Python values) that rebuild the same shapes with ``create_model(model.model_name, **model.model_config)``.
Initialisation sources (``pretrained``, ``checkpoint``) are deliberately left out of ``model_config``:
rebuilding a trained model from its checkpoint must never go back to ImageNet or re-import a file.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from dataclasses import dataclass

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

    def typed_options(self, options: dict) -> dict:
        """``options`` checked against ``pooling`` and the builder's own options, string values (from a
        command line) turned into the option's type. ValueError names the key and what it takes."""
        known = {"pooling": self.default_pooling, **self.options()}
        unknown = sorted(k for k in options if k not in known)
        if unknown:
            raise ValueError(
                f"{', '.join(unknown)}: not an option of {self.name} (its options: {', '.join(sorted(known))})"
            )
        return {k: _typed(self.name, k, v, known[k]) for k, v in options.items()}


def _typed(model: str, key: str, value: object, default: object) -> object:
    """A string option value as the type of its default (bool: true/false/1/0); other values unchanged."""
    if not isinstance(value, str) or isinstance(default, str) or default is None:
        return value
    try:
        if isinstance(default, bool):
            if value.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return value.lower() in ("true", "1")
        if isinstance(default, int):
            number = float(value)  # "2" or "2.0"; "2.5" is refused, never truncated
            if not number.is_integer():
                raise ValueError
            return int(number)
        if isinstance(default, float):
            return float(value)
        return value  # an option of another type (a tuple, say) is passed on as given
    except ValueError:
        raise ValueError(
            f"{key}={value!r}: {model}'s option {key} takes a value of type {type(default).__name__} (default {default!r})"
        ) from None


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
    bad = sorted(
        f"{k}={type(v).__name__}" for k, v in config.items() if k in allowed and not isinstance(v, PLAIN_VALUES)
    )
    if unknown or bad:
        problems = ([f"unknown key(s) {unknown}"] if unknown else []) + ([f"non-plain value(s) {bad}"] if bad else [])
        raise ValueError(
            f"{source}: model_config of {name!r} refused ({'; '.join(problems)}); "
            f"allowed keys: {', '.join(sorted(allowed))}"
        )
    return name, dict(config)
