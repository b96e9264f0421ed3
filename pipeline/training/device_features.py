"""Stage two with ``features_on=device``: DataLoader workers decode (and mix) audio, the student's
device runs the rest of the front end batched.

A worker's item carries, instead of features, the clip's waveform with the whole clip's DC offset
removed, cut (or zero-padded) to the samples the target frames need, plus the view's shift and
mask slots. :func:`features_on_device` turns such a batch into the same ``features`` the per-clip
path renders (:func:`pipeline.augment.render_view`), within float rounding, through the one batched
chain stage one uses (:func:`pipeline.features.fbank_batch`, :func:`pipeline.augment.apply_views`).
"""

from __future__ import annotations

import numpy as np
import torch

from ..augment import apply_views, mix_waves, view_tensors
from ..config import FrontEndConfig
from ..features import fbank_batch, normalise, samples_for_frames
from .dataset import ClipDataset

FEATURES_ON = ("worker", "device")


def centred_window(wave: np.ndarray, cfg: FrontEndConfig) -> tuple[torch.Tensor, int]:
    """The clip minus its own mean (as :func:`pipeline.features.fbank` does first), cut or zero-padded
    to the samples ``target_length`` frames use: a fixed size the default collate can stack."""
    tensor = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))
    tensor = tensor - tensor.mean()
    needed = samples_for_frames(cfg.target_length, cfg)
    length = min(tensor.shape[0], needed)
    out = torch.zeros(needed)
    out[:length] = tensor[:length]
    return out, length


class WaveDataset(ClipDataset):
    """:class:`pipeline.training.dataset.ClipDataset` whose items hold the centred waveform and the view's
    shift and masks instead of features (everything else, targets and KD fields, unchanged)."""

    def model_input(self, wave: np.ndarray, partner_wave: np.ndarray | None, view) -> dict:
        if view.partner:
            if partner_wave is None:  # ClipDataset passes IDENTITY, not a mix, when the partner was unreadable
                raise ValueError(f"the view mixes in {view.partner!r}, but no partner samples were passed")
            wave = mix_waves(wave, partner_wave, view.lam)
        window, length = centred_window(wave, self.front_end)
        arrays = view_tensors([view])
        return {
            "wave": window,
            "wave_length": torch.tensor(length),
            "time_shift": arrays["time_shift"][0],
            "freq_masks": arrays["freq_masks"][0],
            "time_masks": arrays["time_masks"][0],
        }


def features_on_device(batch: dict, cfg: FrontEndConfig) -> dict:
    """A batch of :class:`WaveDataset` items (already on the device) with ``features`` rendered there;
    a batch that has features already is returned as it is."""
    if "wave" not in batch:
        return batch
    batch = dict(batch)
    features = normalise(fbank_batch(batch.pop("wave"), batch.pop("wave_length"), cfg, centred=True), cfg)
    batch["features"] = apply_views(features, batch.pop("time_shift"), batch.pop("freq_masks"), batch.pop("time_masks"))
    return batch


def dataset_class(features_on: str) -> type[ClipDataset]:
    if features_on not in FEATURES_ON:
        raise ValueError(f"features_on must be one of {FEATURES_ON}, got {features_on!r}")
    return WaveDataset if features_on == "device" else ClipDataset
