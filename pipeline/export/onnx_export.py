"""ONNX export of any registered model: input ``features`` [batch, frames, mels] (normalised log-mel,
the front end's output), output ``logits`` [batch, classes]; the batch axis is dynamic.

Why features and not waveform: the front end (Kaldi fbank of each window with its own DC offset
removed, frames past the clip's end zeroed, then the dataset's normalisation) is computed in Python
by the same function training used (``pipeline.features.fbank_batch``), so an exported model can
never hear other features than the ones it was trained on; its parameters travel in
``front_end.json`` beside ``model.onnx``. A waveform graph would need the FFT (ONNX ``DFT``), which
runtimes support unevenly (mobile and older onnxruntime builds among them), and would tie the parity
of the model to the parity of a second fbank implementation; keeping them apart lets the test below
hold the model itself to 1e-4.

The exporter is torch's dynamo-based ``torch.onnx.export(..., dynamo=True)`` (it needs onnxscript),
the one torch maintains; the TorchScript exporter is deprecated.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch

from ..features import front_end_dict
from .bundle import ModelDescription

ONNX_FILE = "model.onnx"
FRONT_END_FILE = "front_end.json"
INPUT_NAME, OUTPUT_NAME = "features", "logits"
OPSET = 18
MAX_BATCH = 4096  # the dynamic batch axis's declared upper bound (torch.export needs one)


def export_onnx(model: torch.nn.Module, description: ModelDescription, folder: str | Path) -> Path:
    """Write ``model.onnx`` and ``front_end.json`` into folder; returns the ONNX path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    front = description.front_end
    example = torch.zeros(2, front.target_length, front.n_mels)
    path = folder / ONNX_FILE
    # one self-contained file (weights inside, not in model.onnx.data): fine below protobuf's 2 GB
    model = model.eval().cpu()
    with warnings.catch_warnings():  # the exporter's deprecation chatter is about its own internals
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            opset_version=OPSET,
            dynamo=True,
            optimize=True,
            verbose=False,
            external_data=False,
            dynamic_shapes={INPUT_NAME: {0: torch.export.Dim("batch", min=1, max=MAX_BATCH)}},
        )
    sidecar = {
        "input": {
            "name": INPUT_NAME,
            "shape": ["batch", front.target_length, front.n_mels],
            "dtype": "float32",
            "what": "normalised Kaldi log-mel fbank, frames x mels",
        },
        "output": {
            "name": OUTPUT_NAME,
            "shape": ["batch", len(description.mids)],
            "dtype": "float32",
            "what": f"pre-activation logits; {description.activation} gives the scores",
        },
        "front_end": front_end_dict(front),
    }
    (folder / FRONT_END_FILE).write_text(json.dumps(sidecar, indent=2) + "\n", encoding="utf-8")
    return path


def onnx_session(path: str | Path, threads: int = 0, providers: list[str] | None = None):
    """An onnxruntime session for an exported model (CUDA first when onnxruntime has it and asked)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.log_severity_level = 3  # warnings about unused initialisers are the optimiser's, not the user's
    available = onnxruntime.get_available_providers()
    chosen = [p for p in (providers or ["CPUExecutionProvider"]) if p in available] or ["CPUExecutionProvider"]
    return onnxruntime.InferenceSession(str(path), sess_options=options, providers=chosen)


def run_session(session, features: np.ndarray) -> np.ndarray:
    return session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(features, dtype=np.float32)})[0]


def max_logit_difference(model: torch.nn.Module, session, features: torch.Tensor) -> float:
    """max |ONNX - PyTorch| over the logits of the same features."""
    with torch.no_grad():
        reference = model.eval()(features).numpy()
    return float(np.abs(run_session(session, features.numpy()) - reference).max())
