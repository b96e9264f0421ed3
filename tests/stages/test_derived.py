"""Norm stats and packed audio derived from a manifest, through their drivers (stages.norm_stats, stages.pack)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from pipeline.audio import PackedAudio, read_audio
from pipeline.config import FrontEndConfig
from pipeline.features import fbank
from pipeline.manifests import Clip, Label, build_manifest, load_manifest, write_manifest
from stages import norm_stats as norm_stats_stage
from stages import pack as pack_stage

torch.set_num_threads(1)
MIDS = ["/m/a", "/m/b"]


def make_fsd50k(root: Path, splits: list[str]) -> Path:
    """A tiny FSD50K layout whose clips differ in pitch and level, so stats depend on which are used."""
    truth = root / "FSD50K.ground_truth"
    truth.mkdir(parents=True)
    (truth / "vocabulary.csv").write_text("0,A,/m/a\n1,B,/m/b\n")
    dev = [f'{100 + i},"A","/m/a",{s}' for i, s in enumerate(splits)]
    (truth / "dev.csv").write_text("fname,labels,mids,split\n" + "\n".join(dev) + "\n")
    (truth / "eval.csv").write_text('fname,labels,mids\n900,"B","/m/b"\n')
    names = [(f"FSD50K.dev_audio/{100 + i}.wav", i) for i in range(len(splits))] + [("FSD50K.eval_audio/900.wav", 9)]
    for name, i in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        t = np.arange(int(0.3 * 16000)) / 16000
        sf.write(root / name, (0.05 + 0.05 * i) * np.sin(2 * np.pi * (200 + 150 * i) * t), 16000, subtype="PCM_16")
    return root


@pytest.fixture
def manifests(tmp_path) -> Path:
    root = make_fsd50k(tmp_path / "fsd", ["train", "train", "val", "train", "train"])
    build_manifest("tiny", "fsd50k", root, tmp_path / "manifests", progress=False)
    return tmp_path / "manifests"


def test_clean_norm_stats_use_training_clips_and_config_mels(manifests, tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("n_mels: 64\n")
    norm_stats_stage.main(
        ["--dataset", "tiny", "--manifests", str(manifests), "--config", str(recipe), "--method", "clean"]
    )
    stats = json.loads((manifests / "tiny/dataset.json").read_text())["norm_stats"]
    manifest = load_manifest(manifests / "tiny")
    train = [c for c in manifest.clips if c.split == "train"]
    feats = torch.cat([fbank(read_audio(manifest.audio_path(c)), FrontEndConfig(n_mels=64)) for c in train]).numpy()
    assert stats["n_mels"] == 64 and stats["clips"] == 4
    assert stats["norm_mean"] == pytest.approx(float(feats.mean()), abs=1e-4)
    assert stats["norm_std"] == pytest.approx(float(feats.std()), abs=1e-4)
    assert manifest.stats() == stats  # what Config.front_end(stats) consumes


def upstream_reference(waves: list[np.ndarray], n_mels: int, target_length: int, batch: int) -> tuple[float, float]:
    """AST's get_norm_stats.py restated (no masks, no mixup here): each clip's mean removed, torchaudio's
    Kaldi fbank, zero-padded to target_length, batches in order; the mean of the batch means and of the
    batch (unbiased) standard deviations."""
    from torchaudio.compliance import kaldi

    feats = []
    for wave in waves:
        signal = torch.from_numpy(wave.astype(np.float32))[None]
        spec = kaldi.fbank(
            signal - signal.mean(),
            htk_compat=True,
            sample_frequency=16000,
            use_energy=False,
            window_type="hanning",
            num_mel_bins=n_mels,
            dither=0.0,
            frame_shift=10,
        )
        feats.append(torch.nn.ZeroPad2d((0, 0, 0, target_length - spec.shape[0]))(spec))
    means, stds = [], []
    for start in range(0, len(feats), batch):
        block = torch.stack(feats[start : start + batch])
        means.append(torch.mean(block).item())
        stds.append(torch.std(block).item())
    return float(np.mean(means)), float(np.mean(stds))


def test_upstream_norm_stats_match_ast_get_norm_stats(manifests, tmp_path):
    from pipeline.config import Config
    from pipeline.training.norm_stats import loader_norm_stats

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("n_mels: 64\ntarget_length: 100\n")
    norm_stats_stage.main(["--dataset", "tiny", "--manifests", str(manifests), "--config", str(recipe)])
    stats = load_manifest(manifests / "tiny").stats()
    manifest = load_manifest(manifests / "tiny")
    train = [c for c in manifest.clips if c.split == "train"]
    waves = [read_audio(manifest.audio_path(c)) for c in train]
    mean, std = upstream_reference(waves, 64, 100, batch=1000)
    assert stats["method"] == "upstream" and stats["clips"] == 4 and stats["target_length"] == 100
    assert stats["norm_mean"] == pytest.approx(mean, abs=1e-4) and stats["norm_std"] == pytest.approx(std, abs=1e-4)
    # several batches: the mean of per-batch values, not the pooled ones
    config = Config(n_mels=64, target_length=100)
    assert loader_norm_stats(manifest, train, config, progress=False, batch_size=3) == pytest.approx(
        upstream_reference(waves, 64, 100, batch=3), abs=1e-4
    )
    # the training loader's masks are part of it (upstream computes them on masked features)
    masked = loader_norm_stats(manifest, train, Config(n_mels=64, target_length=100, timem=20), progress=False)
    assert masked[0] != pytest.approx(mean, abs=1e-4)


def test_norm_stats_sample_is_deterministic(manifests):
    norm_stats_stage.main(["--dataset", "tiny", "--manifests", str(manifests), "--max-clips", "2"])
    first = load_manifest(manifests / "tiny").stats()
    norm_stats_stage.main(["--dataset", "tiny", "--manifests", str(manifests), "--max-clips", "2"])
    assert load_manifest(manifests / "tiny").stats() == first and first["clips"] == 2
    norm_stats_stage.main(["--dataset", "tiny", "--manifests", str(manifests)])
    assert load_manifest(manifests / "tiny").stats()["norm_mean"] != first["norm_mean"]


def test_norm_stats_without_manifest_fails_clearly(tmp_path):
    with pytest.raises(SystemExit, match="no manifest at"):
        norm_stats_stage.main(["--dataset", "absent", "--manifests", str(tmp_path)])


def test_pack_writes_shards_that_read_back_like_files(manifests, tmp_path):
    packed = tmp_path / "packed"
    argv = ["--dataset", "tiny", "--manifests", str(manifests), "--out-root", str(packed), "--shard-clips", "2"]
    pack_stage.main(argv)
    manifest = load_manifest(manifests / "tiny")
    shards = manifest.info["packed"]
    assert shards == [str(packed / f"tiny/audio_{i:05d}.h5") for i in range(3)]
    audio = PackedAudio(shards)
    for clip in manifest.clips:  # 16-bit sources at 16 kHz: packing is lossless
        np.testing.assert_array_equal(audio.read(clip.clip_id), read_audio(manifest.audio_path(clip)))
    written = {s: Path(s).stat().st_mtime_ns for s in shards}
    pack_stage.main(argv)  # resumable: finished shards are kept as they are
    assert {s: Path(s).stat().st_mtime_ns for s in shards} == written


def test_pack_rebuilds_shards_of_a_changed_manifest(manifests, tmp_path):
    packed = tmp_path / "packed"
    argv = ["--dataset", "tiny", "--manifests", str(manifests), "--out-root", str(packed), "--shard-clips", "2"]
    pack_stage.main(argv)
    root = make_fsd50k(tmp_path / "other", ["train", "val"])
    build_manifest("tiny", "fsd50k", root, manifests, progress=False)
    assert "packed" not in load_manifest(manifests / "tiny").info  # a new clip list drops the old pack
    pack_stage.main(argv)
    audio = PackedAudio(load_manifest(manifests / "tiny").info["packed"])
    assert sorted(audio.index) == ["100", "101", "900"]
    assert not (packed / "tiny/audio_00002.h5").exists()


def test_rebuilding_the_same_clips_keeps_derived_results(tmp_path):
    root = tmp_path / "audio"
    root.mkdir()
    sf.write(root / "x.wav", np.zeros(1600), 16000)
    clips = [Clip("x", "x.wav", ("/m/a",), "train", None, 0.1, 16000, 1)]
    labels = [Label(0, "/m/a", "A")]
    write_manifest(tmp_path / "m", "m", root, "fsd50k", labels, clips)
    (tmp_path / "m/dataset.json").write_text(
        json.dumps(
            {
                **json.loads((tmp_path / "m/dataset.json").read_text()),
                "norm_stats": {"norm_mean": 1.0},
                "packed": ["p.h5"],
            }
        )
    )
    write_manifest(tmp_path / "m", "m", root, "fsd50k", labels, clips)
    info = load_manifest(tmp_path / "m").info
    assert info["norm_stats"] == {"norm_mean": 1.0} and info["packed"] == ["p.h5"]
