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
"""

from __future__ import annotations

import torch
from torch import nn

from .pooling import AttentionPoolingHead, MeanPoolingHead, PslaAttentionHead

_TOP_LEVEL = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2"}
_INVERTED_RESIDUAL = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                      "_se_reduce": "se.conv_reduce", "_se_expand": "se.conv_expand", "_project_conv": "conv_pwl",
                      "_bn2": "bn3"}
_DEPTHWISE_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_se_reduce": "se.conv_reduce",
                        "_se_expand": "se.conv_expand", "_project_conv": "conv_pw", "_bn2": "bn2"}


class PslaLayoutError(ValueError):
    """A PSLA checkpoint does not fit the model it is loaded into."""


def is_psla_layout(state: dict) -> bool:
    return any(k.startswith("effnet.") for k in state)


def backbone_module_map(backbone: nn.Module) -> dict[str, str]:
    """efficientnet_pytorch module path -> timm module path, for a timm EfficientNet."""
    mapping = dict(_TOP_LEVEL)
    flat = 0
    for stage_index, stage in enumerate(backbone.blocks):
        for block_index, block in enumerate(stage):
            # duck typing on timm's block attributes, so no private timm classes are imported
            if hasattr(block, "conv_pwl"):
                table = _INVERTED_RESIDUAL
            elif hasattr(block, "conv_dw") and hasattr(block, "conv_pw"):
                table = _DEPTHWISE_SEPARABLE
            else:
                raise PslaLayoutError(f"backbone block {stage_index}.{block_index} ({type(block).__name__}) has no "
                                      f"efficientnet_pytorch counterpart; PSLA checkpoints need an efficientnet_b0/b2")
            for theirs, ours in table.items():
                mapping[f"_blocks.{flat}.{theirs}"] = f"blocks.{stage_index}.{block_index}.{ours}"
            flat += 1
    return mapping


def _translate_head(state: dict, head: nn.Module, out: dict, notes: list[str]) -> None:
    multi = sorted({int(k.split(".")[2]) for k in state if k.startswith("attention.att.") and k.split(".")[2].isdigit()})
    single = "attention.att.weight" in state
    if isinstance(head, AttentionPoolingHead):
        if not (multi or single):
            raise PslaLayoutError("checkpoint has PSLA mean pooling (no attention.att.*); build with pooling=mean")
        heads = len(multi) if multi else 1
        if heads != len(head.attention):
            raise PslaLayoutError(f"checkpoint has {heads} attention heads, model has {len(head.attention)}: "
                                  f"build with attention_heads={heads}")
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
            notes.append("PSLA trained these attention weights for its sigmoid arithmetic; pooling=attention uses "
                         "softmax/logit pooling, so outputs differ: build with pooling=psla_attention to reproduce PSLA")
    elif isinstance(head, MeanPoolingHead):
        if multi or single:
            raise PslaLayoutError("checkpoint has PSLA attention pooling; build with pooling=psla_attention")
        for param in ("weight", "bias"):
            if f"attention.cla.{param}" in state:
                value = state[f"attention.cla.{param}"]
                out[f"head.classifier.{param}"] = value.flatten(1) if value.ndim == 4 else value
        notes.append("PSLA mean pooling averages sigmoid outputs over time; pooling=mean averages features, then "
                     "applies the classifier: outputs differ from the PSLA model")
    else:
        raise PslaLayoutError(f"no PSLA mapping for head type {type(head).__name__}")


def translate_psla_state(state: dict[str, torch.Tensor], model: nn.Module) -> tuple[dict, dict[str, str], list[str]]:
    """PSLA keys (``module.`` already stripped) -> (our keys -> tensors, skipped key -> why, notes)."""
    if not hasattr(model, "backbone") or not hasattr(model.backbone, "blocks"):
        raise PslaLayoutError(f"PSLA checkpoints hold an EfficientNet; {type(model).__name__} is not one")
    modules = backbone_module_map(model.backbone)
    out: dict[str, torch.Tensor] = {}
    skipped: dict[str, str] = {}
    unmatched: list[str] = []
    for key, value in state.items():
        if key.startswith("effnet._fc."):
            skipped[key] = "efficientnet_pytorch's ImageNet classifier (unused by PSLA)"
        elif key.startswith("effnet."):
            module, _, param = key[len("effnet."):].rpartition(".")
            if module in modules:
                out[f"backbone.{modules[module]}.{param}"] = value
            else:
                unmatched.append(key)
        elif not key.startswith("attention."):
            unmatched.append(key)
    if unmatched:
        raise PslaLayoutError(f"{len(unmatched)} checkpoint keys have no place in {type(model).__name__} "
                              f"({getattr(model, 'timm_name', '')}), e.g. {unmatched[:10]}: a deeper EfficientNet?")
    notes: list[str] = []
    _translate_head(state, model.head, out, notes)
    if not getattr(model, "timm_name", "").startswith("tf_"):
        notes.append("efficientnet_pytorch uses TF 'same' padding and BN eps 1e-3: build with tf_variant=True")
    notes.append("efficientnet_pytorch pads stride-2 convs statically for its ImageNet image size; timm pads for "
                 "the actual input, one pixel apart at some layers: outputs stay close to PSLA's, not identical")
    return out, skipped, notes
