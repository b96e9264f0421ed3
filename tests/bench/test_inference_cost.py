"""The MAC count behind `make bench`'s inference_cost entry, against the transformer's arithmetic done
by hand (an independent count: patch embedding, per layer 4 D^2 + 8 D^2 per token for the
projections and the MLP, 2 N^2 D for attention scores and their weighted sum, the classifier)."""

import torch

from bench.inference import count_macs
from pipeline.models import create_model


def test_ast_macs_are_the_hand_count_attention_included():
    mels, frames, stride, width, depth, classes = 64, 600, 12, 96, 3, 20
    model = create_model(
        "ast_micro",
        num_classes=classes,
        n_mels=mels,
        target_length=frames,
        position="sincos",
        freq_stride=stride,
        time_stride=stride,
    ).eval()
    patches = ((mels - 16) // stride + 1) * ((frames - 16) // stride + 1)
    tokens = patches + 2  # class and distillation tokens
    per_layer = tokens * 4 * width * width + tokens * 8 * width * width + 2 * tokens * tokens * width
    expected = patches * 16 * 16 * width + depth * per_layer + width * classes
    assert count_macs(model, torch.randn(1, frames, mels)) == expected


def test_a_linear_layer_is_in_times_out():
    assert count_macs(torch.nn.Linear(30, 7), torch.randn(1, 30)) == 30 * 7
