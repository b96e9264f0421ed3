"""Heads that turn a CNN feature map [batch, channels, freq, time] into pre-activation logits.

- ``mean``: average over frequency and time, then a linear layer.
- ``attention``: multi-head attention pooling over time in the PSLA layout (per head one 1x1 conv
  for attention scores and one for class scores, learnable head weights starting at 1/heads), but
  kept in logit space: the attention is a softmax over time and the pooled values are class
  *logits*, so nothing squashes the output.
- ``psla_attention``: PSLA's exact head (sigmoid attention clamped to [1e-7, 1 - 1e-7] and normalised
  by its sum over time, sigmoid class scores, heads summed with their learned weights) followed by
  logit(p): sigmoid(our output) equals the PSLA model's probability up to the 1e-7 clamp. The head of
  ``efficientnet_*_psla``, of the FSD50K/AudioSet CNN recipes and of the imported PSLA teachers.

All heads average the frequency axis first, which is what PSLA's AvgPool2d((4, 1)) does for
128 mel bins, but works for any number of bins.
"""

from __future__ import annotations

import torch
from torch import nn

POOLING_CHOICES = ("mean", "attention", "psla_attention")
PSLA_EPSILON = 1e-7  # PSLA clamps attention (and we clamp the pooled probability) to [eps, 1 - eps]


class MeanPoolingHead(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, drop_rate: float = 0.0):
        super().__init__()
        self.dropout = nn.Dropout(drop_rate)
        self.classifier = nn.Linear(in_channels, num_classes)

    def forward(self, feature_map: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(feature_map.mean(dim=(2, 3))))


class AttentionPoolingHead(nn.Module):
    """Multi-head attention pooling over time; returns logits (softmax attention, linear class scores)."""

    def __init__(self, in_channels: int, num_classes: int, num_heads: int = 4, drop_rate: float = 0.0):
        super().__init__()
        if num_heads < 1:
            raise ValueError(f"attention pooling needs at least one head, got {num_heads}")
        self.dropout = nn.Dropout(drop_rate)
        self.attention = nn.ModuleList(nn.Conv1d(in_channels, num_classes, 1) for _ in range(num_heads))
        self.classifier = nn.ModuleList(nn.Conv1d(in_channels, num_classes, 1) for _ in range(num_heads))
        self.head_weights = nn.Parameter(torch.full((num_heads,), 1.0 / num_heads))

    def pool_one_head(self, scores: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """scores, values: [batch, classes, time] -> [batch, classes]."""
        return (scores.softmax(dim=-1) * values).sum(dim=-1)

    def finish(self, pooled: torch.Tensor) -> torch.Tensor:
        return pooled

    def forward(self, feature_map: torch.Tensor) -> torch.Tensor:
        sequence = self.dropout(feature_map.mean(dim=2))  # [batch, channels, time]
        per_head = [
            self.pool_one_head(att(sequence), cla(sequence)) for att, cla in zip(self.attention, self.classifier)
        ]
        pooled = torch.einsum("h,hbc->bc", self.head_weights, torch.stack(per_head))
        return self.finish(pooled)


class PslaAttentionHead(AttentionPoolingHead):
    """PSLA's MHeadAttention arithmetic, returned as logit(probability) so the output stays pre-sigmoid."""

    def pool_one_head(self, scores: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        attention = torch.sigmoid(scores).clamp(PSLA_EPSILON, 1.0 - PSLA_EPSILON)
        attention = attention / attention.sum(dim=-1, keepdim=True)
        return (attention * torch.sigmoid(values)).sum(dim=-1)

    def finish(self, pooled: torch.Tensor) -> torch.Tensor:
        probability = pooled.clamp(PSLA_EPSILON, 1.0 - PSLA_EPSILON)
        return torch.log(probability) - torch.log1p(-probability)


def make_pooling_head(
    pooling: str, in_channels: int, num_classes: int, attention_heads: int, drop_rate: float
) -> nn.Module:
    if pooling == "mean":
        return MeanPoolingHead(in_channels, num_classes, drop_rate)
    if pooling == "attention":
        return AttentionPoolingHead(in_channels, num_classes, attention_heads, drop_rate)
    if pooling == "psla_attention":
        return PslaAttentionHead(in_channels, num_classes, attention_heads, drop_rate)
    raise ValueError(f"pooling must be one of {POOLING_CHOICES}, got {pooling!r}")
