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


def _padded(waves: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    buffer = torch.zeros(len(waves), max(len(w) for w in waves))
    for row, wave in enumerate(waves):
        buffer[row, : len(wave)] = torch.from_numpy(wave)
    return buffer, torch.tensor([len(w) for w in waves])


def test_the_batched_front_end_matches_the_per_clip_path_view_by_view():
    """Stage one's batched path (padded rows, mixup, shift and masks on the device) against
    render_view, clip by clip: clips longer and shorter than the target, one shorter than a window,
    DC offsets, partners longer and shorter than their clip."""
    from pipeline.augment import render_batch, view_tensors

    cfg = FrontEndConfig(n_mels=32, target_length=80, norm_mean=-6, norm_std=4)
    rng = np.random.default_rng(5)
    lengths = [12960, 9000, 200, 16000, 4000, 12960]
    waves = [(rng.standard_normal(n) * 0.3 + 0.1).astype(np.float32) for n in lengths]
    partners = [(rng.standard_normal(n) * 0.3).astype(np.float32) for n in (5000, 20000, 800, 100, 12960, 3000)]
    settings = AugmentSettings(mixup=0.6, freqm=6, timem=12, time_shift=7)
    views = [draw_view(2, f"c{i}", 0, ["p"], settings, cfg.n_mels, cfg.target_length) for i in range(len(waves))]
    views[1] = View(seed=0, view_index=0)  # one clean row among the views
    assert any(v.partner for v in views) and any(not v.partner for v in views)
    buffer, sizes = _padded(waves)
    partner_buffer, _ = _padded([p if v.partner else np.zeros(1, np.float32) for p, v in zip(partners, views)])
    batched = render_batch(buffer, sizes, cfg, view_tensors(views), partner_buffer)
    for row, view in enumerate(views):
        single = render_view(waves[row], partners[row] if view.partner else None, view, cfg)
        assert batched.shape[1:] == single.shape
        np.testing.assert_allclose(batched[row].numpy(), single.numpy(), rtol=0, atol=2e-5)
        # masks and shifts are exact: the same cells are zero in both paths
        assert torch.equal(batched[row] == 0, single == 0)


def test_a_view_without_mixup_reuses_the_clean_features_bit_for_bit():
    from pipeline.augment import apply_views, view_tensors
    from pipeline.features import wave_to_features

    cfg = FrontEndConfig(n_mels=32, target_length=80, norm_mean=-6, norm_std=4)
    wave = np.random.default_rng(1).standard_normal(12000).astype(np.float32)
    view = View(seed=0, view_index=2, time_shift=-4, freq_masks=((3, 5),), time_masks=((10, 7), (50, 2)))
    arrays = view_tensors([view])
    reused = apply_views(
        wave_to_features(wave, cfg)[None], arrays["time_shift"], arrays["freq_masks"], arrays["time_masks"]
    )[0]
    assert torch.equal(reused, render_view(wave, None, view, cfg))
    manual = torch.roll(wave_to_features(wave, cfg), -4, dims=0)
    manual[:, 3:8] = 0.0
    manual[10:17] = 0.0
    manual[50:52] = 0.0
    assert torch.equal(reused, manual)  # the shift and masks a replay in stage two rebuilds
