"""Entries for trusted sharing: `verify_throughput` (MB/s a full check re-hashes), `verified_read_cost`
(what verifying a store on open costs against one cached-KD epoch) and `fingerprint_cost` (what the
per-clip audio fingerprint adds to manifest validation)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.testing import noise_and_tones, simulated_logits, write_simulated_store

from .harness import RATIO, BenchContext, Figure, Goal, Measured, interleaved, median, timed


def _simulated_store(ctx: BenchContext, name: str, clips: int, classes: int):
    clip_ids = [f"clip{i:07d}" for i in range(clips)]
    logits = simulated_logits(clips, classes, seed=7)
    path = write_simulated_store(ctx.folder(name) / "teacher.zarr", clip_ids, classes, lambda a, b: logits[a:b])
    return path, clip_ids


def _fresh_verified_open(path):
    """LogitTable.open with verification, as a new process does it (the once-per-process record cleared)."""
    from pipeline.store import LogitTable, reader

    reader._VERIFIED_CHUNKS.clear()
    return LogitTable.open(path, load_views=False)


# -- verify_throughput ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifyParams:
    clips: int = 40000
    classes: int = 527
    repeats: int = 5


VERIFY_FULL = VerifyParams()
VERIFY_QUICK = VerifyParams(clips=4000, repeats=2)


def run_verify(ctx: BenchContext, params: VerifyParams) -> Measured:
    from pipeline.store import check_store

    path, _ = _simulated_store(ctx, "verify_throughput", params.clips, params.classes)
    check_store(path)  # warm the page cache: the figure is hashing and decoding, not the disk
    results = [check_store(path) for _ in range(params.repeats)]
    assert all(r.ok for r in results), results[0].problems
    seconds = [r.seconds for r in results]
    megabytes = results[0].bytes_checked / 1e6
    throughput = megabytes / median(seconds)
    note = (
        f"`python -m pipeline.store verify` (check_store) of a complete float16 dense store, "
        f"{params.clips} clips x {params.classes} classes ({megabytes:.1f} MB of numeric array data once "
        "decoded), warm page cache: decode every chunk (zstd, crc32c), sha256 of every checksummed array, "
        f"row checks, digest; median of {params.repeats} runs. MB/s counts decoded numeric bytes."
    )
    return Measured(
        [Figure("full verification, decoded MB/s", throughput, "MB/s")],
        timings={"verify_s": seconds},
        details={"megabytes": megabytes, "clips": params.clips},
        note=note,
    )


# -- verified_read_cost ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifiedReadParams:
    clips: int = 20000  # one epoch of this many training clips
    classes: int = 527
    model: str = "efficientnet_tiny"  # the fastest student: the strictest denominator
    n_mels: int = 64
    target_length: int = 400
    batch: int = 16
    step_repeats: int = 6
    open_repeats: int = 5


VERIFIED_READ_FULL = VerifiedReadParams()
VERIFIED_READ_QUICK = VerifiedReadParams(clips=2000, step_repeats=2, open_repeats=2)


def run_verified_read(ctx: BenchContext, params: VerifiedReadParams) -> Measured:
    import torch

    from pipeline.store import LogitTable

    from .stage_two import Student, bench_data, kd_source

    path, _ = _simulated_store(ctx, "verified_read_cost", params.clips, params.classes)
    opens = interleaved(
        {
            "verified": lambda: _fresh_verified_open(path),
            "unverified": lambda: LogitTable.open(path, load_views=False, verify=False),
        },
        params.open_repeats,
    )
    extra = [v - u for v, u in zip(opens["verified"], opens["unverified"])]
    data = bench_data(
        ctx,
        "verified_read_step",
        params.batch,
        params.classes,
        params.n_mels,
        params.target_length,
        table_rows=params.clips,
    )
    student = Student(params.model, params.classes, params.n_mels, params.target_length)
    kd = kd_source(data.cached.kd, "bce")
    steps = interleaved(
        {"cached": lambda: student.step(data.batch(range(params.batch), kd=True), kd)}, params.step_repeats
    )["cached"]
    epoch_s = median(steps) * -(-params.clips // params.batch)
    share = max(median(extra), 0.0) / epoch_s
    note = (
        f"Verification cost = LogitTable.open(verify=True) - LogitTable.open(verify=False) of a complete "
        f"{params.clips}-clip float16 store of {params.classes} classes (median of {params.open_repeats} "
        "interleaved pairs, warm page cache, the once-per-process record cleared before each verified open). "
        f"Epoch = median cached-KD training step ({params.model} at {params.n_mels}x{params.target_length}, "
        f"batch {params.batch}, {torch.get_num_threads()} threads: ClipDataset items with KD=clean from a "
        f"{params.clips}-row LogitTable, collated, then the loop's train_step with bce KD) x "
        f"{-(-params.clips // params.batch)} steps, extrapolated from {params.step_repeats} steps; data "
        "loading inline (DataLoader workers would overlap it)."
    )
    return Measured(
        [Figure("verified open, extra seconds / one cached-KD epoch", share, "fraction", Goal("<=", 0.02))],
        timings={
            "open_verified_s": opens["verified"],
            "open_unverified_s": opens["unverified"],
            "cached_step_s": steps,
        },
        details={"verify_extra_s": median(extra), "epoch_s_extrapolated": epoch_s},
        note=note,
    )


# -- fingerprint_cost ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FingerprintParams:
    clips: int = 24
    seconds: float = 10.0
    rates: tuple[int, ...] = (16000, 44100)  # AudioSet copies are often 16 kHz, FSD50K and ESC-50 44.1 kHz


FINGERPRINT_FULL = FingerprintParams()
FINGERPRINT_QUICK = FingerprintParams(clips=4)


def run_fingerprint(ctx: BenchContext, params: FingerprintParams) -> Measured:
    import soundfile as sf

    from pipeline.audio import audio_fingerprint, audio_info, read_audio

    figures, timings, details = [], {}, {}
    for rate in params.rates:
        folder = ctx.folder(f"fingerprint_{rate}")
        rng = np.random.default_rng(rate)
        paths = []
        for i in range(params.clips):
            path = folder / f"clip{i:03d}.wav"
            sf.write(str(path), np.clip(noise_and_tones(params.seconds, rate, rng), -1, 1), rate, subtype="PCM_16")
            paths.append(path)
        per_clip = {}
        for name, fn in (("header", audio_info), ("decode", read_audio), ("fingerprint", audio_fingerprint)):
            fn(paths[0])  # warm-up (torchaudio's resampler kernel, page cache)
            seconds = [timed(lambda p=p, fn=fn: fn(p))[0] for p in paths]
            timings[f"{name}_{rate}_s"] = seconds
            per_clip[name] = median(seconds)
        details[str(rate)] = {k: 1000 * v for k, v in per_clip.items()}
        figures.append(
            Figure(
                f"fingerprint, {params.seconds:g}-s {rate} Hz 16-bit WAV, ms per clip",
                1000 * per_clip["fingerprint"],
                "ms",
            )
        )
        figures.append(
            Figure(f"fingerprint / decode alone ({rate} Hz)", per_clip["fingerprint"] / per_clip["decode"], RATIO)
        )
    note = (
        f"Per clip, median over {params.clips} generated {params.seconds:g}-s 16-bit WAV files per rate, warm "
        "page cache: `header` is audio_info (what validation read before), `decode` read_audio (soundfile, "
        "mono, resample to 16 kHz with torchaudio), `fingerprint` audio_fingerprint (decode, int16, sha256). "
        "Validation probes files in 8 threads, so wall time per manifest divides by the cores that decode "
        "in parallel. details: ms per clip for each step."
    )
    return Measured(figures, timings=timings, details=details, note=note)
