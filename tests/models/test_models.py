"""The model zoo: registry, output contract (shape, pre-activation logits), paper-size forward passes,
heads and position tables, and ImageNet weights through a local cache (checkpoint import:
test_checkpoint_import.py beside this file)."""

from __future__ import annotations

import copy

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from pipeline.models import PretrainedUnavailable, create_model, list_models
from pipeline.models import pretrained as pretrained_module
from pipeline.models.ast import sincos_position_table
from pipeline.models.pooling import AttentionPoolingHead
from tests.helpers.models import SHORT, features

ALL_MODELS = [
    "ast_base",
    "ast_micro",
    "ast_tiny",
    "efficientnet_b0",
    "efficientnet_b0_psla",
    "efficientnet_b2",
    "efficientnet_b2_psla",
    "efficientnet_tiny",
]


@pytest.fixture(autouse=True)
def _one_thread():
    # one thread: on a shared 2-core machine a second OpenMP thread mostly spin-waits
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def short_models() -> dict[str, nn.Module]:
    """One model per registry name at a short input, built once (ast_base takes seconds to initialise)."""
    torch.manual_seed(0)
    return {name: create_model(name, num_classes=7, **SHORT).eval() for name in ALL_MODELS}


def final_layers(model: nn.Module) -> list[nn.Module]:
    """The layers that emit class scores, whatever the model family."""
    if hasattr(model, "mlp_head"):
        return [model.mlp_head[1]]
    head = model.head
    return list(head.classifier) if isinstance(head, AttentionPoolingHead) else [head.classifier]


def test_registry_lists_every_model():
    assert list_models() == sorted(ALL_MODELS)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_output_shape_on_short_input(short_models, name):
    with torch.no_grad():
        logits = short_models[name](features(3))
    assert logits.shape == (3, 7)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", ALL_MODELS)
def test_outputs_are_pre_activation_logits(short_models, name):
    model = copy.deepcopy(short_models[name])
    for value in (5.0, -5.0):
        with torch.no_grad():
            for layer in final_layers(model):
                layer.weight.zero_()
                layer.bias.fill_(value)
            logits = model(features(2))
        # a sigmoid or softmax inside would confine these to (0, 1)
        assert torch.allclose(logits, torch.full_like(logits, value), atol=1e-4)


@pytest.mark.parametrize("pooling", ["mean", "attention", "psla_attention"])
def test_efficientnet_pooling_choices(pooling):
    model = create_model("efficientnet_tiny", num_classes=4, pooling=pooling, n_mels=64, target_length=400).eval()
    with torch.no_grad():
        logits = model(features(2, 64, 400))
    assert logits.shape == (2, 4)
    assert model.model_config["pooling"] == pooling


def test_attention_pooling_is_a_softmax_over_time():
    head = AttentionPoolingHead(in_channels=2, num_classes=1, num_heads=1)
    with torch.no_grad():
        head.attention[0].weight.copy_(torch.tensor([[[50.0], [0.0]]]))  # attend where channel 0 is high
        head.attention[0].bias.zero_()
        head.classifier[0].weight.copy_(torch.tensor([[[0.0], [1.0]]]))  # class score = channel 1
        head.classifier[0].bias.zero_()
    feature_map = torch.zeros(1, 2, 3, 5)  # [batch, channels, freq, time]
    feature_map[0, 0, :, 3] = 1.0  # time step 3 is the salient one
    feature_map[0, 1] = torch.arange(5.0) * 10 - 7  # its class score is 23; the mean over time would be 13
    assert head(feature_map).item() == pytest.approx(23.0, abs=1e-3)


def test_paper_size_efficientnet_b2_forward():
    model = create_model("efficientnet_b2", num_classes=527, pooling="attention").eval()
    with torch.no_grad():
        logits = model(torch.randn(1, 1024, 128))
    assert logits.shape == (1, 527)


def test_paper_size_ast_base_forward():
    model = create_model("ast_base", num_classes=527).eval()
    assert model.grid == (12, 101)  # 1212 overlapping patches, as in the AST paper
    assert model.v.pos_embed.shape == (1, 1212 + 2, 768)
    with torch.no_grad():
        logits = model(torch.randn(1, 1024, 128))
    assert logits.shape == (1, 527)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_model_config_rebuilds_the_same_architecture(short_models, name, tmp_path):
    model = short_models[name]
    torch.save({"model_name": model.model_name, "model_config": model.model_config}, tmp_path / "id.pt")
    saved = torch.load(tmp_path / "id.pt", weights_only=True)  # plain values only, like training checkpoints
    rebuilt = create_model(saved["model_name"], **saved["model_config"])
    assert rebuilt.model_name == name
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}


def test_bad_requests_are_named():
    with pytest.raises(ValueError, match="did you mean"):
        create_model("efficientnet_b3x", num_classes=3)
    with pytest.raises(ValueError, match="unknown option"):
        create_model("ast_micro", num_classes=3, attention_heads=2)
    with pytest.raises(ValueError, match="AST pooling must be 'token'.*ast_pooling"):
        create_model("ast_micro", num_classes=3, pooling="attention")
    with pytest.raises(ValueError, match="n_mels >= 16"):
        create_model("ast_micro", num_classes=3, n_mels=8, target_length=100)
    model = create_model("ast_micro", num_classes=3, **SHORT)
    with pytest.raises(ValueError, match=r"\[batch, 100, 64\]"):
        model(torch.randn(1, 120, 64))


def test_each_model_gets_its_standard_head_by_default():
    assert create_model("ast_base", num_classes=3, n_mels=64, target_length=100).pooling == "token"  # the paper's
    assert create_model("ast_micro", num_classes=3, **SHORT).pooling == "max"
    assert create_model("efficientnet_tiny", num_classes=3, **SHORT).model_config["pooling"] == "mean"


def test_ast_max_pooling_reads_the_loudest_patch_not_the_class_token():
    torch.manual_seed(0)
    model = create_model("ast_micro", num_classes=3, pooling="max", **SHORT).eval()
    tokens = torch.randn(2, 2 + model.grid[0] * model.grid[1], model.v.embed_dim)
    tokens[:, :2] = 100.0  # class and distillation tokens: ignored by the max readout
    model.v.forward_features = lambda image: tokens
    with torch.no_grad():
        logits = model(torch.zeros(2, 100, 64))
    expected = model.mlp_head[1](model.mlp_head[0](tokens[:, 2:].amax(dim=1)))
    torch.testing.assert_close(logits, expected)
    token_model = create_model("ast_micro", num_classes=3, pooling="token", **SHORT).eval()
    assert set(token_model.state_dict()) == set(model.state_dict())  # same weights: checkpoints interchange


def test_one_recipe_pools_each_family_with_its_own_key():
    from pipeline.recipe import load_config
    from pipeline.training.model_options import pooling_for

    config = load_config(None, ["pooling=attention", "model=efficientnet_tiny"])
    assert pooling_for(config) == "attention"
    ast = load_config(None, ["pooling=attention", "model=ast_micro"])
    assert pooling_for(ast) is None  # the model's own head, not the CNN's
    assert pooling_for(load_config(None, ["model=ast_base", "ast_pooling=max"])) == "max"


def test_sincos_position_table_is_fixed_and_tells_positions_apart():
    table = sincos_position_table((4, 49), 96)
    assert table.shape == (1, 2 + 4 * 49, 96)
    assert torch.equal(table[0, :2], torch.zeros(2, 96))  # class and distillation tokens carry no position
    patches = table[0, 2:]
    assert torch.cdist(patches, patches).add(torch.eye(4 * 49)).min() > 0.1  # every patch has its own row
    grid = patches.reshape(4, 49, 96)
    assert torch.equal(grid[:, 0, :48], grid[:, 48, :48])  # the first half of the channels: frequency only
    assert torch.equal(grid[0, :, 48:], grid[3, :, 48:])  # the second half: time only
    with pytest.raises(ValueError, match="divisible by 4"):
        sincos_position_table((2, 2), 90)

    from pipeline.recipe import load_config
    from pipeline.training.model_options import model_options_for

    model = create_model("ast_micro", num_classes=3, **SHORT, position="sincos")
    assert model.model_config["position"] == "sincos" and not model.v.pos_embed.requires_grad
    torch.testing.assert_close(model.v.pos_embed.detach(), sincos_position_table(model.grid, 96))
    assert create_model("ast_micro", num_classes=3, **SHORT).v.pos_embed.requires_grad  # learned by default
    assert model_options_for(load_config(None, ["model=ast_micro", "ast_position=sincos"])) == {"position": "sincos"}
    assert model_options_for(load_config(None, ["model=efficientnet_tiny", "ast_position=sincos"])) == {}
    with pytest.raises(ValueError, match="use position=learned"):
        create_model("ast_tiny", num_classes=3, **SHORT, position="sincos", pretrained="imagenet")


def test_recipe_sets_the_ast_patch_strides_and_the_cnn_ignores_them():
    from pipeline.recipe import load_config
    from pipeline.training.model_options import model_options_for

    config = load_config(None, ["model=ast_micro", "ast_freq_stride=8", "ast_time_stride=16"])
    options = model_options_for(config)
    assert options == {"freq_stride": 8, "time_stride": 16}
    model = create_model("ast_micro", num_classes=3, **SHORT, **options)
    height, width = SHORT["n_mels"], SHORT["target_length"]
    assert model.grid == ((height - 16) // 8 + 1, (width - 16) // 16 + 1)  # overlapping patches in frequency
    assert model.model_config["freq_stride"] == 8  # saved with the checkpoint, so stage one rebuilds it
    assert model_options_for(load_config(None, ["model=efficientnet_tiny", "ast_freq_stride=8"])) == {}
    from pipeline.config_check import check_config

    with pytest.raises(ValueError, match="ast_freq_stride"):
        check_config(load_config(None, ["ast_freq_stride=20"]))


# ---------------------------------------------------------------- ImageNet weights


def fake_hub_cache(root, repo_id: str, model: nn.Module) -> None:
    """A Hugging Face cache entry (refs/main -> snapshot) holding this model's weights."""
    folder = root / f"models--{repo_id.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text("0" * 40)
    snapshot = folder / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(snapshot / "model.safetensors"))


def test_imagenet_offline_fails_at_once(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))  # an empty cache
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError, match="efficientnet_b0.*pretrained=none"):
        create_model("efficientnet_b0", num_classes=3, pretrained="imagenet")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(pretrained_module, "HUB_HOST", "weights.invalid")  # the reachability probe must fail
    with pytest.raises(PretrainedUnavailable, match="cannot be reached"):
        create_model("ast_tiny", num_classes=3, pretrained="imagenet", **SHORT)
    with pytest.raises(PretrainedUnavailable, match="no ImageNet counterpart"):
        create_model("ast_micro", num_classes=3, pretrained="imagenet", **SHORT)


def test_imagenet_cnn_from_cache_sums_rgb_into_one_channel(monkeypatch, tmp_path):
    import timm

    imagenet = timm.create_model("test_efficientnet")
    fake_hub_cache(tmp_path, "timm/test_efficientnet.r160_in1k", imagenet)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = create_model("efficientnet_tiny", num_classes=3, pretrained="imagenet", **SHORT)
    assert "pretrained" not in model.model_config  # a rebuild from a checkpoint must not go back to ImageNet
    expected = imagenet.conv_stem.weight.sum(dim=1, keepdim=True)
    assert torch.allclose(model.backbone.conv_stem.weight, expected)
    assert torch.equal(model.backbone.blocks[3][0].conv_pwl.weight, imagenet.blocks[3][0].conv_pwl.weight)


def test_imagenet_ast_from_cache_adapts_patches_and_positions(monkeypatch, tmp_path):
    import timm

    deit = timm.create_model("deit_tiny_distilled_patch16_224")
    fake_hub_cache(tmp_path, "timm/deit_tiny_distilled_patch16_224.fb_in1k", deit)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = create_model("ast_tiny", num_classes=3, pretrained="imagenet", **SHORT)
    assert model.grid == (5, 9)
    assert torch.allclose(model.v.patch_embed.proj.weight, deit.patch_embed.proj.weight.sum(dim=1, keepdim=True))
    assert torch.equal(model.v.dist_token, deit.dist_token)
    # both axes are smaller than DeiT's 14x14 grid, so AST's rule keeps the centre rows and columns
    source_grid = deit.pos_embed[0, 2:].reshape(14, 14, -1)
    centre = source_grid[7 - 5 // 2 : 7 - 5 // 2 + 5, 7 - 9 // 2 : 7 - 9 // 2 + 9]
    assert torch.equal(model.v.pos_embed[0, 2:].reshape(5, 9, -1), centre)
    assert torch.equal(model.v.pos_embed[0, :2], deit.pos_embed[0, :2])
