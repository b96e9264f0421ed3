"""Audio Spectrogram Transformer on timm's distilled VisionTransformer.

AST: Gong, Chung, Glass 2021, https://arxiv.org/abs/2104.01778.

The spectrogram [batch, frames, mels] becomes a one-channel image [batch, 1, mels, frames] and is cut
into 16x16 patches taken every ``freq_stride`` x ``time_stride`` bins (10 x 10 in AST: overlapping
patches, 12 x 101 = 1212 of them for 128 x 1024). A class token and a distillation token are
prepended; the output is the mean of the two tokens -> LayerNorm -> Linear (``pooling="token"``).

``pooling="max"`` takes instead the element-wise maximum over the patch tokens (-> the same LayerNorm
-> Linear). Why: trained from scratch on a small corpus the class token never learns where to look:
on the embedded corpus (configs/demo.yaml, 6 epochs) ast_micro reaches 0.0985 eval mAP with the token
readout, at its class priors (chance ~0.07), and 0.1886 with max. A short event fills a few of ~260
tokens; averages drown it, a maximum passes it through from the first step.
The paper-size models keep the paper's head; ast_micro, which exists for CPU demos, defaults to max.

``position="sincos"`` replaces the learned position table by a fixed sine-cosine one
(:func:`sincos_position_table`); ``learned`` (the paper's, and the only one ImageNet weights fit) is
every model's default. Recipes set it with ``ast_position``, and the patch strides with
``ast_freq_stride`` / ``ast_time_stride`` (the demo overlaps its patches by half in frequency: with
ast_micro's non-overlapping 16-bin rows a shape that straddles a row edge is never seen whole).

Parameter names mirror the published AST code (``v.*`` is the timm ViT, ``mlp_head.0`` the LayerNorm,
``mlp_head.1`` the Linear), so an AST checkpoint's ``module.v.*`` keys load after dropping ``module.``.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from timm.models.deit import VisionTransformerDistilled
from torch import nn

from .pretrained import PretrainedUnavailable, load_timm_pretrained
from .registry import register_model

PATCH = 16
PREFIX_TOKENS = 2  # class + distillation token
AST_POOLING = ("token", "max")
AST_POSITIONS = ("learned", "sincos")


def patch_grid(n_mels: int, target_length: int, freq_stride: int = 10, time_stride: int = 10) -> tuple[int, int]:
    """(frequency, time) patch counts of a PATCH x PATCH conv at the given strides."""
    for field, size in (("n_mels", n_mels), ("target_length", target_length)):
        if size < PATCH:
            raise ValueError(f"AST needs {field} >= {PATCH} (one {PATCH}x{PATCH} patch), got {size}")
    for field, stride in (("freq_stride", freq_stride), ("time_stride", time_stride)):
        if not 1 <= stride <= PATCH:
            raise ValueError(f"AST {field} must be between 1 and {PATCH}, got {stride}")
    return (n_mels - PATCH) // freq_stride + 1, (target_length - PATCH) // time_stride + 1


class OverlappingPatchEmbed(nn.Module):
    """timm's patch-embedding interface with a conv stride smaller than the patch (AST's overlap)."""

    def __init__(
        self,
        img_size: tuple[int, int],
        patch_size: int = PATCH,
        in_chans: int = 1,
        embed_dim: int = 768,
        stride: tuple[int, int] = (10, 10),
        bias: bool = True,
        dynamic_img_pad: bool = False,
        device=None,
        dtype=None,
    ):
        super().__init__()
        if dynamic_img_pad:
            raise ValueError("OverlappingPatchEmbed has a fixed grid; dynamic padding is not supported")
        self.img_size = tuple(img_size)
        self.patch_size = (patch_size, patch_size)
        freq_stride, time_stride = stride  # a list from a config works too; the conv needs a 2-tuple
        self.stride = (freq_stride, time_stride)
        self.grid_size = patch_grid(self.img_size[0], self.img_size[1], *self.stride)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.proj = nn.Conv2d(
            in_chans, embed_dim, kernel_size=patch_size, stride=self.stride, bias=bias, device=device, dtype=dtype
        )

    def feat_ratio(self, as_scalar: bool = True):
        return max(self.stride) if as_scalar else self.stride

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.proj(image).flatten(2).transpose(1, 2)  # [batch, patches, embed]


def _fit_axis(grid: torch.Tensor, axis: int, size: int) -> torch.Tensor:
    """AST's rule per axis: cut the centre when shrinking, bilinear interpolation when growing."""
    old = grid.shape[axis]
    if size < old:
        return grid.narrow(axis, old // 2 - size // 2, size)
    if size > old:
        target = list(grid.shape[2:])
        target[axis - 2] = size
        return F.interpolate(grid, size=tuple(target), mode="bilinear", align_corners=False)
    return grid


def resize_pos_embed(
    pos_embed: torch.Tensor,
    source_grid: tuple[int, int],
    target_grid: tuple[int, int],
    prefix_tokens: int = PREFIX_TOKENS,
) -> torch.Tensor:
    """[1, prefix + F*T, C] on source_grid (F, T) -> [1, prefix + F'*T', C] on target_grid; prefix kept."""
    source_f, source_t = source_grid
    if pos_embed.shape[1] != prefix_tokens + source_f * source_t:
        raise ValueError(
            f"positional embedding has {pos_embed.shape[1]} tokens, expected {prefix_tokens} + "
            f"{source_f}x{source_t} for grid {source_grid}"
        )
    prefix, patches = pos_embed[:, :prefix_tokens], pos_embed[:, prefix_tokens:]
    width = pos_embed.shape[2]
    grid = patches.transpose(1, 2).reshape(1, width, source_f, source_t)
    grid = _fit_axis(_fit_axis(grid, 3, target_grid[1]), 2, target_grid[0])
    return torch.cat([prefix, grid.flatten(2).transpose(1, 2)], dim=1)


def sincos_position_table(grid: tuple[int, int], width: int, prefix_tokens: int = PREFIX_TOKENS) -> torch.Tensor:
    """A fixed 2-D sine-cosine position table [1, prefix + F*T, width] for the patch grid (F, T).

    Half the channels encode the frequency row, half the time column, each as sines and cosines of
    geometrically spaced frequencies (the transformer's original table, once per axis); the prefix
    tokens get zeros. Why a fixed table for a model trained from scratch: its slow components say
    "early or late in the clip" and "low or high band" from the first step, while a learned table
    starts as noise (std 0.02) and must learn each of the F*T positions separately from the data.
    """
    if width % 4:
        raise ValueError(f"a sine-cosine position table needs a width divisible by 4, got {width}")
    quarter = width // 4
    omega = 1.0 / 10000.0 ** (torch.arange(quarter, dtype=torch.float64) / quarter)

    def one_axis(positions: int) -> torch.Tensor:  # [positions, width / 2]
        angles = torch.arange(positions, dtype=torch.float64)[:, None] * omega[None, :]
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    rows, columns = grid
    freq = one_axis(rows)[:, None, :].expand(rows, columns, 2 * quarter)
    time = one_axis(columns)[None, :, :].expand(rows, columns, 2 * quarter)
    patches = torch.cat([freq, time], dim=2).reshape(rows * columns, width)  # row-major, as the conv flattens
    return torch.cat([torch.zeros(prefix_tokens, width, dtype=torch.float64), patches])[None].float()


class AudioSpectrogramTransformer(nn.Module):
    classifier_prefixes = ("mlp_head.1.",)  # the only parameters whose shape depends on num_classes

    def __init__(
        self,
        num_classes: int,
        n_mels: int,
        target_length: int,
        embed_dim: int,
        depth: int,
        num_heads: int,
        freq_stride: int,
        time_stride: int,
        drop_rate: float,
        pooling: str = "token",
        position: str = "learned",
    ):
        super().__init__()
        if pooling not in AST_POOLING:
            raise ValueError(f"AST pooling must be one of {AST_POOLING}, got {pooling!r}")
        if position not in AST_POSITIONS:
            raise ValueError(f"AST position must be one of {AST_POSITIONS}, got {position!r}")
        self.pooling = pooling
        self.position = position
        self.input_shape = (target_length, n_mels)
        self.grid = patch_grid(n_mels, target_length, freq_stride, time_stride)
        self.v = VisionTransformerDistilled(
            img_size=(n_mels, target_length),
            patch_size=PATCH,
            in_chans=1,
            num_classes=0,
            global_pool="token",
            embed_dim=embed_dim,
            depth=depth,
            num_heads=num_heads,
            embed_layer=partial(OverlappingPatchEmbed, stride=(freq_stride, time_stride)),
        )
        if position == "sincos":  # kept as the (frozen) parameter timm adds, so state dicts keep their keys
            pos_embed = self.v.pos_embed
            assert pos_embed is not None  # timm's default pos_embed="learn", used above, always creates it
            pos_embed.data.copy_(sincos_position_table(self.grid, embed_dim))
            pos_embed.requires_grad_(False)
        self.mlp_head = nn.Sequential(nn.LayerNorm(embed_dim), nn.Linear(embed_dim, num_classes))
        # between the LayerNorm and the Linear, so mlp_head keeps AST's indices 0 and 1
        self.head_dropout = nn.Dropout(drop_rate)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.ndim != 3 or tuple(features.shape[1:]) != self.input_shape:
            raise ValueError(
                f"AST built for features [batch, {self.input_shape[0]}, {self.input_shape[1]}] "
                f"(target_length, n_mels), got {tuple(features.shape)}"
            )
        tokens = self.v.forward_features(features.transpose(1, 2).unsqueeze(1))
        if self.pooling == "token":
            pooled = (tokens[:, 0] + tokens[:, 1]) / 2
        else:  # the prefix tokens still take part in attention; only the readout differs
            pooled = tokens[:, PREFIX_TOKENS:].amax(dim=1)
        return self.mlp_head[1](self.head_dropout(self.mlp_head[0](pooled)))

    def resize_pos_embed(self, pos_embed: torch.Tensor, source_grid: tuple[int, int]) -> torch.Tensor:
        return resize_pos_embed(pos_embed, source_grid, self.grid)


def imagenet_vit_state(timm_name: str, target_grid: tuple[int, int]) -> dict[str, torch.Tensor]:
    """A DeiT's ImageNet weights made to fit ``v``: RGB patch kernels summed to one channel (a grey
    image then gives the RGB response), the square position grid cut/interpolated to the audio grid,
    the 1000-class heads dropped."""
    state = load_timm_pretrained(timm_name).state_dict()
    state = {k: v for k, v in state.items() if not k.startswith(("head.", "head_dist."))}
    state["patch_embed.proj.weight"] = state["patch_embed.proj.weight"].sum(dim=1, keepdim=True)
    side = round((state["pos_embed"].shape[1] - PREFIX_TOKENS) ** 0.5)
    state["pos_embed"] = resize_pos_embed(state["pos_embed"], (side, side), target_grid)
    return state


def build_ast(
    name: str,
    imagenet_source: str | None,
    num_classes: int,
    n_mels: int,
    target_length: int,
    pooling: str,
    drop_rate: float,
    pretrained: str,
    embed_dim: int,
    depth: int,
    num_heads: int,
    freq_stride: int,
    time_stride: int,
    position: str = "learned",
) -> AudioSpectrogramTransformer:
    if pooling not in AST_POOLING:
        raise ValueError(
            f"{name}: AST pooling must be 'token' (mean of the class and distillation tokens, as "
            f"in the paper) or 'max' (over patch tokens), got {pooling!r}; the CNN heads "
            f"(mean, attention) are set with `pooling`, the AST's with `ast_pooling`"
        )
    if position not in AST_POSITIONS:
        raise ValueError(
            f"{name}: position must be 'learned' (a trained table, as in the paper) or 'sincos' "
            f"(a fixed sine-cosine table), got {position!r}"
        )
    if pretrained == "imagenet" and position != "learned":
        raise ValueError(f"{name}: pretrained=imagenet brings DeiT's learned position table; use position=learned")
    imagenet_state = None
    if pretrained == "imagenet":  # fetched before the (slow) construction, so a missing file fails at once
        if imagenet_source is None:
            raise PretrainedUnavailable(f"{name} has no ImageNet counterpart; use pretrained=none")
        grid = patch_grid(n_mels, target_length, freq_stride, time_stride)
        imagenet_state = imagenet_vit_state(imagenet_source, grid)
    model = AudioSpectrogramTransformer(
        num_classes,
        n_mels,
        target_length,
        embed_dim,
        depth,
        num_heads,
        freq_stride,
        time_stride,
        drop_rate,
        pooling,
        position,
    )
    if imagenet_state is not None:
        model.v.load_state_dict(imagenet_state, strict=True)
    return model


@register_model(
    "AST as in the paper: DeiT-base geometry (768 wide, 12 layers, 12 heads), ~87M parameters", family="ast"
)
def ast_base(
    num_classes: int,
    n_mels: int,
    target_length: int,
    pooling: str = "token",
    drop_rate: float = 0.0,
    pretrained: str = "none",
    freq_stride: int = 10,
    time_stride: int = 10,
    position: str = "learned",
) -> AudioSpectrogramTransformer:
    return build_ast(
        "ast_base",
        "deit_base_distilled_patch16_384",
        num_classes,
        n_mels,
        target_length,
        pooling,
        drop_rate,
        pretrained,
        768,
        12,
        12,
        freq_stride,
        time_stride,
        position,
    )


@register_model("AST at DeiT-tiny width (192 wide, 12 layers, 3 heads), ~5.5M parameters", family="ast")
def ast_tiny(
    num_classes: int,
    n_mels: int,
    target_length: int,
    pooling: str = "token",
    drop_rate: float = 0.0,
    pretrained: str = "none",
    freq_stride: int = 10,
    time_stride: int = 10,
    position: str = "learned",
) -> AudioSpectrogramTransformer:
    return build_ast(
        "ast_tiny",
        "deit_tiny_distilled_patch16_224",
        num_classes,
        n_mels,
        target_length,
        pooling,
        drop_rate,
        pretrained,
        192,
        12,
        3,
        freq_stride,
        time_stride,
        position,
    )


@register_model(
    "AST for CPU demos (96 wide, 3 layers, 2 heads, 16x12 strides, max over patch tokens), ~0.4M parameters",
    family="ast",
)
def ast_micro(
    num_classes: int,
    n_mels: int,
    target_length: int,
    pooling: str = "max",
    drop_rate: float = 0.0,
    pretrained: str = "none",
    freq_stride: int = 16,
    time_stride: int = 12,
    position: str = "learned",
) -> AudioSpectrogramTransformer:
    return build_ast(
        "ast_micro",
        None,
        num_classes,
        n_mels,
        target_length,
        pooling,
        drop_rate,
        pretrained,
        96,
        3,
        2,
        freq_stride,
        time_stride,
        position,
    )
