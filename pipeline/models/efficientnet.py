"""EfficientNet audio classifiers: a timm EfficientNet feature extractor plus a pooling head.

The input [batch, frames, mels] is turned into a one-channel image [batch, 1, mels, frames] as PSLA
(https://arxiv.org/abs/2102.01243) does, the backbone runs without its classifier or global pool, and a head from
:mod:`pipeline.models.pooling` turns the feature map into logits.

``tf_variant=True`` builds timm's ``tf_efficientnet_*`` instead: TensorFlow 'same' padding (asymmetric
at stride 2) and batch-norm eps 1e-3. That is *not* PSLA's backbone: efficientnet_pytorch 0.7.0, which
PSLA uses, pads every conv symmetrically by kernel // 2 (its static padding rounds both sides up, so
TF's asymmetric pad never happens) with batch-norm eps 1e-3.

``efficientnet_b2_psla`` / ``efficientnet_b0_psla`` are PSLA's ``EffNetAttention`` (psla's
``src/models/Models.py``): timm's ``tf_efficientnet_*`` architecture built with symmetric padding, BN
eps 1e-3 and momentum 0.01, stochastic depth 0.2 (efficientnet_pytorch's drop-connect rate, scaled by
block index the same way), PSLA's 4-head sigmoid attention head (``psla_attention``) by default, and
with ``pretrained=imagenet`` the TF-ported AutoAugment ImageNet weights (``tf_efficientnet_*.aa_in1k``,
the TF release efficientnet_pytorch's ``from_pretrained`` also ported) with a freshly initialised
one-channel stem, as ``EfficientNet.from_pretrained(..., in_channels=1)`` builds it. Published PSLA
files import into these exactly (tests/models/test_psla_reference.py compares with efficientnet_pytorch).
"""

from __future__ import annotations

import timm
import torch
from timm.models.efficientnet import EfficientNet
from torch import nn

from .pooling import POOLING_CHOICES, make_pooling_head
from .pretrained import PretrainedUnavailable, load_timm_pretrained
from .registry import register_model


class EfficientNetAudio(nn.Module):
    classifier_prefixes = ("head.",)  # the whole pooling head is sized by num_classes

    def __init__(self, backbone: EfficientNet, head: nn.Module, timm_name: str):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.timm_name = timm_name

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.ndim != 3:
            raise ValueError(
                f"{self.timm_name}: expected features [batch, frames, mels], got shape {tuple(features.shape)}"
            )
        image = features.transpose(1, 2).unsqueeze(1)  # [batch, 1, mels, frames]
        return self.head(self.backbone.forward_features(image))


def _as_efficientnet(model: nn.Module, timm_name: str) -> EfficientNet:
    # timm.create_model is typed nn.Module; every timm name used here builds timm's EfficientNet class
    if not isinstance(model, EfficientNet):
        raise TypeError(f"timm built a {type(model).__name__} for {timm_name!r}, not an EfficientNet")
    return model


def _backbone(timm_name: str, pretrained_tag: str | None, pretrained: str, **builder_kwargs) -> EfficientNet:
    kwargs = dict(in_chans=1, num_classes=0, global_pool="", **builder_kwargs)
    if pretrained == "none":
        return _as_efficientnet(timm.create_model(timm_name, pretrained=False, **kwargs), timm_name)
    if pretrained_tag is None:
        raise PretrainedUnavailable(f"no ImageNet weights are known for {timm_name!r}; use pretrained=none")
    return _as_efficientnet(load_timm_pretrained(f"{timm_name}.{pretrained_tag}", **kwargs), timm_name)


def build_efficientnet(
    timm_name: str,
    pretrained_tag: str | None,
    num_classes: int,
    pooling: str,
    drop_rate: float,
    pretrained: str,
    attention_heads: int,
    backbone: EfficientNet | None = None,
) -> EfficientNetAudio:
    if pooling not in POOLING_CHOICES:
        raise ValueError(f"{timm_name}: pooling must be one of {POOLING_CHOICES}, got {pooling!r}")
    backbone = backbone if backbone is not None else _backbone(timm_name, pretrained_tag, pretrained)
    head = make_pooling_head(pooling, backbone.num_features, num_classes, attention_heads, drop_rate)
    return EfficientNetAudio(backbone, head, timm_name)


def _variant(size: str, tf_variant: bool) -> tuple[str, str]:
    """(timm model name, ImageNet weight tag)."""
    return (f"tf_efficientnet_{size}", "in1k") if tf_variant else (f"efficientnet_{size}", "ra_in1k")


# efficientnet_pytorch 0.7.0's settings for every EfficientNet (its utils.efficientnet()): BN eps 1e-3 and
# momentum 0.99 in TF's convention (0.01 in PyTorch's), drop-connect 0.2; padding="" is timm's symmetric
# kernel // 2, which is what efficientnet_pytorch's static "same" padding amounts to (see the module doc)
PSLA_BACKBONE_ARGS = {"pad_type": "", "bn_eps": 1e-3, "bn_momentum": 0.01, "drop_path_rate": 0.2}
# the TF AutoAugment checkpoints: efficientnet_pytorch's standard (non-AdvProp) weights are ports of these
PSLA_IMAGENET_TAG = "aa_in1k"


def psla_backbone(size: str, pretrained: str) -> EfficientNet:
    """PSLA's efficientnet_pytorch backbone (``EfficientNet.from_name`` / ``from_pretrained`` with
    in_channels=1) built by timm."""
    backbone = _backbone(f"tf_efficientnet_{size}", PSLA_IMAGENET_TAG, pretrained, **PSLA_BACKBONE_ARGS)
    if pretrained != "none":
        # efficientnet_pytorch replaces the ImageNet stem by a new randomly initialised 1-channel conv
        # (PyTorch's default init); timm instead sums the RGB filters
        stem = backbone.conv_stem
        fresh = nn.Conv2d(1, stem.out_channels, stem.kernel_size, stem.stride, stem.padding, bias=False)
        with torch.no_grad():
            stem.weight.copy_(fresh.weight)
    return backbone


def build_psla_efficientnet(
    size: str, num_classes: int, pooling: str, drop_rate: float, pretrained: str, attention_heads: int
) -> EfficientNetAudio:
    return build_efficientnet(
        f"tf_efficientnet_{size}",
        PSLA_IMAGENET_TAG,
        num_classes,
        pooling,
        drop_rate,
        pretrained,
        attention_heads,
        backbone=psla_backbone(size, pretrained),
    )


@register_model("EfficientNet-B2 (PSLA/CMKD paper CNN), ~7.7M backbone parameters")
def efficientnet_b2(
    num_classes: int,
    n_mels: int,
    target_length: int,
    pooling: str = "mean",
    drop_rate: float = 0.0,
    pretrained: str = "none",
    attention_heads: int = 4,
    tf_variant: bool = False,
) -> EfficientNetAudio:
    timm_name, tag = _variant("b2", tf_variant)
    return build_efficientnet(timm_name, tag, num_classes, pooling, drop_rate, pretrained, attention_heads)


@register_model("EfficientNet-B0, ~4.0M backbone parameters: the CPU-sized CNN")
def efficientnet_b0(
    num_classes: int,
    n_mels: int,
    target_length: int,
    pooling: str = "mean",
    drop_rate: float = 0.0,
    pretrained: str = "none",
    attention_heads: int = 4,
    tf_variant: bool = False,
) -> EfficientNetAudio:
    timm_name, tag = _variant("b0", tf_variant)
    return build_efficientnet(timm_name, tag, num_classes, pooling, drop_rate, pretrained, attention_heads)


@register_model("timm's minimal EfficientNet (test_efficientnet), ~0.1M parameters: tests and CPU demos")
def efficientnet_tiny(
    num_classes: int,
    n_mels: int,
    target_length: int,
    pooling: str = "mean",
    drop_rate: float = 0.0,
    pretrained: str = "none",
    attention_heads: int = 4,
) -> EfficientNetAudio:
    return build_efficientnet(
        "test_efficientnet", "r160_in1k", num_classes, pooling, drop_rate, pretrained, attention_heads
    )


@register_model(
    "PSLA's EfficientNet-B2 (efficientnet_pytorch geometry, BN eps 1e-3, 4-head sigmoid attention): "
    "the published PSLA teachers import into it exactly"
)
def efficientnet_b2_psla(
    num_classes: int,
    n_mels: int,
    target_length: int,
    pooling: str = "psla_attention",
    drop_rate: float = 0.0,
    pretrained: str = "none",
    attention_heads: int = 4,
) -> EfficientNetAudio:
    return build_psla_efficientnet("b2", num_classes, pooling, drop_rate, pretrained, attention_heads)


@register_model("PSLA's EfficientNet-B0 (as efficientnet_b2_psla, PSLA's eff_b=0): the CPU-sized PSLA CNN")
def efficientnet_b0_psla(
    num_classes: int,
    n_mels: int,
    target_length: int,
    pooling: str = "psla_attention",
    drop_rate: float = 0.0,
    pretrained: str = "none",
    attention_heads: int = 4,
) -> EfficientNetAudio:
    return build_psla_efficientnet("b0", num_classes, pooling, drop_rate, pretrained, attention_heads)
