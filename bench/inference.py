"""Entry `inference_cost`: what a student saves over its teacher when it does the tagging.

For each model, at its input size: parameters; multiply-accumulates of one forward pass, counted by
torch's ``FlopCounterMode`` (FLOPs / 2; CPU attention, ``_scaled_dot_product_flash_attention_for_cpu``,
has no formula there and gets torch's own ``sdpa_flop_count``); latency of one input window at batch 1
and throughput at batch 32, through PyTorch (eval mode, no gradients) and through onnxruntime (the
model exported by ``make export``'s code path, ``pipeline.export.onnx_export``). Then every figure as
the ratio student / teacher for the two pairs the project trains: the paper's (efficientnet_b2 student,
ast_base teacher, 128 mels x 1024 frames = one 10.24-s window) and the demo's (efficientnet_tiny and
ast_micro as configs/demo.yaml builds them, 64 x 600 = 6.0 s).

Within a pair the four calls of one batch size (student and teacher, torch and onnxruntime) are
timed interleaved (harness.interleaved), so a load spike on the shared machine hits all of them.
"""

from __future__ import annotations

import gc
import statistics
from dataclasses import dataclass

import numpy as np
import torch

from .harness import RATIO, BenchContext, Figure, Measured, interleaved, median


@dataclass(frozen=True)
class InferenceCostParams:
    # (student, teacher, mels, frames, classes, student options, teacher options)
    pairs: tuple = (
        ("efficientnet_b2", "ast_base", 128, 1024, 527, (("pooling", "attention"),), ()),
        (
            "efficientnet_tiny",
            "ast_micro",
            64,
            600,
            20,
            (("pooling", "attention"),),
            (("position", "sincos"), ("freq_stride", 12), ("time_stride", 12)),
        ),
    )
    batch_one_repeats: tuple = (3, 7)  # per pair: timed batch-1 calls after one warm-up
    batch_big: int = 32
    batch_big_repeats: tuple = (1, 3)  # per pair; ast_base at batch 32 takes about a minute per call on 2 cores
    batch_big_warmup: tuple = (0, 1)  # the batch-1 calls already built both engines' graphs


FULL = InferenceCostParams()
QUICK = InferenceCostParams(
    pairs=(FULL.pairs[1],), batch_one_repeats=(2,), batch_big=4, batch_big_repeats=(1,), batch_big_warmup=(0,)
)


def count_macs(model: torch.nn.Module, features: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass (FLOPs / 2 as torch counts them)."""
    from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

    def cpu_attention(query, key, value, *args, out_shape=None, **kwargs):
        return sdpa_flop_count(query, key, value)

    mapping = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: cpu_attention}
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        model(features)
    return counter.get_total_flops() // 2


def _model(name: str, mels: int, frames: int, classes: int, options: tuple):
    from pipeline.models import create_model

    torch.manual_seed(0)
    return create_model(name, num_classes=classes, n_mels=mels, target_length=frames, **dict(options)).eval()


def _onnx(model, name: str, mels: int, frames: int, classes: int, folder, threads: int):
    from pipeline.config import FrontEndConfig
    from pipeline.export.bundle import ModelDescription
    from pipeline.export.onnx_export import export_onnx, max_logit_difference, onnx_session

    description = ModelDescription(
        name,
        model.model_config,
        FrontEndConfig(n_mels=mels, target_length=frames),
        [f"/c/{i}" for i in range(classes)],
        [str(i) for i in range(classes)],
        "sigmoid",
    )
    path = export_onnx(model, description, folder)
    session = onnx_session(path, threads=threads)
    difference = max_logit_difference(
        model, session, torch.randn(2, frames, mels, generator=torch.Generator().manual_seed(1))
    )
    return session, difference


def run(ctx: BenchContext, params: InferenceCostParams) -> Measured:
    from pipeline.export.onnx_export import run_session

    figures, timings, details = [], {}, {}
    for number, (student, teacher, mels, frames, classes, s_opts, t_opts) in enumerate(params.pairs):
        size = f"{mels}x{frames}"
        window_s = frames / 100
        models, sessions, per_model = {}, {}, {}
        for role, name, options in (("student", student, s_opts), ("teacher", teacher, t_opts)):
            ctx.log(f"  {name} at {size}: build, count, export")
            model = _model(name, mels, frames, classes, options)
            one = torch.randn(1, frames, mels)
            session, difference = _onnx(model, name, mels, frames, classes, ctx.folder(f"{name}-{size}"), ctx.threads)
            models[role], sessions[role] = model, session
            per_model[role] = {
                "model": name,
                "parameters": sum(p.numel() for p in model.parameters()),
                "macs": count_macs(model, one),
                "onnx_max_abs_logit_diff": difference,
            }
        calls = {}
        for batch, tag in ((1, "b1"), (params.batch_big, f"b{params.batch_big}")):
            features = torch.randn(batch, frames, mels, generator=torch.Generator().manual_seed(batch))
            array = features.numpy()
            for role in ("student", "teacher"):
                model, session = models[role], sessions[role]
                calls[f"{role}_torch_{tag}"] = lambda m=model, x=features: _torch_call(m, x)
                calls[f"{role}_onnx_{tag}"] = lambda s=session, x=array: run_session(s, x)
        for tag, repeats, warmup in (
            ("b1", params.batch_one_repeats[number], 1),
            (f"b{params.batch_big}", params.batch_big_repeats[number], params.batch_big_warmup[number]),
        ):
            ctx.log(f"  {student} vs {teacher}: {tag}, {repeats} interleaved repeat(s)")
            chosen = {k: v for k, v in calls.items() if k.endswith("_" + tag)}
            for key, seconds in interleaved(chosen, repeats, warmup=warmup).items():
                timings[f"{size}_{key}_s"] = seconds
        for role in ("student", "teacher"):
            info = per_model[role]
            name = info["model"]
            for engine in ("torch", "onnx"):
                info[f"{engine}_latency_s"] = median(timings[f"{size}_{role}_{engine}_b1_s"])
                info[f"{engine}_clips_per_s"] = params.batch_big / median(
                    timings[f"{size}_{role}_{engine}_b{params.batch_big}_s"]
                )
            details[f"{name}_{size}"] = info
            figures += [
                Figure(f"{name} {size}: parameters", info["parameters"] / 1e6, "M"),
                Figure(f"{name} {size}: MACs per {window_s:.2f}-s window", info["macs"] / 1e9, "GMAC"),
            ]
            for engine, label in (("torch", "PyTorch"), ("onnx", "onnxruntime")):
                figures += [
                    Figure(
                        f"{name} {size}: {label} latency per window, batch 1", 1000 * info[f"{engine}_latency_s"], "ms"
                    ),
                    Figure(
                        f"{name} {size}: {label} throughput, batch {params.batch_big}",
                        info[f"{engine}_clips_per_s"],
                        "clips/s",
                    ),
                ]
        s, t = per_model["student"], per_model["teacher"]
        pair = f"{student} / {teacher} ({size})"
        ratios = {"parameters": s["parameters"] / t["parameters"], "macs": s["macs"] / t["macs"]}
        for engine in ("torch", "onnx"):
            # per-repeat ratios of back-to-back calls, as everywhere in the bench
            ratios[f"{engine}_latency"] = statistics.median(
                a / b
                for a, b in zip(timings[f"{size}_student_{engine}_b1_s"], timings[f"{size}_teacher_{engine}_b1_s"])
            )
            ratios[f"{engine}_throughput"] = statistics.median(
                b / a
                for a, b in zip(
                    timings[f"{size}_student_{engine}_b{params.batch_big}_s"],
                    timings[f"{size}_teacher_{engine}_b{params.batch_big}_s"],
                )
            )
        details[f"ratios {pair}"] = ratios
        figures += [
            Figure(f"{pair}: parameters", ratios["parameters"], RATIO),
            Figure(f"{pair}: MACs", ratios["macs"], RATIO),
        ]
        for engine, label in (("torch", "PyTorch"), ("onnx", "onnxruntime")):
            figures += [
                Figure(f"{pair}: {label} latency, batch 1", ratios[f"{engine}_latency"], RATIO),
                Figure(f"{pair}: {label} throughput, batch {params.batch_big}", ratios[f"{engine}_throughput"], RATIO),
            ]
        del models, sessions, calls
        gc.collect()
    note = (
        f"Random-init models (the classes of each pair's data: 527 AudioSet, 20 embedded corpus), random normalised "
        f"features; MACs = FlopCounterMode FLOPs / 2 (convolutions, linear layers, attention); latency = median "
        f"seconds of one batch-1 forward; throughput = {params.batch_big} / median seconds of one batch-"
        f"{params.batch_big} forward; repeats per pair: batch 1 {params.batch_one_repeats}, batch "
        f"{params.batch_big} {params.batch_big_repeats} (the paper pair's batch-{params.batch_big} figures are one "
        f"call each: ast_base takes about a minute per call here, so they are single measurements), "
        f"{ctx.threads} threads for torch and onnxruntime alike. Student/teacher ratios are medians of per-repeat "
        f"ratios (latency: student / teacher, lower is better; throughput: student / teacher, higher is better). "
        f"The front end (fbank of the window) is not included; it is the same for both models of a pair. ONNX "
        f"max |logit difference| against PyTorch per model is in details."
    )
    return Measured(figures, timings, details, note)


def _torch_call(model: torch.nn.Module, features: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return model(features).numpy()


def gpu_inference_cost(device: str = "cuda", repeats: int = 10, batch: int = 32, pairs: tuple = FULL.pairs) -> dict:
    """`make gpu-check`'s version: the same models and figures on a CUDA device under AMP (autocast
    float16), timed with synchronisation; onnxruntime only where its CUDA provider is installed (the
    pinned `onnxruntime` wheel is CPU-only, so it is reported as absent rather than timed on the CPU)."""
    import onnxruntime

    from .harness import repeat_timed

    result = {"onnxruntime_providers": onnxruntime.get_available_providers()}
    for student, teacher, mels, frames, classes, s_opts, t_opts in pairs:
        size = f"{mels}x{frames}"
        per_model = {}
        for role, name, options in (("student", student, s_opts), ("teacher", teacher, t_opts)):
            model = _model(name, mels, frames, classes, options).to(device)
            info = {
                "model": name,
                "parameters": sum(p.numel() for p in model.parameters()),
                "macs": count_macs(model.cpu(), torch.randn(1, frames, mels)),
            }
            model.to(device)
            for tag, size_b in (("latency_s", 1), ("throughput", batch)):
                features = torch.randn(size_b, frames, mels, device=device)

                def call(x=features, m=model):
                    with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16):
                        m(x)
                    torch.cuda.synchronize()

                seconds = median(repeat_timed(call, repeats, warmup=3))
                info[f"torch_amp_{tag}"] = seconds if tag == "latency_s" else size_b / seconds
            per_model[role] = info
            del model
            torch.cuda.empty_cache()
        s, t = per_model["student"], per_model["teacher"]
        result[size] = {
            **per_model,
            "ratios": {
                "parameters": s["parameters"] / t["parameters"],
                "macs": s["macs"] / t["macs"],
                "torch_amp_latency": s["torch_amp_latency_s"] / t["torch_amp_latency_s"],
                "torch_amp_throughput": s["torch_amp_throughput"] / t["torch_amp_throughput"],
            },
        }
    if "CUDAExecutionProvider" not in result["onnxruntime_providers"]:
        result["onnxruntime"] = "not timed: this onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu)"
    return result
