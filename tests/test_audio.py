"""Decoding, channel mixing, resampling and packed HDF5 audio (pipeline/audio.py)."""

from __future__ import annotations

import multiprocessing
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from pipeline.audio import SAMPLE_RATE, AudioError, PackedAudio, audio_info, pack_clips, read_audio, write_wav

torch.set_num_threads(1)


def sine(freq: float = 440.0, seconds: float = 0.5, sample_rate: int = SAMPLE_RATE, amplitude: float = 0.5):
    return amplitude * np.sin(2 * np.pi * freq * np.arange(int(seconds * sample_rate)) / sample_rate)


def peak_hz(wave: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return float(np.fft.rfftfreq(len(wave), 1 / sample_rate)[spectrum.argmax()])


@pytest.mark.parametrize(
    "subtype, tolerance", [("PCM_16", 2 / 32768), ("PCM_24", 1e-6), ("PCM_32", 1e-6), ("FLOAT", 1e-7), ("DOUBLE", 1e-7)]
)
def test_every_sample_format_reads_as_the_same_float_wave(tmp_path, subtype, tolerance):
    """Float WAVs read as integers (or integers left unscaled) gave near-random mAP in the parent code."""
    wave = sine()
    sf.write(tmp_path / "x.wav", wave, SAMPLE_RATE, subtype=subtype)
    read = read_audio(tmp_path / "x.wav")
    assert read.dtype == np.float32 and read.shape == wave.shape
    np.testing.assert_allclose(read, wave, atol=tolerance)


def test_stereo_becomes_the_mean_of_its_channels(tmp_path):
    left, right = sine(440.0), sine(1000.0, amplitude=0.25)
    sf.write(tmp_path / "stereo.wav", np.stack([left, right], axis=1), SAMPLE_RATE, subtype="FLOAT")
    np.testing.assert_allclose(read_audio(tmp_path / "stereo.wav"), (left + right) / 2, atol=1e-6)
    assert audio_info(tmp_path / "stereo.wav") == (pytest.approx(0.5), SAMPLE_RATE, 2)


@pytest.mark.parametrize("sample_rate, freq", [(44100, 1000.0), (8000, 440.0)])
def test_resampling_to_16k_keeps_length_and_pitch(tmp_path, sample_rate, freq):
    sf.write(tmp_path / "x.wav", sine(freq, seconds=1.0, sample_rate=sample_rate), sample_rate, subtype="PCM_16")
    wave = read_audio(tmp_path / "x.wav")
    assert len(wave) == SAMPLE_RATE  # 1 s at any rate is 16000 samples at 16 kHz
    assert peak_hz(wave) == pytest.approx(freq, abs=1.0)  # 1 s of signal: 1 Hz bins
    assert np.abs(wave).max() == pytest.approx(0.5, abs=0.02)


@pytest.mark.parametrize(
    "bad, reason", [("nan", "audio contains NaN"), ("inf", "audio contains NaN or infinite"), ("empty", "empty audio")]
)
def test_non_finite_or_empty_audio_is_refused_naming_the_file(tmp_path, bad, reason):
    wave = {"nan": np.array([0.1, np.nan, 0.2] * 100), "inf": np.array([0.1, np.inf] * 100), "empty": np.zeros(0)}[bad]
    path = tmp_path / f"{bad}.wav"
    sf.write(path, wave, SAMPLE_RATE, subtype="FLOAT")
    with pytest.raises(AudioError, match=re.escape(f"{path}: {reason}")):
        read_audio(path)


def test_non_audio_and_missing_files_are_audio_errors(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("this is a text file with a .wav suffix\n")
    for reader in (read_audio, audio_info):
        with pytest.raises(AudioError, match=re.escape(f"{path}: not readable as audio")):
            reader(path)
        with pytest.raises(AudioError, match="file not found"):
            reader(tmp_path / "absent.wav")


class Clip:
    def __init__(self, clip_id: str, path: str):
        self.clip_id, self.path = clip_id, path


@pytest.fixture
def packed(tmp_path) -> tuple[PackedAudio, dict[str, Path]]:
    files = {}
    for i in range(3):  # 16 kHz int16 sources of different lengths
        files[f"c{i}"] = tmp_path / f"c{i}.wav"
        write_wav(files[f"c{i}"], sine(300.0 + 100 * i, seconds=0.2 + 0.1 * i))
    files["c44k"] = tmp_path / "c44k.wav"  # resampled on the way in: int16 quantisation applies
    sf.write(files["c44k"], sine(500.0, seconds=0.3, sample_rate=44100), 44100, subtype="PCM_16")
    clips = [Clip(clip_id, path.name) for clip_id, path in files.items()]
    shards = pack_clips(clips, tmp_path, tmp_path / "packed", shard_clips=2, progress=False)
    return PackedAudio(shards), files


def test_packed_audio_reads_what_read_audio_gives(packed):
    audio, files = packed
    assert len(audio.shard_paths) == 2 and set(audio.index) == set(files)
    for clip_id in ("c0", "c1", "c2"):
        np.testing.assert_array_equal(audio.read(clip_id), read_audio(files[clip_id]))
    np.testing.assert_allclose(audio.read("c44k"), read_audio(files["c44k"]), atol=0.5 / 32768 + 1e-7)
    with pytest.raises(AudioError, match="'nope' is not in the packed audio"):
        audio.read("nope")


def test_packed_audio_survives_pickling_and_forked_workers(packed):
    audio, files = packed
    audio.read("c0")  # opens a handle in this process first, as a training loop would
    clone = pickle.loads(pickle.dumps(audio))
    np.testing.assert_array_equal(clone.read("c2"), read_audio(files["c2"]))

    class Dataset(torch.utils.data.Dataset):
        ids = sorted(files)

        def __len__(self):
            return len(self.ids)

        def __getitem__(self, i):
            return torch.from_numpy(audio.read(self.ids[i]))

    loader = torch.utils.data.DataLoader(
        Dataset(), batch_size=None, num_workers=1, multiprocessing_context=multiprocessing.get_context("fork")
    )
    for clip_id, wave in zip(Dataset.ids, loader):
        np.testing.assert_array_equal(wave.numpy(), audio.read(clip_id))


def test_fingerprint_follows_the_samples_not_the_container(tmp_path):
    from pipeline.audio import audio_fingerprint, fingerprint_samples

    wave = (np.random.default_rng(3).standard_normal(8000) * 0.1).astype(np.float32)
    write_wav(tmp_path / "a.wav", wave)
    sf.write(str(tmp_path / "a.flac"), read_audio(tmp_path / "a.wav"), SAMPLE_RATE, subtype="PCM_16")
    first = audio_fingerprint(tmp_path / "a.wav")
    assert first == audio_fingerprint(tmp_path / "a.flac") == fingerprint_samples(read_audio(tmp_path / "a.wav"))
    louder = read_audio(tmp_path / "a.wav").copy()
    louder[100] += 1 / 32768  # one sample, one least significant bit
    assert fingerprint_samples(louder) != first and len(first) == 32


@pytest.mark.parametrize(
    "sample_rate, channels, subtype, fmt",
    [
        (16000, 1, "PCM_16", "WAV"),
        (44100, 2, "PCM_24", "FLAC"),
        (22050, 1, "FLOAT", "WAV"),
        (48000, 2, "PCM_16", "WAV"),
    ],
)
def test_one_decode_gives_the_checks_and_the_same_fingerprint_as_reading_the_file(
    tmp_path, sample_rate, channels, subtype, fmt
):
    """The manifest's full check fingerprints the samples it has just checked: they must be exactly the
    samples every reader gets (read_audio: any rate and channel count, resampled to 16 kHz mono)."""
    from pipeline.audio import audio_fingerprint, check_audio, probe_audio

    frames = int(1.3 * sample_rate)  # more than one decode block at every rate here
    wave = (np.random.default_rng(5).standard_normal((frames, channels)) * 0.2).astype(np.float32)
    path = tmp_path / f"clip.{fmt.lower()}"
    sf.write(str(path), wave, sample_rate, subtype=subtype, format=fmt)
    duration, rate, count, fingerprint = probe_audio(path)
    assert (rate, count) == (sample_rate, channels) and duration == pytest.approx(1.3, abs=1e-4)
    assert fingerprint == audio_fingerprint(path) and check_audio(path) == (duration, rate, count)
    assert probe_audio(path, "header") == (duration, rate, count, "")


def test_read_audio_makes_the_manifest_checks_on_what_it_decodes(tmp_path):
    """Every reader (stage one, training, norm stats, pack) now refuses what `make manifests` refuses."""
    import soundfile as sf

    from pipeline.audio import AudioError, read_audio, write_wav

    wave = 0.3 * np.sin(np.linspace(0, 2000, 16000)).astype(np.float32)
    write_wav(tmp_path / "cut.wav", wave)
    data = (tmp_path / "cut.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: 44 + 6000])  # header intact: it still declares 16000 frames
    with pytest.raises(AudioError, match="cut.wav: truncated: the header declares 16000 frames"):
        read_audio(tmp_path / "cut.wav")
    sf.write(str(tmp_path / "loud.wav"), wave * 3000, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="loud.wav: samples reach 900"):
        read_audio(tmp_path / "loud.wav")
