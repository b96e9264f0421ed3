"""The teacher's device side of stage one: decoded clips in, logits of the clean clips and views out.

A block of clips arrives as float32 waveforms (decoded on the CPU). Everything after decoding runs
batched on the teacher's device: one padded buffer of clean clips and one of mixed views go through
:func:`pipeline.augment.render_batch` (mix, fbank, pad/cut, normalise, shift, masks), a view without
mixup reuses its clip's clean features (only the shift and masks are applied, so it is bit for bit
the clean fbank), and the teacher runs on batches of ``batch_size`` inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..augment import View, apply_views, render_batch, view_tensors
from ..config import FrontEndConfig
from .teachers import MEAN_OF_TEACHERS

# rows per front-end pass on a CPU: a pass over a few 10-s clips stays in cache; a GPU takes a block at once
CPU_FRONT_END_ROWS = 4


@dataclass
class Block:
    """Decoded clips of one block: rows (positions in the work unit) with their waves and views."""

    rows: list[int]
    waves: list[np.ndarray]
    views: list[list[View]]  # per clip, K views (empty without views)
    partners: list[list[np.ndarray | None]]  # per clip and view: the partner's wave, None = none or unreadable
    members: list[int]  # per clip: the teacher member that labels it (MEAN_OF_TEACHERS = mean of all)


def padded(waves: list[np.ndarray], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-padded [B, samples] buffer (pinned for an asynchronous copy to a GPU) and the lengths."""
    buffer = np.zeros((len(waves), max((len(w) for w in waves), default=1)), dtype=np.float32)
    for row, wave in enumerate(waves):
        buffer[row, : len(wave)] = wave
    host = torch.from_numpy(buffer)
    if device.type == "cuda":
        host = host.pin_memory()
    return host.to(device, non_blocking=True), torch.tensor([len(w) for w in waves], device=device)


def front_end(
    waves: list[np.ndarray],
    cfg: FrontEndConfig,
    device: torch.device,
    views: list[View] | None = None,
    partners: list[np.ndarray] | None = None,
) -> torch.Tensor:
    """Normalised features [B, frames, mels] of clips (or of mixed views with their partners) on `device`."""
    step = CPU_FRONT_END_ROWS if device.type == "cpu" else max(len(waves), 1)
    parts = []
    for lo in range(0, len(waves), step):
        buffer, lengths = padded(waves[lo : lo + step], device)
        arrays = partner_buffer = None
        if views is not None:
            if partners is None:
                raise ValueError("mixed views need their partners' waves, one per view")
            arrays = view_tensors(views[lo : lo + step], device)
            partner_buffer = padded(partners[lo : lo + step], device)[0]
        parts.append(render_batch(buffer, lengths, cfg, arrays, partner_buffer))
    return torch.cat(parts)


@torch.no_grad()
def forward(models: list[torch.nn.Module], members: np.ndarray, inputs: torch.Tensor, batch_size: int) -> np.ndarray:
    """Logits per input row: from its member teacher, or the mean over all members (member -1)."""
    results = []
    for start in range(0, inputs.shape[0], batch_size):
        batch = inputs[start : start + batch_size]
        with torch.autocast(device_type="cuda", enabled=batch.is_cuda):
            per_model = torch.stack([m(batch).float() for m in models]).cpu().numpy()  # [members, batch, classes]
        chosen = members[start : start + batch.shape[0]]
        rows = per_model[np.maximum(chosen, 0), np.arange(batch.shape[0])]
        rows[chosen == MEAN_OF_TEACHERS] = per_model.mean(axis=0)[chosen == MEAN_OF_TEACHERS]
        results.append(rows)
    if not results:
        return np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(results).astype(np.float32)


def compute_block(
    block: Block, models: list[torch.nn.Module], cfg: FrontEndConfig, device: torch.device, batch_size: int
) -> list[tuple[int, int, np.ndarray]]:
    """(row, view or -1 for the clean clip, logits) of every input the block's clips give."""
    clean = front_end(block.waves, cfg, device)
    mixed = [
        (i, k)
        for i, views in enumerate(block.views)
        for k, v in enumerate(views)
        if v.partner and block.partners[i][k] is not None
    ]
    plain = [(i, k) for i, views in enumerate(block.views) for k, v in enumerate(views) if not v.partner]
    inputs, where = [clean], [(i, -1) for i in range(len(block.rows))]
    if mixed:
        inputs.append(
            front_end(
                [block.waves[i] for i, _ in mixed],
                cfg,
                device,
                [block.views[i][k] for i, k in mixed],
                # every one of them: mixed keeps only the views whose partner was read
                [wave for i, k in mixed if (wave := block.partners[i][k]) is not None],
            )
        )
        where += mixed
    if plain:
        arrays = view_tensors([block.views[i][k] for i, k in plain], device)
        inputs.append(
            apply_views(clean[[i for i, _ in plain]], arrays["time_shift"], arrays["freq_masks"], arrays["time_masks"])
        )
        where += plain
    members = np.array([block.members[i] for i, _ in where], dtype=np.int64)
    logits = forward(models, members, torch.cat(inputs), batch_size)
    return [(block.rows[i], k, logits[n]) for n, (i, k) in enumerate(where)]
