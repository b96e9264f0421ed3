"""The AST release path and the fbank front end against Hugging Face transformers, an AST port this
project did not write (``ASTForAudioClassification``, ``ASTFeatureExtractor``; pinned in
requirements-test.txt). Nothing is downloaded: the model is built from an ``ASTConfig`` with random
weights.

A state dict in the published AST layout (``module.v.*``, ``module.mlp_head.*``, the unused ImageNet
heads) is written once, loaded by this project's importer and mapped by hand, here, into the
transformers model; both must give the same logits. The feature extractor is run on its own numpy
implementation of the Kaldi filterbank (transformers' ``audio_utils.spectrogram``), not torchaudio,
and on its torchaudio path.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.config import FrontEndConfig
from pipeline.features import wave_to_features
from pipeline.models import create_model
from tests.helpers.checkpoints import ast_layout

transformers = pytest.importorskip("transformers")
from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification  # noqa: E402
from transformers.models.audio_spectrogram_transformer import (  # noqa: E402
    feature_extraction_audio_spectrogram_transformer as hf_features,
)

MEAN, STD = -4.2677393, 4.5689974  # AST's AudioSet statistics (ast src/run.py), divided by 2 * std
WIDTH, DEPTH, HEADS, CLASSES = 96, 3, 2, 7


def published_to_transformers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The published AST key names -> transformers 5's, the fused qkv split into q, k, v."""
    prefix = "audio_spectrogram_transformer."
    out = {}
    plain = {
        "v.cls_token": "embeddings.cls_token",
        "v.dist_token": "embeddings.distillation_token",
        "v.pos_embed": "embeddings.position_embeddings",
        "v.patch_embed.proj.weight": "embeddings.patch_embeddings.projection.weight",
        "v.patch_embed.proj.bias": "embeddings.patch_embeddings.projection.bias",
        "v.norm.weight": "layernorm.weight",
        "v.norm.bias": "layernorm.bias",
    }
    per_block = {
        "norm1": "layernorm_before",
        "norm2": "layernorm_after",
        "attn.proj": "attention.o_proj",
        "mlp.fc1": "mlp.fc1",
        "mlp.fc2": "mlp.fc2",
    }
    for key, value in state.items():
        key = key.removeprefix("module.")
        if key.startswith(("v.head.", "v.head_dist.")):
            continue  # the ImageNet heads AST never uses
        if key in plain:
            out[prefix + plain[key]] = value
        elif key.startswith("mlp_head."):
            index, kind = key.split(".")[1:]
            out[f"classifier.{'layernorm' if index == '0' else 'dense'}.{kind}"] = value
        elif key.startswith("v.blocks."):
            _, _, block, rest = key.split(".", 3)
            module, kind = rest.rsplit(".", 1)
            if module == "attn.qkv":
                for name, part in zip(("q_proj", "k_proj", "v_proj"), value.chunk(3, dim=0)):
                    out[f"{prefix}layers.{block}.attention.{name}.{kind}"] = part
            else:
                out[f"{prefix}layers.{block}.{per_block[module]}.{kind}"] = value
        else:
            raise KeyError(key)
    return out


def transformers_ast(state: dict[str, torch.Tensor]) -> torch.nn.Module:
    config = ASTConfig(
        hidden_size=WIDTH,
        num_hidden_layers=DEPTH,
        num_attention_heads=HEADS,
        intermediate_size=4 * WIDTH,
        hidden_act="gelu",
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        layer_norm_eps=1e-6,
        patch_size=16,
        qkv_bias=True,
        frequency_stride=10,
        time_stride=10,
        max_length=1024,
        num_mel_bins=128,
        num_labels=CLASSES,
    )
    model = ASTForAudioClassification(config).eval()
    # AST's blocks use timm's LayerNorm eps 1e-6, its mlp_head torch's default 1e-5; transformers has one eps
    model.classifier.layernorm.eps = 1e-5
    missing, unexpected = model.load_state_dict(published_to_transformers(state), strict=True)
    assert not missing and not unexpected
    return model


def release_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A random AST at the release geometry (128 mel bins, 1024 frames, stride 10: 12 x 101 patches)
    in the published layout, with non-trivial norms so every parameter matters."""
    torch.manual_seed(seed)
    model = create_model(
        "ast_micro",
        num_classes=CLASSES,
        n_mels=128,
        target_length=1024,
        pooling="token",
        freq_stride=10,
        time_stride=10,
    )
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "norm" in name or name.startswith("mlp_head.0"):
                parameter.add_(0.1 * torch.randn_like(parameter))
    return ast_layout(model)


def clip(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    wave = 0.3 * np.sin(2 * np.pi * 440 * t) * (1 + np.sin(2 * np.pi * 3 * t)) + 0.05 * rng.standard_normal(t.size)
    return (wave + 0.01).astype(np.float32)  # a DC offset: AST removes the clip's mean first


def extractor(numpy_path: bool, monkeypatch) -> ASTFeatureExtractor:
    if numpy_path:  # transformers' own filterbank instead of torchaudio's
        monkeypatch.setattr(hf_features, "is_speech_available", lambda: False)
    return ASTFeatureExtractor(
        feature_size=1, sampling_rate=16000, num_mel_bins=128, max_length=1024, do_normalize=True, mean=MEAN, std=STD
    )


def centred(wave: np.ndarray) -> np.ndarray:
    """Upstream's dataloader removes the clip's mean before kaldi.fbank; transformers' extractor does not."""
    tensor = torch.from_numpy(wave)
    return (tensor - tensor.mean()).numpy()


@pytest.mark.parametrize("seconds", [3.0, 12.0])  # padded and cut to 1024 frames
def test_front_end_is_transformers_torchaudio_path_exactly(seconds, monkeypatch):
    wave = clip(seconds, seed=int(seconds))
    reference = extractor(False, monkeypatch)(centred(wave), sampling_rate=16000, return_tensors="pt")["input_values"][
        0
    ]
    ours = wave_to_features(
        wave, FrontEndConfig(n_mels=128, target_length=1024, norm_mean=MEAN, norm_std=STD, norm_divisor=2.0)
    )
    assert ours.shape == reference.shape == (1024, 128)
    assert torch.equal(ours, reference.float())


@pytest.mark.parametrize("seconds", [3.0, 12.0])
def test_front_end_matches_transformers_numpy_filterbank(seconds, monkeypatch):
    # transformers' own Kaldi-style filterbank in float64 numpy: measured max 7.8e-5, mean 5.5e-7
    # (normalised units, i.e. x 9.14 in log-mel), the largest differences in the lowest mel bins
    wave = clip(seconds, seed=int(seconds))
    reference = extractor(True, monkeypatch)(centred(wave), sampling_rate=16000, return_tensors="pt")["input_values"][0]
    ours = wave_to_features(
        wave, FrontEndConfig(n_mels=128, target_length=1024, norm_mean=MEAN, norm_std=STD, norm_divisor=2.0)
    )
    difference = (ours - reference.float()).abs()
    assert float(difference.max()) < 1e-4 and float(difference.mean()) < 1e-6


def test_release_import_matches_transformers_ast(tmp_path, monkeypatch):
    state = release_state()
    path = tmp_path / "audioset_10_10_0.4593.pth"  # the release's name: its 12 x 101 grid comes from it
    torch.save(state, path)
    ours = create_model(
        "ast_micro",
        num_classes=CLASSES,
        n_mels=128,
        target_length=1024,
        pooling="token",
        freq_stride=10,
        time_stride=10,
        checkpoint=path,
    ).eval()
    assert ours.import_report.layout == "ast" and not ours.import_report.interpolated
    reference = transformers_ast(state)
    hf = extractor(True, monkeypatch)
    waves = [clip(4.0, 1), clip(10.24, 2)]
    inputs = hf([centred(w) for w in waves], sampling_rate=16000, return_tensors="pt")["input_values"].float()
    with torch.no_grad():
        expected = reference(input_values=inputs).logits
        got = ours(inputs)
    assert torch.allclose(got, expected, atol=1e-5), float((got - expected).abs().max())
    # and from our own front end, end to end
    config = FrontEndConfig(n_mels=128, target_length=1024, norm_mean=MEAN, norm_std=STD, norm_divisor=2.0)
    ours_features = torch.stack([wave_to_features(w, config) for w in waves])
    with torch.no_grad():
        assert torch.allclose(ours(ours_features), expected, atol=1e-5)
