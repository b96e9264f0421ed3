"""An exported model folder: ``model.safetensors`` + ``config.json`` (what the Hugging Face Hub expects
beside a model card), read back without pickle.

``config.json`` holds everything a tagger needs besides the weights: the registry name and the
architecture arguments (``create_model(model_name, **model_config)`` rebuilds the shapes), the front
end the model was trained with, the vocabulary its outputs follow and the output activation. A
received folder is untrusted: every field is checked (the model config against the registry, the
front end and vocabulary for type and size) before anything is built, and the weights are read by
``safetensors``, which holds tensors only.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from pathlib import Path

import torch

from ..config import FrontEndConfig
from ..features import front_end_dict

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
BUNDLE_FORMAT = "cmkd-exported-model"
BUNDLE_VERSION = "1.0"
ACTIVATIONS = ("sigmoid", "softmax")


class BundleError(ValueError):
    """An exported folder that cannot be used; the message names the file and field."""


@dataclass
class ModelDescription:
    """What a checkpoint says about its model, in plain values (no tensors)."""

    model_name: str
    model_config: dict
    front_end: FrontEndConfig
    mids: list[str]
    names: list[str]
    activation: str  # sigmoid (multi-label) | softmax (single-label)

    def config_json(self, extra: dict | None = None) -> dict:
        return {
            "format": BUNDLE_FORMAT,
            "version": BUNDLE_VERSION,
            "model_name": self.model_name,
            "model_config": self.model_config,
            "front_end": vars(self.front_end),
            "front_end_detail": front_end_dict(self.front_end),
            "vocabulary": {"mids": self.mids, "names": self.names},
            "activation": self.activation,
            **(extra or {}),
        }


def description_from_checkpoint(ckpt: dict, source: str = "checkpoint") -> ModelDescription:
    from ..models.registry import validate_model_config

    name, config = validate_model_config(ckpt.get("model_name"), ckpt.get("model_config", {}), source=source)
    vocabulary = ckpt.get("vocabulary") or {}
    return _checked(
        name,
        config,
        ckpt.get("front_end"),
        vocabulary.get("mids"),
        vocabulary.get("names"),
        ckpt.get("activation", "sigmoid"),
        source,
    )


def _strings(values: object, field: str, source: str) -> list[str]:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise BundleError(f"{source}: vocabulary.{field} must be a list of strings")
    return values


def _checked(
    name: str, config: dict, front_end: object, mids: object, names: object, activation: object, source: str
) -> ModelDescription:
    if not isinstance(front_end, dict):
        raise BundleError(f"{source}: front_end must be a mapping, got {type(front_end).__name__}")
    known = {f.name: f.type for f in fields(FrontEndConfig)}
    unknown = sorted(set(front_end) - set(known))
    if unknown:
        raise BundleError(f"{source}: front_end has unknown key(s) {unknown}; allowed: {', '.join(known)}")
    for key, value in front_end.items():
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or value <= 0
            and key != "norm_mean"
        ):
            raise BundleError(
                f"{source}: front_end.{key} must be a finite number (positive but for norm_mean), got {value!r}"
            )
    front = FrontEndConfig(**front_end)
    for key in ("sample_rate", "n_mels", "target_length"):
        if not float(getattr(front, key)).is_integer():
            raise BundleError(f"{source}: front_end.{key} must be an integer, got {getattr(front, key)!r}")
        setattr(front, key, int(getattr(front, key)))
    mids = _strings(mids, "mids", source)
    names = _strings(names, "names", source)
    if len(mids) != config.get("num_classes") or len(names) != len(mids):
        raise BundleError(
            f"{source}: vocabulary has {len(mids)} mids and {len(names)} names, the model "
            f"{config.get('num_classes')} outputs"
        )
    if (config.get("n_mels"), config.get("target_length")) != (front.n_mels, front.target_length):
        raise BundleError(
            f"{source}: model input {config.get('n_mels')} mels x {config.get('target_length')} frames "
            f"differs from the front end's {front.n_mels} x {front.target_length}"
        )
    if activation not in ACTIVATIONS:
        raise BundleError(f"{source}: activation must be one of {ACTIVATIONS}, got {activation!r}")
    return ModelDescription(name, dict(config), front, list(mids), list(names), str(activation))


def read_config(folder: str | Path) -> tuple[ModelDescription, dict]:
    """(checked description, the whole config.json) of an exported folder."""
    from ..models.registry import validate_model_config

    path = Path(folder) / CONFIG_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(
            f"{path}: not found (an exported folder holds {CONFIG_FILE} and {WEIGHTS_FILE}; "
            f"write one with `make export`)"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BundleError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(data, dict) or data.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{path}: not a {BUNDLE_FORMAT} config (format field missing or different)")
    try:
        name, config = validate_model_config(data.get("model_name"), data.get("model_config"), source=str(path))
    except ValueError as error:
        raise BundleError(str(error)) from None
    vocabulary = data.get("vocabulary")
    if not isinstance(vocabulary, dict):
        vocabulary = {}
    description = _checked(
        name,
        config,
        data.get("front_end"),
        vocabulary.get("mids"),
        vocabulary.get("names"),
        data.get("activation"),
        str(path),
    )
    return description, data


def write_bundle(
    model: torch.nn.Module, description: ModelDescription, folder: str | Path, extra: dict | None = None
) -> tuple[Path, Path]:
    """``model.safetensors`` (contiguous copies: safetensors refuses shared or strided storage) and
    ``config.json``."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    weights = folder / WEIGHTS_FILE
    save_file(state, str(weights), metadata={"format": "pt", "model_name": description.model_name})
    config = folder / CONFIG_FILE
    config.write_text(json.dumps(description.config_json(extra), indent=2) + "\n", encoding="utf-8")
    return weights, config


def load_bundle(folder: str | Path) -> tuple[torch.nn.Module, ModelDescription]:
    """The model of an exported folder, in eval mode, built by ``create_model`` and loaded from
    safetensors (strict: every tensor present, no extra one)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from ..models import create_model

    description, _ = read_config(folder)
    weights = Path(folder) / WEIGHTS_FILE
    if not weights.is_file():
        raise BundleError(f"{weights}: not found")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as error:
        raise BundleError(f"{weights}: not a readable safetensors file ({error})") from None
    model = create_model(description.model_name, **description.model_config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise BundleError(
            f"{weights}: does not fit {description.model_name} as config.json describes it "
            f"({str(error).splitlines()[0]})"
        ) from None
    return model.eval(), description
