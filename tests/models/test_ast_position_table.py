"""The AST position table taken from a checkpoint: its grid read from the file, then cut or
interpolated to the target's grid by the procedure upstream's ``ast_models.py`` follows.

The reference is restated here from that procedure, not from this project's code: the table is
reshaped to its [F, T] grid; the time axis first, the centre T' columns kept when shorter
(start T // 2 - T' // 2) or bilinear interpolation (torch.nn.functional.interpolate, corners not
aligned) to T' when longer; then the frequency axis the same way. The class and distillation tokens
pass unchanged.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pipeline.models import create_model, load_pretrained_checkpoint
from pipeline.models.ast import patch_grid, resize_pos_embed
from pipeline.models.ast_releases import ast_release
from tests.helpers.checkpoints import ast_layout

WIDTH = 8


def reference_resize(pos_embed: torch.Tensor, source: tuple[int, int], target: tuple[int, int]) -> torch.Tensor:
    (f0, t0), (f1, t1) = source, target
    prefix, table = pos_embed[:, :2], pos_embed[:, 2:]
    grid = table.transpose(1, 2).reshape(1, pos_embed.shape[2], f0, t0)
    if t1 <= t0:
        grid = grid[:, :, :, t0 // 2 - t1 // 2 : t0 // 2 - t1 // 2 + t1]
    else:
        grid = F.interpolate(grid, size=(f0, t1), mode="bilinear")
    if f1 <= f0:
        grid = grid[:, :, f0 // 2 - f1 // 2 : f0 // 2 - f1 // 2 + f1, :]
    else:
        grid = F.interpolate(grid, size=(f1, t1), mode="bilinear")
    return torch.cat([prefix, grid.reshape(1, pos_embed.shape[2], f1 * t1).transpose(1, 2)], dim=1)


def table(grid: tuple[int, int], seed: int = 0) -> torch.Tensor:
    return torch.randn(1, 2 + grid[0] * grid[1], WIDTH, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("target_length", [100, 400, 1024, 1500])
@pytest.mark.parametrize("stride", [10, 16])
def test_resize_matches_upstreams_procedure_for_every_n_mels(target_length, stride):
    release = (12, 101) if stride == 10 else (8, 64)
    source = table(release)
    for n_mels in range(16, 129):
        target = patch_grid(n_mels, target_length, 10, 10)
        ours = resize_pos_embed(source, release, target)
        assert torch.allclose(ours, reference_resize(source, release, target), atol=1e-6), (n_mels, target)


def test_resize_grows_both_axes_like_upstream():
    source = table((8, 64), seed=1)
    for target in [(12, 101), (9, 200), (20, 63), (8, 64)]:
        assert torch.allclose(
            resize_pos_embed(source, (8, 64), target), reference_resize(source, (8, 64), target), atol=1e-6
        )


def release_file(tmp_path, name: str, freq_stride: int, time_stride: int):
    """A small AST saved in the published layout under a published name, with the geometry the name says."""
    release = ast_release(name)
    model = create_model(
        "ast_micro",
        num_classes=527,
        n_mels=release.n_mels,
        target_length=release.target_length,
        freq_stride=freq_stride,
        time_stride=time_stride,
    )
    path = tmp_path / name
    torch.save(ast_layout(model), path)
    return path, model.v.pos_embed.detach().clone(), release.grid


@pytest.mark.parametrize(
    "name, grid",
    [
        ("audioset_10_10_0.4593.pth", (12, 101)),
        ("audioset_10_10_0.4495.pth", (12, 101)),
        ("audioset_12_12_0.4467.pth", (10, 85)),
        ("audioset_14_14_0.4431.pth", (9, 73)),
        ("audioset_16_16_0.4422.pth", (8, 64)),
        ("speechcommands_10_10_0.9812.pth", (12, 12)),
    ],
)
def test_release_names_give_their_grids(name, grid):
    assert ast_release(name).grid == grid
    assert ast_release("my_copy.pth") is None


def test_the_grid_comes_from_the_file_for_every_n_mels(tmp_path):
    """A stride-10 release into models of 16-128 mel bins: always read as 12x101, never as the
    1x1212 / 2x606 / 4x303 ... a guess from the target's own frequency count would give."""
    path, source, grid = release_file(tmp_path, "audioset_10_10_0.4593.pth", 10, 10)
    for n_mels in range(16, 129):
        target = create_model(
            "ast_micro", num_classes=527, n_mels=n_mels, target_length=1024, freq_stride=10, time_stride=10
        )
        report = load_pretrained_checkpoint(target, path)
        wanted = reference_resize(source, grid, target.grid)
        assert torch.allclose(target.v.pos_embed.detach(), wanted, atol=1e-6), n_mels
        if target.grid != grid:
            assert report.interpolated == {"v.pos_embed": f"12x101 -> {target.grid[0]}x{target.grid[1]} patches"}


def test_a_stride_16_release_keeps_its_8x64_grid(tmp_path):
    path, source, _ = release_file(tmp_path, "audioset_16_16_0.4422.pth", 16, 16)
    same = create_model("ast_micro", num_classes=527, n_mels=128, target_length=1024, freq_stride=16, time_stride=16)
    assert not load_pretrained_checkpoint(same, path).interpolated
    assert torch.equal(same.v.pos_embed.detach(), source)
    # the documented MODEL=ast_base fallback used to keep stride 10 and read the table as 12x42
    other = create_model("ast_micro", num_classes=527, n_mels=128, target_length=1024, freq_stride=10, time_stride=10)
    report = load_pretrained_checkpoint(other, path)
    assert report.interpolated == {"v.pos_embed": "8x64 -> 12x101 patches"}
    assert torch.allclose(other.v.pos_embed.detach(), reference_resize(source, (8, 64), (12, 101)), atol=1e-6)


def test_a_name_that_contradicts_the_table_is_an_error(tmp_path):
    path, _, _ = release_file(tmp_path, "audioset_10_10_0.4593.pth", 10, 10)
    renamed = tmp_path / "audioset_16_16_0.4422.pth"
    path.rename(renamed)
    target = create_model("ast_micro", num_classes=527, n_mels=64, target_length=1024, freq_stride=10, time_stride=10)
    with pytest.raises(ValueError, match="1212 patches, but its name .* says 8x64"):
        load_pretrained_checkpoint(target, renamed)


def test_a_stride_16_release_imports_as_a_teacher_with_its_own_strides(tmp_path):
    from pipeline.checkpoints import load_checkpoint
    from pipeline.stage_one.published import describe, import_published_teacher

    path, source, _ = release_file(tmp_path, "audioset_16_16_0.4422.pth", 16, 16)
    teacher = describe(path)
    assert (teacher.model, teacher.ast_freq_stride, teacher.ast_time_stride, teacher.num_classes) == (
        "ast_base",
        16,
        16,
        527,
    )
    labels = tmp_path / "class_labels_indices.csv"
    labels.write_text("index,mid,display_name\n" + "".join(f'{i},/m/c{i},"class {i}"\n' for i in range(527)))
    out = import_published_teacher(path, labels, tmp_path / "run", model="ast_micro")  # small stand-in for ast_base
    saved = load_checkpoint(out / "checkpoints" / "final.pt")
    assert saved["model_config"]["freq_stride"] == 16 and saved["model_config"]["time_stride"] == 16
    assert torch.equal(saved["model"]["v.pos_embed"], source)  # its 8x64 table as it is, nothing resized
    assert "resized" not in (out / "import_report.txt").read_text()


def test_an_unlisted_file_takes_its_strides_and_grid_from_the_options():
    from pipeline.stage_one.published import describe

    teacher = describe(
        "my_ast.pth",
        model="ast_base",
        overrides={"ast_freq_stride": 12, "ast_time_stride": 12, "ast_source_grid": "10x85"},
    )
    assert (teacher.ast_freq_stride, teacher.ast_time_stride, teacher.ast_source_grid) == (12, 12, "10x85")
