"""Checkpoint files for the tests: our AST weights laid out as the published AST releases are, a hostile
pickle that would create a marker file if it were ever unpickled, and files offered as checkpoints
that are none."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from pipeline.models import create_model


def ast_layout(model: nn.Module) -> dict[str, torch.Tensor]:
    """Our AST state dict renamed the way the published AST checkpoints store it (DataParallel prefix,
    plus the ImageNet heads the original ViT kept but never used)."""
    state = {f"module.{k}": v.clone() for k, v in model.state_dict().items()}
    width = model.v.embed_dim
    state["module.v.head.weight"], state["module.v.head.bias"] = torch.zeros(1000, width), torch.zeros(1000)
    return state


class Hostile:
    """Unpickling this creates the marker file: what a malicious checkpoint would do instead."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def hostile_checkpoint(path: Path, marker: Path, wrap_model: bool = True) -> Path:
    model = create_model("efficientnet_tiny", num_classes=4, n_mels=32, target_length=64)
    state = (
        {
            "model": model.state_dict(),
            "model_name": "efficientnet_tiny",
            "model_config": model.model_config,
            "payload": Hostile(marker),
        }
        if wrap_model
        else {**model.state_dict(), "payload": Hostile(marker)}
    )
    torch.save(state, path)
    return path


def not_checkpoints(folder: Path) -> dict[str, tuple[Path, str]]:
    """Files offered as checkpoints that are none: the reason each must get."""
    import zipfile

    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "empty": (folder / "empty.pt", "not a checkpoint: empty"),
        "random": (folder / "random.pt", "not a PyTorch file"),
        "text": (folder / "notes.pt", "not a PyTorch file: it is text"),
        "npy": (folder / "array.pt", "not a PyTorch file: a NumPy"),
        "foreign zip": (folder / "other.pt", "not a PyTorch file: a zip archive without"),
        "truncated": (folder / "half.pt", "not a PyTorch file: a broken or truncated zip"),
    }
    files["empty"][0].write_bytes(b"")
    files["random"][0].write_bytes(bytes([0x13]) + np.random.default_rng(0).bytes(499))
    files["text"][0].write_text("model weights are on the release page\n")
    np.save(folder / "array.npy", np.zeros(3))
    (folder / "array.npy").rename(files["npy"][0])
    with zipfile.ZipFile(files["foreign zip"][0], "w") as archive:
        archive.writestr("readme.txt", "not torch")
    model = create_model("efficientnet_tiny", num_classes=4, n_mels=32, target_length=64)
    torch.save({"model": model.state_dict()}, folder / "whole.pt")
    whole = (folder / "whole.pt").read_bytes()
    files["truncated"][0].write_bytes(whole[: len(whole) // 2])
    return files
