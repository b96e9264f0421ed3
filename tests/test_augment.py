import numpy as np
import torch

from pipeline.augment import AugmentSettings, View, apply_masks, draw_view, mix_waves, render_view
from pipeline.config import FrontEndConfig

SETTINGS = AugmentSettings(mixup=0.5, freqm=8, timem=20, time_shift=10)
PARTNERS = [f"p{i}" for i in range(50)]


def test_views_depend_only_on_seed_clip_and_index():
    a = draw_view(3, "clip-a", 1, PARTNERS, SETTINGS, 32, 100)
    assert a == draw_view(3, "clip-a", 1, PARTNERS, SETTINGS, 32, 100)
    others = {draw_view(3, "clip-a", k, PARTNERS, SETTINGS, 32, 100) for k in range(2, 12)}
    assert a not in others and len(others) > 5


def test_view_parameters_stay_in_range():
    for k in range(200):
        view = draw_view(0, "x", k, PARTNERS, SETTINGS, 32, 100)
        assert -10 <= view.time_shift <= 10
        assert all(0 <= s and s + w <= 32 and w <= 8 for s, w in view.freq_masks)
        assert all(0 <= s and s + w <= 100 and w <= 20 for s, w in view.time_masks)
        assert (view.partner == "") == (view.lam == 1.0)
        assert view.partner == "" or view.partner in PARTNERS
    mixed = sum(bool(draw_view(0, "x", k, PARTNERS, SETTINGS, 32, 100).partner) for k in range(400))
    assert 140 < mixed < 260  # mixup probability 0.5


def test_mix_waves_pads_and_cuts_the_partner():
    wave = np.ones(10, dtype=np.float32)
    assert np.allclose(mix_waves(wave, np.ones(4, dtype=np.float32), 0.25), [1.0] * 4 + [0.25] * 6)
    assert mix_waves(wave, np.zeros(20, dtype=np.float32), 0.5).shape == (10,)


def test_masks_zero_exactly_the_recorded_bands():
    features = torch.ones(50, 16)
    view = View(seed=0, view_index=0, freq_masks=((2, 3),), time_masks=((10, 5),))
    masked = apply_masks(features, view)
    assert masked[:, 2:5].abs().sum() == 0 and masked[10:15].abs().sum() == 0
    assert masked.sum() == 50 * 16 - 50 * 3 - 5 * 13


def test_render_view_is_reproducible_and_matches_plain_front_end_for_identity():
    from pipeline.features import wave_to_features

    cfg = FrontEndConfig(n_mels=32, target_length=80, norm_mean=-6, norm_std=4)
    rng = np.random.default_rng(0)
    wave, partner = rng.standard_normal(8000).astype(np.float32), rng.standard_normal(6000).astype(np.float32)
    identity = View(seed=0, view_index=0)
    assert torch.equal(render_view(wave, None, identity, cfg), wave_to_features(wave, cfg))
    view = draw_view(1, "a", 0, ["b"], AugmentSettings(mixup=1.0, freqm=4, timem=8, time_shift=5), 32, 80)
    assert view.partner == "b"
    assert torch.equal(render_view(wave, partner, view, cfg), render_view(wave, partner, view, cfg))
