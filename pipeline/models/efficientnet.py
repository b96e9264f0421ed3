"""EfficientNet audio classifiers: a timm EfficientNet feature extractor plus a pooling head.

The input [batch, frames, mels] is turned into a one-channel image [batch, 1, mels, frames] as PSLA
(https://arxiv.org/abs/2102.01243) does, the backbone runs without its classifier or global pool, and a head from
:mod:`pipeline.models.pooling` turns the feature map into logits.

``tf_variant=True`` builds timm's ``tf_efficientnet_*`` instead: TensorFlow 'same' padding and
batch-norm eps 1e-3, the geometry of the efficientnet_pytorch backbone inside PSLA's checkpoints.
Import PSLA checkpoints into such a model; the plain variant loads them too but its outputs drift.
"""

from __future__ import annotations

import timm
import torch
from torch import nn

from .pooling import POOLING_CHOICES, make_pooling_head
from .pretrained import PretrainedUnavailable, load_timm_pretrained
from .registry import register_model


class EfficientNetAudio(nn.Module):
    classifier_prefixes = ("head.",)  # the whole pooling head is sized by num_classes

    def __init__(self, backbone: nn.Module, head: nn.Module, timm_name: str):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.timm_name = timm_name

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.ndim != 3:
            raise ValueError(f"{self.timm_name}: expected features [batch, frames, mels], got shape "
                             f"{tuple(features.shape)}")
        image = features.transpose(1, 2).unsqueeze(1)  # [batch, 1, mels, frames]
        return self.head(self.backbone.forward_features(image))


def _backbone(timm_name: str, pretrained_tag: str | None, pretrained: str) -> nn.Module:
    kwargs = dict(in_chans=1, num_classes=0, global_pool="")
    if pretrained == "none":
        return timm.create_model(timm_name, pretrained=False, **kwargs)
    if pretrained_tag is None:
        raise PretrainedUnavailable(f"no ImageNet weights are known for {timm_name!r}; use pretrained=none")
    return load_timm_pretrained(f"{timm_name}.{pretrained_tag}", **kwargs)


def build_efficientnet(timm_name: str, pretrained_tag: str | None, num_classes: int, pooling: str,
                       drop_rate: float, pretrained: str, attention_heads: int) -> EfficientNetAudio:
    if pooling not in POOLING_CHOICES:
        raise ValueError(f"{timm_name}: pooling must be one of {POOLING_CHOICES}, got {pooling!r}")
    backbone = _backbone(timm_name, pretrained_tag, pretrained)
    head = make_pooling_head(pooling, backbone.num_features, num_classes, attention_heads, drop_rate)
    return EfficientNetAudio(backbone, head, timm_name)


def _variant(size: str, tf_variant: bool) -> tuple[str, str]:
    """(timm model name, ImageNet weight tag). The TF weights are the ones efficientnet_pytorch ported."""
    return (f"tf_efficientnet_{size}", "in1k") if tf_variant else (f"efficientnet_{size}", "ra_in1k")


@register_model("EfficientNet-B2 (PSLA/CMKD paper CNN), ~7.7M backbone parameters")
def efficientnet_b2(num_classes: int, n_mels: int, target_length: int, pooling: str = "mean", drop_rate: float = 0.0,
                    pretrained: str = "none", attention_heads: int = 4, tf_variant: bool = False) -> EfficientNetAudio:
    timm_name, tag = _variant("b2", tf_variant)
    return build_efficientnet(timm_name, tag, num_classes, pooling, drop_rate, pretrained, attention_heads)


@register_model("EfficientNet-B0, ~4.0M backbone parameters: the CPU-sized CNN")
def efficientnet_b0(num_classes: int, n_mels: int, target_length: int, pooling: str = "mean", drop_rate: float = 0.0,
                    pretrained: str = "none", attention_heads: int = 4, tf_variant: bool = False) -> EfficientNetAudio:
    timm_name, tag = _variant("b0", tf_variant)
    return build_efficientnet(timm_name, tag, num_classes, pooling, drop_rate, pretrained, attention_heads)


@register_model("timm's minimal EfficientNet (test_efficientnet), ~0.1M parameters: tests and CPU demos")
def efficientnet_tiny(num_classes: int, n_mels: int, target_length: int, pooling: str = "mean", drop_rate: float = 0.0,
                      pretrained: str = "none", attention_heads: int = 4) -> EfficientNetAudio:
    return build_efficientnet("test_efficientnet", "r160_in1k", num_classes, pooling, drop_rate, pretrained,
                              attention_heads)
