"""What ``predict`` tags with: any of the four places a model comes from, as one :class:`TaggerModel`.

- a run folder or one of our ``.pt`` checkpoints (weights-only load, checked against the registry);
- an exported folder (``config.json`` + ``model.safetensors``, or ``model.onnx`` with ENGINE=onnx);
- a published AST/PSLA file (``audioset_10_10_0.4593.pth`` ...) with LABELS=<its vocabulary file>:
  imported in memory by the same code stage one uses, so the release becomes a tagger with no step
  of its own (an already imported teacher is a run folder, the first case).

The front end always comes from the model's own record (checkpoint, config.json or the published
file's known recipe), never from the current recipe: a tagger hears what it was trained on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..export.bundle import (
    CONFIG_FILE,
    BundleError,
    ModelDescription,
    description_from_checkpoint,
    load_bundle,
    read_config,
)
from ..export.onnx_export import ONNX_FILE, onnx_session, run_session

ENGINES = ("torch", "onnx")


@dataclass
class TaggerModel:
    description: ModelDescription
    forward: Callable[[torch.Tensor], np.ndarray]  # normalised features [B, frames, mels] on `device` -> logits
    engine: str
    device: str
    source: str


def pick_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"DEVICE={device}: no CUDA device is visible here")
    return device


def _torch_forward(model: torch.nn.Module, device: str, amp: bool) -> Callable[[torch.Tensor], np.ndarray]:
    model = model.to(device).eval()
    cuda = device.startswith("cuda")

    def forward(features: torch.Tensor) -> np.ndarray:
        with torch.no_grad(), torch.autocast("cuda", enabled=cuda and amp):
            return model(features).float().cpu().numpy()

    return forward


def load_tagger_model(
    checkpoint: str | Path,
    engine: str = "torch",
    device: str = "auto",
    labels: str | None = None,
    model_name: str | None = None,
    amp: bool = False,
    threads: int = 0,
) -> TaggerModel:
    from ..checkpoints import model_from_state, resolve_checkpoint
    from ..models.checkpoint_import import CheckpointImportError, load_weights_only

    if engine not in ENGINES:
        raise ValueError(f"ENGINE must be one of {ENGINES}, got {engine!r}")
    path = Path(checkpoint)
    if not path.exists():
        raise FileNotFoundError(f"{path}: checkpoint not found (a run folder, a .pt file or an exported folder)")
    device = pick_device(device)
    if path.is_dir() and (path / CONFIG_FILE).is_file():  # an exported folder
        if engine == "onnx":
            description, _ = read_config(path)
            if not (path / ONNX_FILE).is_file():
                raise BundleError(f"{path / ONNX_FILE}: not found (export with ONNX: `make export`)")
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device.startswith("cuda") else None
            session = onnx_session(path / ONNX_FILE, threads=threads, providers=providers)
            return TaggerModel(
                description,
                lambda features: run_session(session, features.cpu().numpy()),
                "onnx",
                "cpu" if providers is None else device,
                str(path),
            )
        model, description = load_bundle(path)
        return TaggerModel(description, _torch_forward(model, device, amp), "torch", device, str(path))
    if engine == "onnx":
        raise ValueError(
            f"{path}: ENGINE=onnx runs an exported folder; export it first "
            f"(`make export CHECKPOINT={path} OUT=<folder>`)"
        )
    resolved = resolve_checkpoint(path)
    content = load_weights_only(resolved)
    if isinstance(content, dict) and "model_name" in content:  # one of ours
        if not isinstance(content.get("model"), dict):
            raise CheckpointImportError(f"{resolved}: not a training checkpoint (a dict with a 'model' state dict)")
        ckpt = content  # model name and config are checked against the registry below, before building
    else:
        from ..stage_one.published import PublishedTeacherError, published_state

        if not labels:
            raise PublishedTeacherError(
                f"{path}: a checkpoint with weights only (a published file?); pass "
                f"LABELS=<the vocabulary file its outputs follow> to tag with it"
            )
        ckpt, _ = published_state(resolved, labels, model=model_name)
    ckpt["path"] = str(resolved)
    description = description_from_checkpoint(ckpt, source=str(resolved))
    return TaggerModel(description, _torch_forward(model_from_state(ckpt), device, amp), "torch", device, str(resolved))
