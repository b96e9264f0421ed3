"""YAML recipes loaded into dataclasses, with ``key=value`` overrides from the command line.

One :class:`Config` describes a whole run: the front end (how audio becomes features), the
augmentation, the model and the optimisation. It is saved as ``config.yaml`` beside every output,
so a run can always be rebuilt from its directory.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml


@dataclass
class FrontEndConfig:
    """Waveform -> normalised Kaldi fbank. Defaults are the AST/PSLA front end (docs/method.md)."""

    sample_rate: int = 16000
    n_mels: int = 128
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    target_length: int = 1024  # frames after pad/cut (1024 = 10.24 s)
    norm_mean: float = -4.2677  # AudioSet's (AST), rounded; a run resolves its own (Config.front_end)
    norm_std: float = 4.5690
    norm_divisor: float = 2.0  # AST divides by 2*std, PSLA by std


@dataclass
class Config:
    """Everything a training or stage-one run needs. Plain names so `ARGS="lr=1e-4"` works."""

    # data
    dataset: str = "demo"
    fold: int | None = None  # ESC-50 layout: evaluate on this fold, train on the others
    select_on: str = "val"  # best.pt is chosen on: val (carved from train when the data has none) | eval
    # model
    model: str = "efficientnet_b0"
    pooling: str = "mean"  # the CNN's head: mean | attention | psla_attention
    ast_pooling: str = ""  # the AST's head: token (paper) | max; "": the model's own (see pipeline/models/ast.py)
    ast_position: str = ""  # the AST's position table: learned (paper) | sincos (fixed); "": the model's own
    ast_freq_stride: int = 0  # the AST's patch strides in mel bins / frames (16x16 patches); 0: the model's own
    ast_time_stride: int = 0
    ast_source_grid: str = ""  # FREQxTIME patch grid of an AST checkpoint's position table its name does not tell
    pretrained: str = "none"  # none | imagenet
    init: str = ""  # start from this checkpoint: a published AST/PSLA file or one of ours (make teacher INIT=)
    drop_rate: float = 0.0
    cnn_model: str = "efficientnet_b2"  # the CMKD grid's two families
    ast_model: str = "ast_base"
    # front end
    n_mels: int = 128
    target_length: int = 1024
    norm_mean: float | None = None  # None: take dataset.json's (make norm-stats); neither: refused
    norm_std: float | None = None
    norm_divisor: float = 2.0
    # augmentation
    mixup: float = 0.0  # probability a clip is mixed with a partner
    mixup_alpha: float = 10.0  # lambda ~ Beta(alpha, alpha)
    freqm: int = 0  # max SpecAugment frequency-mask width (bins)
    timem: int = 0  # max SpecAugment time-mask width (frames)
    time_shift: int = 0  # max circular time shift (frames), both directions
    # optimisation
    epochs: int = 10
    patience: int = 0  # early stopping: stop after this many epochs without a better val score; 0 = off
    batch_size: int = 12
    lr: float = 1e-4
    weight_decay: float = 5e-7
    betas: tuple[float, float] = (0.95, 0.999)
    warmup_steps: int = 0  # steps of warm-up from the first one (global steps, 0-based)
    warmup_every: int = 0  # 0: linear ramp; k: upstream's staircase, lr * (step // k) * k / warmup_steps
    # upstream's lrscheduler_start: the first lr_decay_start epochs run at the full lr; the lr is multiplied
    # by lr_decay at the end of epoch lr_decay_start and every lr_decay_every epochs after it
    lr_decay_start: int = 5
    # what lr_decay_start means: upstream (as above) | legacy (this project before issue 23: the first
    # decayed epoch, one epoch earlier; only to resume or reproduce a run trained that way)
    lr_schedule: str = "upstream"
    lr_decay_every: int = 1
    lr_decay: float = 0.5
    wa_start: int = 0  # weight averaging over epochs [wa_start, wa_end]; 0 disables
    wa_end: int = 0
    wa_first_twice: bool = False  # PSLA's averaging: epoch wa_start counted twice (AST's: once)
    balanced_sampler: bool = False
    loss: str = "auto"  # auto | bce | ce  (auto: ce for single-label data, bce otherwise)
    amp: bool = True  # only takes effect on CUDA
    # knowledge distillation (stage two)
    kd: str = "none"  # none | clean | replay | online
    kd_loss: str = "auto"  # auto | kl | bce  (auto: bce for multi-label data, kl for single-label)
    kd_lambda: float = 0.5  # lambda * task + (1 - lambda) * KD
    tau: float = 1.0
    tau_student: bool = False  # also divide the student logits by tau inside the KD term
    tau_squared: bool = False  # multiply the KD term by tau^2 (Hinton)
    missing: str = "error"  # error | mask
    vocab_remap: bool = False  # map a store's classes to the manifest's by mid when orders differ
    logits: str = ""  # path of a stage-one store
    digest: str = ""  # the published store digest LOGITS must reproduce (DIGEST=; comma-separated for per-fold stores)
    join: str = "id"  # id | fingerprint | recording: by clip_id (audio checked), by audio content, or by clip_id
    # accepting another encoding of the same recording (the fingerprints then only count identical audio)
    verify: bool = True  # re-hash every store chunk read and refuse unfinished stores; false: warn and read as is
    teacher: str = ""  # run dir or checkpoint for kd=online
    # run
    seed: int = 0
    num_workers: int = 0
    features_on: str = (
        "worker"  # worker: DataLoader workers render features | device: the batched front end on the model's device
    )
    threads: int = 0  # torch intra-op threads; 0: all cores
    eval_batch_size: int = 32
    eval_cache_mb: int = 1024  # validation / eval input kept in memory between passes up to this size; 0: re-read
    max_clips: int = 0  # debug: cap the training clips (0: all)
    device: str = "auto"  # auto | cpu | cuda

    def front_end(self, stats: dict | None = None, dataset: str | None = None) -> FrontEndConfig:
        """Resolve the front end; explicit norm values win over the dataset's computed stats. With
        neither, refuse (naming ``dataset``, else the recipe's): another dataset's statistics would
        silently shift every input."""
        stats = stats or {}
        mean = self.norm_mean if self.norm_mean is not None else stats.get("norm_mean")
        std = self.norm_std if self.norm_std is not None else stats.get("norm_std")
        if mean is None or std is None:
            name = dataset or self.dataset
            raise MissingNormStats(
                f"dataset {name!r}: no normalisation statistics (the recipe sets no norm_mean/norm_std and its "
                f"dataset.json has none): run `make norm-stats DATASET={name}`, or set norm_mean= and norm_std= in "
                f"the recipe"
            )
        return FrontEndConfig(
            n_mels=self.n_mels,
            target_length=self.target_length,
            norm_mean=float(mean),
            norm_std=float(std),
            norm_divisor=self.norm_divisor,
        )

    def raw_front_end(self) -> FrontEndConfig:
        """The recipe's fbank and length with no normalisation (mean 0, std 1, divisor 1): the features
        normalisation statistics are computed from."""
        return FrontEndConfig(
            n_mels=self.n_mels, target_length=self.target_length, norm_mean=0.0, norm_std=1.0, norm_divisor=1.0
        )


class MissingNormStats(ValueError):
    """Neither the recipe nor the dataset's dataset.json gives normalisation statistics."""


def _coerce(text: str, annotation: typing.Any, key: str):
    """Turn an override string into the field's type; a wrong type is an error naming the key."""
    is_union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    args = typing.get_args(annotation) if is_union else ()
    optional = type(None) in args
    base = next(a for a in args if a is not type(None)) if is_union else annotation
    if text.strip().lower() in ("null", "none") and optional:
        return None
    if typing.get_origin(base) is tuple or base is tuple:
        try:
            return tuple(float(v) for v in text.strip("[]() ").split(","))
        except ValueError:
            raise ValueError(f"override {key}={text!r}: expected numbers separated by commas") from None
    if base is bool:
        value = yaml.safe_load(text)
        if not isinstance(value, bool):
            raise ValueError(f"override {key}={text!r}: expected true or false")
        return value
    if base is int:
        # digits only: 1.5 is not a count, and neither is 1e9 or 2.0 (a float notation; accepting it made
        # epochs=1e9 one billion epochs while batch_size=1.5 was refused)
        try:
            return int(text.strip())
        except ValueError:
            raise ValueError(
                f"override {key}={text!r}: expected an integer written in digits"
                + (" (no exponent or decimal point)" if _is_number(text) else "")
            ) from None
    if base is float:
        try:
            return float(text)  # float() reads 1e-3, which YAML 1.1 would leave a string
        except ValueError:
            raise ValueError(f"override {key}={text!r}: expected a number") from None
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def parse_overrides(overrides: dict | list[str] | None) -> dict[str, str]:
    """``["lr=1e-3", ...]`` (or a dict) as {key: value string}; a later duplicate key wins."""
    if not overrides:
        return {}
    if isinstance(overrides, dict):
        return {str(k): str(v) for k, v in overrides.items()}
    pairs = {}
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not of the form key=value")
        key, value = item.split("=", 1)
        pairs[key.strip()] = value.strip()
    return pairs


def apply_overrides(config: Config, overrides: dict[str, str] | list[str]) -> Config:
    """Apply ``key=value`` strings (or a dict of strings); unknown keys are an error, not ignored."""
    overrides = parse_overrides(overrides)
    hints = typing.get_type_hints(Config)
    names = {f.name for f in fields(Config)}
    changes = {}
    for key, text in overrides.items():
        if key not in names:
            close = [n for n in names if n.startswith(key[:3])]
            raise ValueError(f"unknown config key {key!r}" + (f" (did you mean {close}?)" if close else ""))
        changes[key] = _coerce(str(text), hints[key], key)
    return dataclasses.replace(config, **changes)


def _dump_value(value) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    if value is None:
        return "null"
    return str(value)


def config_to_dict(config) -> dict:
    data = dataclasses.asdict(config)
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in data.items()}


def save_config(config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))


def config_from_dict(data: dict) -> Config:
    known = {f.name for f in fields(Config)}
    # values from a saved file, typed only by check_config (config_check.py) where a driver runs it
    kwargs: dict[str, typing.Any] = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k in known}
    return Config(**kwargs)


@dataclass
class RunPaths:
    """Where a run writes: runs/<dataset>/<run>/ with config.yaml, metrics.csv, summary.json, ..."""

    root: Path
    checkpoints: Path = field(init=False)
    plots: Path = field(init=False)

    def __post_init__(self):
        self.root = Path(self.root)
        self.checkpoints = self.root / "checkpoints"
        self.plots = self.root / "plots"

    def make(self) -> RunPaths:
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        self.plots.mkdir(parents=True, exist_ok=True)
        return self
