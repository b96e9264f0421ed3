"""Key translation from PSLA's EfficientNet checkpoints (efficientnet_pytorch backbone) to our models.

PSLA's ``EffNetAttention`` stores ``effnet.*`` (lukemelas' efficientnet_pytorch) and ``attention.*``
(its pooling head). The mapping, by name:

====================================  ==================================================
efficientnet_pytorch                  timm (our ``backbone.``)
====================================  ==================================================
``_conv_stem``, ``_bn0``              ``conv_stem``, ``bn1``
``_conv_head``, ``_bn1``              ``conv_head``, ``bn2``
``_blocks.{n}`` (one flat list)       ``blocks.{stage}.{index}`` (n-th block in stage order)
inverted residual (expand ratio > 1)  ``_expand_conv/_bn0/_depthwise_conv/_bn1/_se_reduce/_se_expand/
                                      _project_conv/_bn2`` -> ``conv_pw/bn1/conv_dw/bn2/se.conv_reduce/
                                      se.conv_expand/conv_pwl/bn3``
depthwise-separable (first stage)     ``_depthwise_conv/_bn1/_se_*/_project_conv/_bn2`` ->
                                      ``conv_dw/bn1/se.*/conv_pw/bn2``
``_fc``                               none (ImageNet classifier; PSLA replaced it by Identity)
====================================  ==================================================

PSLA heads (1x1 Conv2d, weights [classes, channels, 1, 1]) map onto :mod:`pipeline.models.pooling`:
``attention.att.{i}`` -> ``head.attention.{i}``, ``attention.cla.{i}`` -> ``head.classifier.{i}``
(Conv1d: the trailing 1 is dropped), ``attention.head_weight`` -> ``head.head_weights``; the
single-head ``Attention`` maps to head 0 with weight 1; ``MeanPooling``'s ``attention.cla`` maps to
the mean head's ``head.classifier`` (a Linear).

What else must hold for the imported model to compute PSLA's function (psla's ``src/models/Models.py``,
``EffNetAttention.forward``), each checked here and reported as a warning when it does not:

- batch norm with eps 1e-3 everywhere (efficientnet_pytorch 0.7.0's ``batch_norm_epsilon``; timm's
  plain ``efficientnet_*`` uses 1e-5);
- every conv padded symmetrically by kernel // 2: efficientnet_pytorch's static "same" padding puts
  ``pad - pad // 2`` on *both* sides, which for its 3x3 and 5x5 kernels is exactly that, at any input
  size (timm's ``tf_efficientnet_*`` pads TF-style, one pixel less on the top/left at stride 2);
- PSLA's sigmoid attention head (``pooling=psla_attention``);
- the frequency pooling: PSLA averages the first 4 rows of the last feature map (``AvgPool2d((4, 1))``
  then row 0 of the result), our heads average all rows: the same when the map has 4 rows, i.e. for
  97-128 mel bins (PSLA's 128).

The BN momentum (0.01 in efficientnet_pytorch) and stochastic depth do not act in eval mode. The
weight-averaged files (``*_wa.pth``) hold float ``num_batches_tracked`` counters (psla averages every
tensor of the state dict); they are cast to our integer counters and are never used in eval.
"""

from __future__ import annotations

import torch
from torch import nn

from .pooling import AttentionPoolingHead, MeanPoolingHead, PslaAttentionHead

PSLA_BN_EPS = 1e-3  # efficientnet_pytorch 0.7.0's batch_norm_epsilon
PSLA_POOLED_ROWS = 4  # PSLA's AvgPool2d((4, 1)) over the frequency rows of the last feature map

_TOP_LEVEL = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2"}
_INVERTED_RESIDUAL = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_se_reduce": "se.conv_reduce",
    "_se_expand": "se.conv_expand",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_DEPTHWISE_SEPARABLE = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_se_reduce": "se.conv_reduce",
    "_se_expand": "se.conv_expand",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}


class PslaLayoutError(ValueError):
    """A PSLA checkpoint does not fit the model it is loaded into."""


def is_psla_layout(state: dict) -> bool:
    return any(k.startswith("effnet.") for k in state)


def backbone_module_map(backbone: nn.Module) -> dict[str, str]:
    """efficientnet_pytorch module path -> timm module path, for a timm EfficientNet."""
    mapping = dict(_TOP_LEVEL)
    flat = 0
    # children() walks a Sequential in the order iterating it does, typed as modules
    for stage_index, stage in enumerate(backbone.get_submodule("blocks").children()):
        for block_index, block in enumerate(stage.children()):
            # duck typing on timm's block attributes, so no private timm classes are imported
            if hasattr(block, "conv_pwl"):
                table = _INVERTED_RESIDUAL
            elif hasattr(block, "conv_dw") and hasattr(block, "conv_pw"):
                table = _DEPTHWISE_SEPARABLE
            else:
                raise PslaLayoutError(
                    f"backbone block {stage_index}.{block_index} ({type(block).__name__}) has no "
                    f"efficientnet_pytorch counterpart; PSLA checkpoints need an efficientnet_b0/b2"
                )
            for theirs, ours in table.items():
                mapping[f"_blocks.{flat}.{theirs}"] = f"blocks.{stage_index}.{block_index}.{ours}"
            flat += 1
    return mapping


def _translate_head(state: dict, head: object, out: dict, deviations: list[str]) -> None:
    multi = sorted(
        {int(k.split(".")[2]) for k in state if k.startswith("attention.att.") and k.split(".")[2].isdigit()}
    )
    single = "attention.att.weight" in state
    if isinstance(head, AttentionPoolingHead):
        if not (multi or single):
            raise PslaLayoutError("checkpoint has PSLA mean pooling (no attention.att.*); build with pooling=mean")
        heads = len(multi) if multi else 1
        if heads != len(head.attention):
            raise PslaLayoutError(
                f"checkpoint has {heads} attention heads, model has {len(head.attention)}: "
                f"build with attention_heads={heads}"
            )
        for i in range(heads):
            suffix = f".{i}" if multi else ""
            for kind, ours in (("att", "attention"), ("cla", "classifier")):
                for param in ("weight", "bias"):
                    key = f"attention.{kind}{suffix}.{param}"
                    if key in state:
                        value = state[key]
                        out[f"head.{ours}.{i}.{param}"] = value.flatten(2) if value.ndim == 4 else value
        out["head.head_weights"] = state.get("attention.head_weight", torch.ones(1))
        if not isinstance(head, PslaAttentionHead):
            deviations.append(
                "pooling=attention (softmax over time on class logits) is not PSLA's head (sigmoid "
                "attention normalised over time, sigmoid class scores): outputs differ from the release; "
                "build with pooling=psla_attention (the efficientnet_*_psla models' default)"
            )
    elif isinstance(head, MeanPoolingHead):
        if multi or single:
            raise PslaLayoutError("checkpoint has PSLA attention pooling; build with pooling=psla_attention")
        for param in ("weight", "bias"):
            if f"attention.cla.{param}" in state:
                value = state[f"attention.cla.{param}"]
                out[f"head.classifier.{param}"] = value.flatten(1) if value.ndim == 4 else value
        deviations.append(
            "PSLA's mean pooling averages sigmoid outputs over time; pooling=mean averages features, "
            "then applies the classifier: outputs differ from the release"
        )
    else:
        raise PslaLayoutError(f"no PSLA mapping for head type {type(head).__name__}")


def translate_psla_state(state: dict[str, torch.Tensor], model: nn.Module) -> tuple[dict, dict[str, str], list[str]]:
    """PSLA keys (``module.`` already stripped) -> (our keys -> tensors, skipped key -> why, deviations: the
    ways the model will compute something other than the PSLA model, each a warning)."""
    backbone = getattr(model, "backbone", None)
    if not isinstance(backbone, nn.Module) or not hasattr(backbone, "blocks"):
        raise PslaLayoutError(f"PSLA checkpoints hold an EfficientNet; {type(model).__name__} is not one")
    modules = backbone_module_map(backbone)
    out: dict[str, torch.Tensor] = {}
    skipped: dict[str, str] = {}
    unmatched: list[str] = []
    for key, value in state.items():
        if key.startswith("effnet._fc."):
            skipped[key] = "efficientnet_pytorch's ImageNet classifier (unused by PSLA)"
        elif key.startswith("effnet."):
            module, _, param = key[len("effnet.") :].rpartition(".")
            if module in modules:
                out[f"backbone.{modules[module]}.{param}"] = value
            else:
                unmatched.append(key)
        elif not key.startswith("attention."):
            unmatched.append(key)
    if unmatched:
        raise PslaLayoutError(
            f"{len(unmatched)} checkpoint keys have no place in {type(model).__name__} "
            f"({getattr(model, 'timm_name', '')}), e.g. {unmatched[:10]}: a deeper EfficientNet?"
        )
    deviations: list[str] = []
    _translate_head(state, model.head, out, deviations)  # it dispatches on the head's type
    deviations += backbone_deviations(model)
    return out, skipped, deviations


def _symmetric_padding(conv: nn.Conv2d) -> tuple[int, ...]:
    return tuple(d * (k - 1) // 2 for k, d in zip(conv.kernel_size, conv.dilation))


def backbone_deviations(model: nn.Module) -> list[str]:
    """How the model's backbone computes something other than PSLA's efficientnet_pytorch backbone."""
    backbone = model.get_submodule("backbone")
    found = []
    eps = sorted({m.eps for m in backbone.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)})
    if eps != [PSLA_BN_EPS]:
        found.append(
            f"batch norm eps {', '.join(f'{e:g}' for e in eps)}, PSLA's backbone uses {PSLA_BN_EPS:g}: outputs "
            f"differ from the release; build efficientnet_b2_psla (or efficientnet_b0_psla)"
        )
    asymmetric = [
        name
        for name, m in backbone.named_modules()
        if isinstance(m, nn.Conv2d) and (type(m) is not nn.Conv2d or tuple(m.padding) != _symmetric_padding(m))
    ]
    if asymmetric:
        found.append(
            f"{len(asymmetric)} convs (e.g. {asymmetric[0]}) are not padded symmetrically by kernel // 2 as "
            f"efficientnet_pytorch pads them (TF 'same' padding?): outputs differ from the release; build "
            f"efficientnet_b2_psla (or efficientnet_b0_psla), not tf_variant=True"
        )
    n_mels = getattr(model, "model_config", {}).get("n_mels")
    if isinstance(n_mels, int):
        rows = -(-n_mels // 32)  # five stride-2 stages, each ceil(size / 2) with symmetric padding
        if rows != PSLA_POOLED_ROWS:
            found.append(
                f"n_mels={n_mels} gives {rows} frequency rows in the last feature map; PSLA averages the "
                f"first {PSLA_POOLED_ROWS} (it was trained on 128 mel bins) and this head averages all: "
                f"outputs differ from the release"
            )
    return found
