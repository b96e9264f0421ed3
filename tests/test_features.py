"""The Kaldi fbank front end: shapes, frame arithmetic, padding, normalisation and stats."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.config import FrontEndConfig
from pipeline.features import (
    compute_norm_stats,
    fbank,
    front_end_dict,
    normalise,
    pad_or_cut,
    samples_for_frames,
    wave_to_features,
)

torch.set_num_threads(1)


def sine(seconds: float, freq: float = 440.0, amplitude: float = 0.5) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * freq * np.arange(int(seconds * 16000)) / 16000)).astype(np.float32)


@pytest.mark.parametrize("n_mels", [128, 64])
def test_fbank_is_frames_by_mel_bins(n_mels):
    features = fbank(sine(1.0), FrontEndConfig(n_mels=n_mels))
    # Kaldi snip_edges: 1 + (16000 - 400) // 160 = 98 frames of 25 ms every 10 ms
    assert features.shape == (98, n_mels) and features.dtype == torch.float32
    assert torch.isfinite(features).all()


def test_fbank_puts_a_tone_in_the_right_mel_bins():
    cfg = FrontEndConfig(n_mels=64)
    low, high = fbank(sine(0.5, 300.0), cfg).mean(0), fbank(sine(0.5, 3000.0), cfg).mean(0)
    assert low.argmax() < high.argmax()


def test_samples_for_frames_is_the_inverse_of_the_frame_count():
    cfg = FrontEndConfig(n_mels=64)
    for frames in (1, 7, 98, 301):
        samples = samples_for_frames(frames, cfg)
        wave = sine(samples / 16000 + 1.0)  # long enough; cut to exact sample counts below
        assert fbank(wave[:samples], cfg).shape[0] == frames
        assert fbank(wave[: samples - 1], cfg).shape[0] == max(frames - 1, 1)


def test_audio_shorter_than_one_window_still_gives_a_frame():
    features = fbank(sine(0.01), FrontEndConfig(n_mels=64))  # 160 samples < 400-sample window
    assert features.shape == (1, 64) and torch.isfinite(features).all()


def test_fbank_ignores_dc_offset():
    cfg = FrontEndConfig(n_mels=64)
    torch.testing.assert_close(fbank(sine(0.5) + 0.3, cfg), fbank(sine(0.5), cfg), atol=1e-3, rtol=1e-4)


def test_pad_or_cut_gives_exactly_the_target_length():
    features = torch.arange(30, dtype=torch.float32).reshape(10, 3) + 1
    padded = pad_or_cut(features, 16)
    assert padded.shape == (16, 3)
    torch.testing.assert_close(padded[:10], features)
    assert (padded[10:] == 0).all()
    cut = pad_or_cut(features, 4)
    torch.testing.assert_close(cut, features[:4])
    torch.testing.assert_close(pad_or_cut(features, 10), features)


@pytest.mark.parametrize("divisor", [2.0, 1.0])
def test_normalise_divides_by_divisor_times_std(divisor):
    cfg = FrontEndConfig(norm_mean=-4.0, norm_std=3.0, norm_divisor=divisor)
    features = torch.tensor([[-4.0, 2.0], [8.0, -10.0]])
    torch.testing.assert_close(normalise(features, cfg), (features + 4.0) / (divisor * 3.0))


def test_wave_to_features_is_fbank_then_pad_then_normalise():
    cfg = FrontEndConfig(n_mels=64, target_length=128, norm_mean=-5.0, norm_std=4.0)
    out = wave_to_features(sine(0.5), cfg)
    assert out.shape == (128, 64)
    expected = (pad_or_cut(fbank(sine(0.5), cfg), 128) + 5.0) / 8.0
    torch.testing.assert_close(out, expected)
    assert front_end_dict(cfg)["norm"] == {"mean": -5.0, "std": 4.0, "divisor": 2.0}


def test_norm_stats_equal_numpy_over_concatenated_fbanks():
    cfg = FrontEndConfig(n_mels=64)
    waves = [sine(0.3, 440.0, 0.5), sine(0.7, 2000.0, 0.05) + 0.01 * np.random.default_rng(0).standard_normal(11200)]
    mean, std = compute_norm_stats(iter(waves), cfg)
    joined = np.concatenate([fbank(w, cfg).numpy().astype(np.float64) for w in waves])
    assert mean == pytest.approx(joined.mean(), rel=1e-9)
    assert std == pytest.approx(joined.std(), rel=1e-6)
    with pytest.raises(ValueError, match="no training clips"):
        compute_norm_stats([], cfg)


def test_batched_fbank_equals_torchaudio_kaldi_per_clip_at_paper_size():
    from pipeline.features import fbank_batch

    cfg = FrontEndConfig(n_mels=128, target_length=1024)
    rng = np.random.default_rng(3)
    lengths = [160000, 170000, 90000, 300]
    waves = [(rng.standard_normal(n) * 0.1 + 0.02).astype(np.float32) for n in lengths]
    buffer = torch.zeros(len(waves), max(lengths))
    for row, wave in enumerate(waves):
        buffer[row, : len(wave)] = torch.from_numpy(wave)
    batched = fbank_batch(buffer, torch.tensor(lengths), cfg)
    for row, wave in enumerate(waves):
        expected = pad_or_cut(fbank(wave, cfg), cfg.target_length)
        np.testing.assert_allclose(batched[row].numpy(), expected.numpy(), rtol=0, atol=1e-4)
        assert torch.equal(batched[row] == 0, expected == 0)  # the padding frames
