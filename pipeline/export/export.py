"""`make export`: a checkpoint (run folder or .pt) into a folder a user or the Hub can take as it is.

OUT receives ``model.safetensors`` + ``config.json`` (:mod:`.bundle`), ``model.onnx`` +
``front_end.json`` (:mod:`.onnx_export`) and ``README.md``, the model card (:mod:`.model_card`).
The ONNX file is checked before the export reports success: onnxruntime runs it on features of
random noise and of silence and its logits must agree with PyTorch's to ``PARITY_TOLERANCE``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..checkpoints import load_checkpoint, model_from_state, resolve_checkpoint
from .bundle import CONFIG_FILE, WEIGHTS_FILE, ModelDescription, description_from_checkpoint, load_bundle, write_bundle
from .model_card import card_facts, render_card
from .onnx_export import FRONT_END_FILE, ONNX_FILE, export_onnx, max_logit_difference, onnx_session

PARITY_TOLERANCE = 1e-4  # max |ONNX - PyTorch| logit, float32 on the CPU
CARD_FILE = "README.md"


class ExportError(RuntimeError):
    """An export whose output failed its own check (the message gives the measured difference)."""


def parity_inputs(description: ModelDescription, batch: int = 3, seed: int = 0) -> torch.Tensor:
    """Normalised-feature-like inputs: noise at the front end's scale, and one all-silence row."""
    front = description.front_end
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(batch, front.target_length, front.n_mels, generator=generator)
    features[-1] = (0.0 - front.norm_mean) / (front.norm_divisor * front.norm_std) - 3.0  # a floor-level clip
    return features


def export_model(checkpoint: str | Path, out: str | Path, onnx: bool = True, log=print) -> dict:
    """Export; returns {"folder", "files", "onnx_max_abs_diff"}."""
    path = resolve_checkpoint(checkpoint)
    ckpt = load_checkpoint(path)
    ckpt["path"] = str(path)
    description = description_from_checkpoint(ckpt, source=str(path))
    model = model_from_state(ckpt).cpu()
    out = Path(out)
    parameters = sum(p.numel() for p in model.parameters())
    write_bundle(model, description, out, extra={"parameters": parameters, "exported_from": path.name})
    # the written files must give back the same model: read them as a user would, compare the logits
    reloaded, _ = load_bundle(out)
    features = parity_inputs(description)
    with torch.no_grad():
        if not torch.equal(model(features), reloaded(features)):
            raise ExportError(f"{out / WEIGHTS_FILE}: the reloaded weights give other logits than {path}")
    files = [WEIGHTS_FILE, CONFIG_FILE]
    difference = None
    if onnx:
        log(f"export: ONNX of {description.model_name} (torch.onnx dynamo exporter) ...")
        export_onnx(model, description, out)
        difference = max_logit_difference(model, onnx_session(out / ONNX_FILE), features)
        if not difference <= PARITY_TOLERANCE:
            raise ExportError(
                f"{out / ONNX_FILE}: onnxruntime logits differ from PyTorch's by {difference:.3g} "
                f"(> {PARITY_TOLERANCE:g})"
            )
        files += [ONNX_FILE, FRONT_END_FILE]
    facts = card_facts(ckpt, path, parameters)
    (out / CARD_FILE).write_text(render_card(description, facts, files), encoding="utf-8")
    files.append(CARD_FILE)
    return {"folder": str(out), "files": files, "onnx_max_abs_diff": difference, "parameters": parameters}
