"""Checkpoint import into registered models: the published AST and PSLA layouts and our own files,
position-table resizing, class-count mismatches and files that do not fit."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from pipeline.models import create_model, load_pretrained_checkpoint
from pipeline.models.ast import resize_pos_embed
from pipeline.models.checkpoint_import import CONVERT_COMMAND, CheckpointImportError, UnsafeCheckpoint
from pipeline.models.psla_layout import PslaLayoutError
from tests.helpers.checkpoints import ast_layout, hostile_checkpoint
from tests.helpers.models import SHORT, features

# ---------------------------------------------------------------- checkpoint import: AST layout


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
        report = load_pretrained_checkpoint(target, tmp_path / "ast.pth", source_grid=(4, 39))
        assert report.interpolated == {"v.pos_embed": f"4x39 -> 4x{(length - 16) // 10 + 1} patches"}
        assert target.v.pos_embed.shape == (1, 2 + target.grid[0] * target.grid[1], 96)
        assert torch.equal(target.v.pos_embed[:, :2], source.v.pos_embed[:, :2])  # token embeddings untouched
        assert torch.equal(target.v.blocks[0].attn.qkv.weight, source.v.blocks[0].attn.qkv.weight)
        with torch.no_grad():
            assert target(features(2, 64, length)).shape == (2, 5)


def test_a_bare_ast_file_without_a_readable_grid_is_refused(tmp_path):
    # the 4x39 table's grid is in neither the name nor the file: never guessed from the target model
    source = create_model("ast_micro", num_classes=5, n_mels=64, target_length=400, time_stride=10)
    torch.save(ast_layout(source), tmp_path / "renamed.pth")
    target = create_model("ast_micro", num_classes=5, n_mels=64, target_length=200, time_stride=10)
    with pytest.raises(CheckpointImportError, match=r"cannot tell the patch grid .*\(ast_source_grid=FREQxTIME\)"):
        load_pretrained_checkpoint(target, tmp_path / "renamed.pth")


def test_pos_embed_cut_keeps_the_centre_columns():
    grid = torch.arange(12 * 101, dtype=torch.float32).reshape(1, 12, 101)  # value = its flat grid index
    pos_embed = torch.cat([torch.full((1, 2), -1.0), grid.reshape(1, -1)], dim=1).unsqueeze(-1)
    resized = resize_pos_embed(pos_embed, (12, 101), (12, 50))
    start = 101 // 2 - 50 // 2
    assert torch.equal(resized[0, 2:, 0].reshape(12, 50), grid[0, :, start : start + 50])
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
    torch.save(
        {"model": source.state_dict(), "model_name": source.model_name, "model_config": source.model_config},
        tmp_path / "final.pt",
    )
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
EFFNET_PYTORCH_BLOCK = {
    "separable": ["_depthwise_conv", "_bn1", "_se_reduce", "_se_expand", "_project_conv", "_bn2"],
    "inverted": [
        "_expand_conv",
        "_bn0",
        "_depthwise_conv",
        "_bn1",
        "_se_reduce",
        "_se_expand",
        "_project_conv",
        "_bn2",
    ],
}


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
    source = create_model("efficientnet_b0_psla", num_classes=6, **SHORT)
    source.train()
    with torch.no_grad():
        source(features(4))  # move the BatchNorm running statistics away from their defaults
    source.eval()
    torch.save(psla_layout(source), tmp_path / "psla.pth")
    target = create_model("efficientnet_b0_psla", num_classes=6, **SHORT).eval()
    report = load_pretrained_checkpoint(target, tmp_path / "psla.pth")
    assert report.layout == "psla"
    # 64 mel bins: a 2-row feature map where PSLA pools 4 rows; the only way this model differs from PSLA's
    assert len(report.warnings) == 1 and "n_mels=64" in report.warnings[0]
    assert "effnet._fc.weight" in report.skipped
    assert not report.left_at_init
    assert "backbone.blocks.6.0.conv_pwl.weight" in report.loaded  # efficientnet_pytorch's _blocks.15
    with torch.no_grad():
        assert torch.equal(source(features(2)), target(features(2)))


def test_psla_checkpoint_needs_a_matching_head(tmp_path):
    source = create_model("efficientnet_b0", num_classes=6, pooling="psla_attention", **SHORT)
    torch.save(psla_layout(source), tmp_path / "psla.pth")
    with pytest.raises(PslaLayoutError, match="attention_heads=4"):
        load_pretrained_checkpoint(
            create_model("efficientnet_b0", 6, pooling="attention", attention_heads=2, **SHORT), tmp_path / "psla.pth"
        )
    with pytest.raises(PslaLayoutError, match="pooling=psla_attention"):
        load_pretrained_checkpoint(create_model("efficientnet_b0", 6, **SHORT), tmp_path / "psla.pth")
    with pytest.raises(PslaLayoutError, match="no efficientnet_pytorch counterpart"):
        load_pretrained_checkpoint(
            create_model("efficientnet_tiny", 6, pooling="psla_attention", **SHORT), tmp_path / "psla.pth"
        )


def test_fine_tuning_from_an_ast_release_recreates_the_whole_head(tmp_path):
    # upstream's ASTModel(audioset_pretrain=True) builds a new mlp_head (LayerNorm and Linear) after loading
    source = create_model("ast_micro", num_classes=5, n_mels=64, target_length=400)
    with torch.no_grad():
        source.mlp_head[0].weight.uniform_(0.5, 1.5)
        source.mlp_head[0].bias.uniform_(-0.5, 0.5)
    torch.save(ast_layout(source), tmp_path / "ast.pth")
    tuned = create_model(
        "ast_micro", num_classes=5, n_mels=64, target_length=400, checkpoint=tmp_path / "ast.pth", fine_tune=True
    )
    fresh = nn.LayerNorm(source.v.embed_dim)
    assert torch.equal(tuned.mlp_head[0].weight, fresh.weight) and torch.equal(tuned.mlp_head[0].bias, fresh.bias)
    assert not torch.equal(tuned.mlp_head[1].weight, source.mlp_head[1].weight)
    assert torch.equal(tuned.v.blocks[0].attn.qkv.weight, source.v.blocks[0].attn.qkv.weight)
    assert {"mlp_head.0.weight", "mlp_head.1.weight"} <= set(tuned.import_report.left_at_init)
    assert any("re-created for fine-tuning" in note for note in tuned.import_report.notes)
    teacher = create_model("ast_micro", num_classes=5, n_mels=64, target_length=400, checkpoint=tmp_path / "ast.pth")
    assert torch.equal(teacher.mlp_head[0].weight, source.mlp_head[0].weight)  # a teacher keeps its trained head


@pytest.mark.security
def test_hostile_published_checkpoint_is_refused_with_the_conversion(tmp_path):
    marker = tmp_path / "marker"
    path = hostile_checkpoint(tmp_path / "published.pt", marker, wrap_model=False)
    with pytest.raises(UnsafeCheckpoint) as caught:
        create_model("efficientnet_tiny", num_classes=4, n_mels=32, target_length=64, checkpoint=path)
    message = str(caught.value)
    assert str(path) in message and "convert" in message and "\n" not in message
    assert not marker.exists()


@pytest.mark.security
def test_documented_conversion_makes_a_trusted_legacy_file_loadable(tmp_path):
    marker = tmp_path / "marker"
    legacy = hostile_checkpoint(tmp_path / "legacy.pt", marker, wrap_model=False)
    command = CONVERT_COMMAND.replace("TRUSTED.pt", str(legacy)).replace("OUT.pt", str(tmp_path / "safe.pt"))
    assert command.startswith("python -c ")
    subprocess.run([sys.executable, "-c", command.split('"')[1], str(legacy), str(tmp_path / "safe.pt")], check=True)
    assert marker.exists()  # the user trusted it, so the full load ran once, by their hand
    marker.unlink()
    model = create_model(
        "efficientnet_tiny", num_classes=4, n_mels=32, target_length=64, checkpoint=tmp_path / "safe.pt"
    )
    assert model.import_report.loaded
    assert not marker.exists()
