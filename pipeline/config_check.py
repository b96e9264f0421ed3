"""Every config key type- and range-checked at once: one error listing all problems.

``apply_overrides`` already turns strings into each field's type; this catches values that have the
right type but make no sense (``batch_size=-4``, ``epochs=0``, ``mixup=2``) before they reach torch
or half a run, and a field set in code to the wrong type. Keys without a rule here are still
type-checked from their annotation, so a newly added key is never skipped.
"""

from __future__ import annotations

import math
import types
import typing
from dataclasses import fields

from .config import Config, FrontEndConfig


class ConfigError(ValueError):
    """A recipe with values out of range or of the wrong type; the message lists every key."""


def _positive(v):
    return v > 0 or "must be > 0"


def _non_negative(v):
    return v >= 0 or "must be >= 0"


def _probability(v):
    return 0 <= v <= 1 or "must be in [0, 1]"


def _choice(*allowed):
    return lambda v: v in allowed or f"must be one of {', '.join(map(repr, allowed))}"


def _model(v):
    from .models import list_models

    return v in list_models() or f"must be a registered model ({', '.join(list_models())})"


def _device(v):
    return (
        v in ("auto", "cpu", "cuda")
        or (v.startswith("cuda:") and v[5:].isdigit())
        or "must be auto, cpu, cuda or cuda:N"
    )


def _digests(v):
    parts = [d.strip() for d in v.split(",") if d.strip()]
    return (
        all(len(d) == 64 and all(c in "0123456789abcdefABCDEF" for c in d) for d in parts)
        or "must be store digests (64 hexadecimal digits each, comma-separated)"
    )


def _betas(v):
    return (len(v) == 2 and all(0 <= b < 1 for b in v)) or "must be two numbers in [0, 1)"


def _grid(value: str):
    from .models.ast_releases import parse_grid

    if not value:
        return True
    try:
        parse_grid(value)
    except ValueError as error:
        return str(error)
    return True


RULES: dict[str, typing.Callable] = {
    "fold": lambda v: v is None or 1 <= v <= 127 or "must be a fold number >= 1 (or null)",
    "select_on": _choice("val", "eval"),
    "model": _model,
    "cnn_model": _model,
    "ast_model": _model,
    "pooling": _choice("mean", "attention", "psla_attention"),
    "ast_pooling": _choice("", "token", "max"),
    "ast_position": _choice("", "learned", "sincos"),
    "ast_freq_stride": lambda v: 0 <= v <= 16 or "must be 1-16 (patches overlap below 16; 0: the model's own)",
    "ast_time_stride": lambda v: 0 <= v <= 16 or "must be 1-16 (patches overlap below 16; 0: the model's own)",
    "ast_source_grid": _grid,
    "pretrained": _choice("none", "imagenet"),
    "drop_rate": lambda v: 0 <= v < 1 or "must be in [0, 1)",
    "n_mels": _positive,
    "target_length": _positive,
    "norm_std": lambda v: v is None or v > 0 or "must be > 0 (or null)",
    "norm_divisor": _positive,
    "mixup": _probability,
    "mixup_alpha": _positive,
    "freqm": _non_negative,
    "timem": _non_negative,
    "time_shift": _non_negative,
    "epochs": _positive,
    "patience": _non_negative,
    "batch_size": _positive,
    "lr": _positive,
    "weight_decay": _non_negative,
    "betas": _betas,
    "warmup_steps": _non_negative,
    "warmup_every": _non_negative,
    "lr_decay_start": _non_negative,
    "lr_decay_every": _positive,
    "lr_schedule": _choice("upstream", "legacy"),
    "lr_decay": lambda v: 0 < v <= 1 or "must be in (0, 1]",
    "wa_start": _non_negative,
    "wa_end": _non_negative,
    "loss": _choice("auto", "bce", "ce"),
    "kd": _choice("none", "clean", "replay", "online"),
    "kd_loss": _choice("auto", "kl", "bce"),
    "kd_lambda": _probability,
    "tau": _positive,
    "missing": _choice("error", "mask"),
    "join": _choice("id", "fingerprint", "recording"),
    "digest": _digests,
    "num_workers": _non_negative,
    "features_on": _choice("worker", "device"),
    "threads": _non_negative,
    "eval_batch_size": _positive,
    "eval_cache_mb": _non_negative,
    "max_clips": _non_negative,
    "seed": _non_negative,
    "device": _device,
}


def _type_problem(value, annotation) -> str | None:
    """None when ``value`` fits the field's annotation, else what it should have been."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        annotation = next(a for a in options if a is not type(None))
        origin = typing.get_origin(annotation)
    if annotation is bool:
        return None if isinstance(value, bool) else "must be true or false"
    if annotation is int:
        return None if isinstance(value, int) and not isinstance(value, bool) else "must be an integer"
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "must be a number"
        return None if math.isfinite(value) else "must be finite"
    if annotation is str:
        return None if isinstance(value, str) else "must be a string"
    if origin is tuple or annotation is tuple:
        ok = isinstance(value, (tuple, list)) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value
        )
        return None if ok else "must be numbers separated by commas"
    if origin is dict or annotation is dict:
        return None if isinstance(value, dict) else "must be a mapping"
    return None  # a type this checker does not know: left to its own code


def config_problems(config: Config) -> list[str]:
    """'key=value: what is wrong' for every bad key, in field order."""
    hints = typing.get_type_hints(type(config))
    problems = []
    for f in fields(config):
        value = getattr(config, f.name)
        wrong = _type_problem(value, hints.get(f.name))
        if wrong is None and f.name in RULES:
            verdict = RULES[f.name](value)
            wrong = None if verdict is True else verdict
        if wrong:
            problems.append(f"{f.name}={value!r} {wrong}")
    if config.wa_start and config.wa_end < config.wa_start:
        problems.append(
            f"wa_end={config.wa_end!r} must be >= wa_start={config.wa_start!r} (weight averaging "
            f"runs over epochs wa_start..wa_end)"
        )
    if config.warmup_every and config.warmup_steps % config.warmup_every:
        # upstream sets the rate only on multiples of warmup_every up to warmup_steps: any other length
        # would leave the last stair below the full rate for good
        problems.append(
            f"warmup_steps={config.warmup_steps!r} must be a multiple of warmup_every="
            f"{config.warmup_every!r} (the staircase reaches the full rate at warmup_steps)"
        )
    return problems


def check_config(config: Config, source: str = "config") -> Config:
    """Return ``config`` unchanged, or raise one ConfigError naming every bad key."""
    problems = config_problems(config)
    if problems:
        raise ConfigError(f"{source}: {len(problems)} bad key(s): " + "; ".join(problems))
    return config


FRONT_END_RULES: dict[str, typing.Callable] = {
    "sample_rate": _positive,
    "n_mels": _positive,
    "target_length": _positive,
    "frame_length_ms": _positive,
    "frame_shift_ms": _positive,
    "norm_std": _positive,
    "norm_divisor": _positive,
}


def front_end_from(values: object, source: str) -> FrontEndConfig:
    """A received front end (a checkpoint's ``front_end``) as a FrontEndConfig, every value type- and
    range-checked like a recipe key first: a string mean used to surface as a TypeError mid-run."""
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: front_end must be a mapping, got {type(values).__name__}")
    hints = typing.get_type_hints(FrontEndConfig)
    known = {f.name for f in fields(FrontEndConfig)}
    problems = [f"unknown key {key!r}" for key in values if key not in known]
    for key, value in values.items():
        if key not in known:
            continue
        wrong = _type_problem(value, hints[key])
        if wrong is None and key in FRONT_END_RULES:
            verdict = FRONT_END_RULES[key](value)
            wrong = None if verdict is True else verdict
        if wrong:
            problems.append(f"{key}={value!r} {wrong}")
    if problems:
        raise ConfigError(f"{source}: front_end: {len(problems)} bad key(s): " + "; ".join(problems))
    return FrontEndConfig(**values)
