"""The model zoo: registry, output contract (shape, pre-activation logits), paper-size forward passes,
checkpoint import (AST, PSLA and our own layouts) and ImageNet weights through a local cache."""

from __future__ import annotations

import copy

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from pipeline.models import PretrainedUnavailable, create_model, list_models, load_pretrained_checkpoint
from pipeline.models import pretrained as pretrained_module
from pipeline.models.ast import resize_pos_embed, sincos_position_table
from pipeline.models.checkpoint_import import CheckpointImportError
from pipeline.models.pooling import AttentionPoolingHead
from pipeline.models.psla_layout import PslaLayoutError

ALL_MODELS = ["ast_base", "ast_micro", "ast_tiny", "efficientnet_b0", "efficientnet_b2", "efficientnet_tiny"]
SHORT = {"n_mels": 64, "target_length": 100}


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


def features(batch: int, n_mels: int = 64, target_length: int = 100) -> torch.Tensor:
    return torch.randn(batch, target_length, n_mels, generator=torch.Generator().manual_seed(1))


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
    from pipeline.training.loop import pooling_for

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
    from pipeline.training.loop import model_options_for

    model = create_model("ast_micro", num_classes=3, **SHORT, position="sincos")
    assert model.model_config["position"] == "sincos" and not model.v.pos_embed.requires_grad
    torch.testing.assert_close(model.v.pos_embed.detach(), sincos_position_table(model.grid, 96))
    assert create_model("ast_micro", num_classes=3, **SHORT).v.pos_embed.requires_grad  # learned by default
    assert model_options_for(load_config(None, ["model=ast_micro", "ast_position=sincos"])) == {"position": "sincos"}
    assert model_options_for(load_config(None, ["model=efficientnet_tiny", "ast_position=sincos"])) == {}
    with pytest.raises(ValueError, match="use position=learned"):
        create_model("ast_tiny", num_classes=3, **SHORT, position="sincos", pretrained="imagenet")


# ---------------------------------------------------------------- checkpoint import: AST layout

def ast_layout(model: nn.Module) -> dict[str, torch.Tensor]:
    """Our AST state dict renamed the way the published AST checkpoints store it (DataParallel prefix,
    plus the ImageNet heads the original ViT kept but never used)."""
    state = {f"module.{k}": v.clone() for k, v in model.state_dict().items()}
    width = model.v.embed_dim
    state["module.v.head.weight"], state["module.v.head.bias"] = torch.zeros(1000, width), torch.zeros(1000)
    return state


def test_ast_checkpoint_round_trip(tmp_path):
    source = create_model("ast_micro", num_classes=5, n_mels=64, target_length=400).eval()
    torch.save(ast_layout(source), tmp_path / "ast.pth")
    target = create_model("ast_micro", num_classes=5, n_mels=64, target_length=400).eval()
    report = load_pretrained_checkpoint(target, tmp_path / "ast.pth")
    assert report.layout == "ast"
    assert not report.interpolated and not report.left_at_init
    assert "v.head.weight" in report.skipped
    x = features(2, 64, 400)
    with torch.no_grad():
        assert torch.equal(source(x), target(x))


def test_ast_checkpoint_into_other_length_resizes_pos_embed(tmp_path):
    source = create_model("ast_micro", num_classes=5, n_mels=64, target_length=400, time_stride=10).eval()
    torch.save(ast_layout(source), tmp_path / "ast.pth")
    for length in (200, 600):  # shorter: centre cut, longer: interpolation
        target = create_model("ast_micro", num_classes=5, n_mels=64, target_length=length, time_stride=10).eval()
        report = load_pretrained_checkpoint(target, tmp_path / "ast.pth")
        assert report.interpolated == {"v.pos_embed": f"4x39 -> 4x{(length - 16) // 10 + 1} patches"}
        assert target.v.pos_embed.shape == (1, 2 + target.grid[0] * target.grid[1], 96)
        assert torch.equal(target.v.pos_embed[:, :2], source.v.pos_embed[:, :2])  # token embeddings untouched
        assert torch.equal(target.v.blocks[0].attn.qkv.weight, source.v.blocks[0].attn.qkv.weight)
        with torch.no_grad():
            assert target(features(2, 64, length)).shape == (2, 5)


def test_pos_embed_cut_keeps_the_centre_columns():
    grid = torch.arange(12 * 101, dtype=torch.float32).reshape(1, 12, 101)  # value = its flat grid index
    pos_embed = torch.cat([torch.full((1, 2), -1.0), grid.reshape(1, -1)], dim=1).unsqueeze(-1)
    resized = resize_pos_embed(pos_embed, (12, 101), (12, 50))
    start = 101 // 2 - 50 // 2
    assert torch.equal(resized[0, 2:, 0].reshape(12, 50), grid[0, :, start:start + 50])
    assert torch.equal(resized[0, :2, 0], torch.tensor([-1.0, -1.0]))


def test_head_with_other_class_count_stays_at_init(tmp_path):
    source = create_model("ast_micro", num_classes=5, **SHORT)
    torch.save(ast_layout(source), tmp_path / "ast.pth")
    target = create_model("ast_micro", num_classes=9, **SHORT)
    head_before = target.mlp_head[1].weight.clone()
    report = load_pretrained_checkpoint(target, tmp_path / "ast.pth")
    assert sorted(report.left_at_init) == ["mlp_head.1.bias", "mlp_head.1.weight"]
    assert any("classifier not loaded" in note for note in report.notes)
    assert torch.equal(target.mlp_head[1].weight, head_before)
    assert torch.equal(target.mlp_head[0].weight, source.mlp_head[0].weight)  # the LayerNorm is class-free


def test_checkpoint_of_another_size_fails_listing_keys(tmp_path):
    torch.save(ast_layout(create_model("ast_micro", num_classes=5, **SHORT)), tmp_path / "ast.pth")
    shallower = create_model("ast_micro", num_classes=5, **SHORT)
    shallower.v.blocks = shallower.v.blocks[:2]  # the checkpoint's third block has no home: not silently dropped
    with pytest.raises(CheckpointImportError, match=r"unexpected v\.blocks\.2\.norm1\.weight"):
        load_pretrained_checkpoint(shallower, tmp_path / "ast.pth")
    wider = create_model("ast_tiny", num_classes=5, **SHORT)
    with pytest.raises(CheckpointImportError, match=r"v\.cls_token: checkpoint \(1, 1, 96\), model \(1, 1, 192\)"):
        load_pretrained_checkpoint(wider, tmp_path / "ast.pth")


def test_own_checkpoint_uses_its_model_config_for_the_grid(tmp_path):
    source = create_model("ast_micro", num_classes=3, n_mels=64, target_length=300)
    torch.save({"model": source.state_dict(), "model_name": source.model_name,
                "model_config": source.model_config}, tmp_path / "final.pt")
    same = create_model("ast_micro", num_classes=3, n_mels=64, target_length=300).eval()
    report = load_pretrained_checkpoint(same, tmp_path / "final.pt")
    assert report.layout == "ours" and not report.interpolated
    x = features(1, 64, 300)
    with torch.no_grad():
        assert torch.equal(same(x), source.eval()(x))
    # 4x24 patches: the checkpoint's config says so; guessing from the 96 patches and the new model's 8
    # frequency rows would give 8x12
    other = create_model("ast_micro", num_classes=3, n_mels=128, target_length=500, checkpoint=tmp_path / "final.pt")
    assert other.import_report.interpolated == {"v.pos_embed": "4x24 -> 8x41 patches"}


# ---------------------------------------------------------------- checkpoint import: PSLA layout

B0_REPEATS = (1, 2, 2, 3, 3, 4, 1)  # EfficientNet-B0 blocks per stage; the first block has no expansion
EFFNET_PYTORCH_BLOCK = {"separable": ["_depthwise_conv", "_bn1", "_se_reduce", "_se_expand", "_project_conv", "_bn2"],
                        "inverted": ["_expand_conv", "_bn0", "_depthwise_conv", "_bn1", "_se_reduce", "_se_expand",
                                     "_project_conv", "_bn2"]}


def psla_layout(model: nn.Module) -> dict[str, torch.Tensor]:
    """Our B0 renamed into PSLA's checkpoint layout by module *order* (efficientnet_pytorch registers its
    modules in the same order as timm), independently of the name table under test."""
    theirs = ["_conv_stem", "_bn0"]
    for n in range(sum(B0_REPEATS)):
        theirs += [f"_blocks.{n}.{m}" for m in EFFNET_PYTORCH_BLOCK["separable" if n == 0 else "inverted"]]
    theirs += ["_conv_head", "_bn1"]
    ours: list[str] = []
    for key in model.backbone.state_dict():
        module = key.rpartition(".")[0]
        if module not in ours:
            ours.append(module)
    assert len(ours) == len(theirs)
    rename = dict(zip(ours, theirs))
    state = {}
    for key, value in model.backbone.state_dict().items():
        module, _, param = key.rpartition(".")
        state[f"module.effnet.{rename[module]}.{param}"] = value.clone()
    state["module.effnet._fc.weight"] = torch.zeros(1000, 1280)  # efficientnet_pytorch's unused classifier
    head = model.head
    for i in range(len(head.attention)):
        for psla, ours_name in (("att", head.attention[i]), ("cla", head.classifier[i])):
            state[f"module.attention.{psla}.{i}.weight"] = ours_name.weight.detach().clone().unsqueeze(-1)
            state[f"module.attention.{psla}.{i}.bias"] = ours_name.bias.detach().clone()
    state["module.attention.head_weight"] = head.head_weights.detach().clone()
    return state


def test_psla_checkpoint_round_trip(tmp_path):
    source = create_model("efficientnet_b0", num_classes=6, pooling="psla_attention", tf_variant=True, **SHORT)
    source.train()
    with torch.no_grad():
        source(features(4))  # move the BatchNorm running statistics away from their defaults
    source.eval()
    torch.save(psla_layout(source), tmp_path / "psla.pth")
    target = create_model("efficientnet_b0", num_classes=6, pooling="psla_attention", tf_variant=True, **SHORT).eval()
    report = load_pretrained_checkpoint(target, tmp_path / "psla.pth")
    assert report.layout == "psla"
    assert "effnet._fc.weight" in report.skipped
    assert not report.left_at_init
    assert "backbone.blocks.6.0.conv_pwl.weight" in report.loaded  # efficientnet_pytorch's _blocks.15
    with torch.no_grad():
        assert torch.equal(source(features(2)), target(features(2)))


def test_psla_checkpoint_needs_a_matching_head(tmp_path):
    source = create_model("efficientnet_b0", num_classes=6, pooling="psla_attention", **SHORT)
    torch.save(psla_layout(source), tmp_path / "psla.pth")
    with pytest.raises(PslaLayoutError, match="attention_heads=4"):
        load_pretrained_checkpoint(create_model("efficientnet_b0", 6, pooling="attention", attention_heads=2,
                                                **SHORT), tmp_path / "psla.pth")
    with pytest.raises(PslaLayoutError, match="pooling=psla_attention"):
        load_pretrained_checkpoint(create_model("efficientnet_b0", 6, **SHORT), tmp_path / "psla.pth")
    with pytest.raises(PslaLayoutError, match="no efficientnet_pytorch counterpart"):
        load_pretrained_checkpoint(create_model("efficientnet_tiny", 6, pooling="psla_attention", **SHORT),
                                   tmp_path / "psla.pth")


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
    centre = source_grid[7 - 5 // 2: 7 - 5 // 2 + 5, 7 - 9 // 2: 7 - 9 // 2 + 9]
    assert torch.equal(model.v.pos_embed[0, 2:].reshape(5, 9, -1), centre)
    assert torch.equal(model.v.pos_embed[0, :2], deit.pos_embed[0, :2])
