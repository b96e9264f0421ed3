"""Decoding audio into float32 mono waveforms at 16 kHz, and packed HDF5 audio shards.

Every reader in the project goes through :func:`read_audio` (files) or :class:`PackedAudio`
(HDF5 shards), so the same clip gives the same samples whichever path it took.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

if TYPE_CHECKING:
    import h5py  # imported where used: only packed audio needs it

SAMPLE_RATE = 16000


class AudioError(ValueError):
    """A clip that cannot be turned into a waveform; the message names the file."""


def to_mono_16k(samples: np.ndarray, sample_rate: int, source: str = "<array>") -> np.ndarray:
    """[frames] or [frames, channels] float samples -> float32 mono at 16 kHz."""
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    if samples.size == 0:
        raise AudioError(f"{source}: empty audio (0 samples)")
    if not np.isfinite(samples).all():
        raise AudioError(f"{source}: audio contains NaN or infinite samples")
    if sample_rate != SAMPLE_RATE:
        wave = AF.resample(torch.from_numpy(samples), sample_rate, SAMPLE_RATE)
        samples = wave.numpy().astype(np.float32, copy=False)
    return samples


def _require_file(path: str | os.PathLike) -> None:
    # libsndfile reports a missing file as a generic "System error"; say what is wrong
    if not os.path.isfile(path):
        raise AudioError(f"{path}: file not found")


class AudioChanged(AudioError):
    """A clip whose decoded audio no longer matches the fingerprint its manifest row recorded."""


def read_audio(path: str | os.PathLike) -> np.ndarray:
    """Read any PCM or float file as float32 in [-1, 1], mono, 16 kHz.

    soundfile scales every integer subtype (16/24/32-bit PCM) to [-1, 1) when asked for float32, and
    passes float files through: reading float PCM as int is the classic "near-random mAP" bug.
    The checks `make manifests` makes run here too, on the samples just decoded (a file can change
    after its manifest): a WAV holding fewer frames than its header declares, NaN/inf samples, and
    float samples far outside [-1, 1] are AudioErrors, never a shorter or louder clip.
    """
    path = str(path)
    _require_file(path)
    try:
        samples, sample_rate = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as error:
        raise AudioError(f"{path}: not readable as audio ({error})") from None
    declared = declared_wav_frames(path)
    if declared is not None and declared > len(samples):
        raise AudioError(
            f"{path}: truncated: the header declares {declared} frames ({declared / sample_rate:.2f} s), "
            f"the file holds {len(samples)} ({len(samples) / sample_rate:.2f} s)"
        )
    if samples.size and np.isfinite(samples).all():
        peak = float(np.abs(samples).max())
        if peak > FLOAT_PEAK_LIMIT:
            raise AudioError(
                f"{path}: samples reach {peak:.4g}, far outside [-1, 1] (integer PCM values stored "
                f"as float?); rescale the file"
            )
    return to_mono_16k(samples, sample_rate, source=path)


def audio_info(path: str | os.PathLike) -> tuple[float, int, int]:
    """(duration_s, sample_rate, channels) from the header alone; raises AudioError on non-audio."""
    _require_file(path)
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as error:
        raise AudioError(f"{path}: not readable as audio ({error})") from None
    if info.frames == 0:
        raise AudioError(f"{path}: empty audio (0 samples)")
    return info.frames / info.samplerate, int(info.samplerate), int(info.channels)


FINGERPRINT_HEX = 32  # 128 bits of sha256: collisions between real clips are out of reach


def fingerprint_samples(samples: np.ndarray) -> str:
    """The audio fingerprint of a 16 kHz float32 mono waveform: sha256 of its int16 little-endian samples.

    It identifies what a model hears, not the file: a WAV re-encoded to FLAC (or packed to HDF5)
    keeps it, a trimmed, resampled-differently or other recording does not.
    """
    return hashlib.sha256(float_to_int16(samples).astype("<i2").tobytes()).hexdigest()[:FINGERPRINT_HEX]


def audio_fingerprint(path: str | os.PathLike) -> str:
    """Decode the file as every reader does (:func:`read_audio`) and fingerprint the samples."""
    return fingerprint_samples(read_audio(path))


# float files may overshoot full scale a little (inter-sample peaks, gain staging); beyond this the
# samples are not [-1, 1] audio at all (typically integer PCM values stored as float)
FLOAT_PEAK_LIMIT = 2.0
DECODE_BLOCK = 1 << 16
CHECKS = ("full", "header")


def declared_wav_frames(path: str | os.PathLike) -> int | None:
    """Frames the data chunk of a RIFF/WAVE header declares, or None (not a WAV, or a streaming
    header with no size). libsndfile reports only the frames present, so a WAV cut short keeps a
    plausible duration unless the declared size is compared with what is there."""
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        block_align = 0
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                return None
            chunk_id, size = chunk[:4], int.from_bytes(chunk[4:], "little")
            if chunk_id == b"data":
                return size // block_align if block_align and size not in (0, 0xFFFFFFFF) else None
            body = f.read(size + (size & 1)) if chunk_id == b"fmt " else None
            if body is not None:
                block_align = int.from_bytes(body[12:14], "little") if len(body) >= 14 else 0
            else:
                f.seek(size + (size & 1), os.SEEK_CUR)


def check_audio(path: str | os.PathLike, check: str = "full") -> tuple[float, int, int]:
    """(duration_s, sample_rate, channels) of a clip fit for training, or AudioError saying why not.

    ``header``: the header, and for WAV the declared data size against the frames present.
    ``full`` (the default) also decodes every sample: frames that cannot be read, NaN/inf, and float
    samples far outside [-1, 1] are refused, so training never meets them mid-epoch.
    """
    duration, sample_rate, channels = _checked_header(path, check)
    if check == "full":
        _decode_checked(path, sample_rate, duration)
    return duration, sample_rate, channels


def probe_audio(path: str | os.PathLike, check: str = "full") -> tuple[float, int, int, str]:
    """:func:`check_audio` plus the clip's fingerprint, taken from the same decode (``full``: a
    manifest over AudioSet decodes each of its two million clips once, not twice); ``header``
    decodes nothing and gives no fingerprint ("")."""
    duration, sample_rate, channels = _checked_header(path, check)
    if check == "header":
        return duration, sample_rate, channels, ""
    samples = _decode_checked(path, sample_rate, duration)
    return duration, sample_rate, channels, fingerprint_samples(to_mono_16k(samples, sample_rate, source=str(path)))


def _checked_header(path: str | os.PathLike, check: str) -> tuple[float, int, int]:
    if check not in CHECKS:
        raise ValueError(f"audio check must be one of {CHECKS}, got {check!r}")
    duration, sample_rate, channels = audio_info(path)
    frames = round(duration * sample_rate)
    declared = declared_wav_frames(path)
    if declared is not None and declared > frames:
        raise AudioError(
            f"{path}: truncated: the header declares {declared} frames ({declared / sample_rate:.2f} s), "
            f"the file holds {frames} ({duration:.2f} s)"
        )
    return duration, sample_rate, channels


def _decode_checked(path: str | os.PathLike, sample_rate: int, duration: float) -> np.ndarray:
    """Every sample as float32 [frames, channels], decoded block by block so that an error says how
    far the file decodes; the samples are read_audio's before its mono/16 kHz step."""
    frames = round(duration * sample_rate)
    blocks, readable, peak = [], 0, 0.0
    try:
        with sf.SoundFile(str(path)) as f:
            for block in f.blocks(blocksize=DECODE_BLOCK, dtype="float32", always_2d=True):
                finite = np.isfinite(block)
                if not finite.all():
                    first = readable + int(np.argmin(finite.all(axis=1)))
                    raise AudioError(f"{path}: NaN or infinite samples (first at {first / sample_rate:.2f} s)")
                peak = max(peak, float(np.abs(block).max(initial=0.0)))
                readable += len(block)
                blocks.append(block)
    except (sf.LibsndfileError, RuntimeError) as error:
        raise AudioError(f"{path}: decoding failed after {readable / sample_rate:.2f} s ({error})") from None
    if readable < frames:
        raise AudioError(
            f"{path}: truncated: the header declares {frames} frames ({duration:.2f} s), only "
            f"{readable} decode ({readable / sample_rate:.2f} s)"
        )
    if peak > FLOAT_PEAK_LIMIT:
        raise AudioError(
            f"{path}: samples reach {peak:.4g}, far outside [-1, 1] (integer PCM values stored as "
            f"float?); rescale the file"
        )
    return np.concatenate(blocks)


def write_wav(path: str | os.PathLike, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """16-bit PCM WAV, the format of the embedded corpus and of FSD50K."""
    clipped = np.clip(samples, -1.0, 1.0 - 1.0 / 32768)
    sf.write(str(path), clipped, sample_rate, subtype="PCM_16")


# --------------------------------------------------------------------------------------------
# Packed HDF5 audio: int16 at 16 kHz, one flat array per shard plus an offset index, because
# per-file WAV reading starves a GPU on large sets (https://github.com/kkoutini/PaSST/issues/29).
# int16 halves the bytes of float32
# and is exactly what FSD50K and AudioSet WAVs hold, so packing loses nothing for them.
# --------------------------------------------------------------------------------------------

PACK_FORMAT = "cmkd-packed-audio"
PACK_VERSION = "1.0"


def float_to_int16(samples: np.ndarray) -> np.ndarray:
    return np.clip(np.round(samples * 32768.0), -32768, 32767).astype(np.int16)


class PackedAudio:
    """Lazy reader over HDF5 shards; files open on first use inside each process (fork/spawn safe).

    ``index`` maps clip_id -> (shard path, offset, length). The open h5py handles are dropped when
    the object is pickled, and ignored after a fork, so every DataLoader worker opens its own.
    """

    def __init__(self, shard_paths: list[str | os.PathLike]):
        import h5py

        self.shard_paths = [str(p) for p in shard_paths]
        self.index: dict[str, tuple[int, int, int]] = {}
        for shard_number, shard in enumerate(self.shard_paths):
            with h5py.File(shard, "r") as f:
                if f.attrs.get("format") != PACK_FORMAT:
                    raise AudioError(f"{shard}: not a {PACK_FORMAT} file")
                ids = f["clip_id"].asstr()[:]
                offsets = f["offset"][:]
                lengths = f["length"][:]
            for clip_id, offset, length in zip(ids, offsets, lengths):
                self.index[clip_id] = (shard_number, int(offset), int(length))
        self._handles: dict[int, h5py.File] = {}
        self._handles_pid = os.getpid()

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_handles"] = {}
        return state

    def __contains__(self, clip_id: str) -> bool:
        return clip_id in self.index

    def read(self, clip_id: str) -> np.ndarray:
        import h5py

        if clip_id not in self.index:
            raise AudioError(f"clip {clip_id!r} is not in the packed audio ({len(self.shard_paths)} shards)")
        shard_number, offset, length = self.index[clip_id]
        if self._handles_pid != os.getpid():
            # a forked DataLoader worker inherits the parent's open handles; HDF5 is not fork-safe
            self._handles, self._handles_pid = {}, os.getpid()
        handle = self._handles.get(shard_number)
        if handle is None:
            handle = h5py.File(self.shard_paths[shard_number], "r")
            self._handles[shard_number] = handle
        samples = handle["audio"][offset : offset + length]
        return samples.astype(np.float32) / 32768.0


def pack_clips(
    clips,
    data_root: str | os.PathLike,
    out_dir: str | os.PathLike,
    shard_clips: int = 20000,
    progress: bool = True,
    read=None,
) -> list[Path]:
    """Pack clips (objects with .clip_id and .path) into int16 HDF5 shards under out_dir; ``read(clip)``
    gives a clip's waveform (default: :func:`read_audio` of the file under data_root).

    Written shard by shard to a temporary name and renamed, so an interrupted pack keeps its
    finished shards and a rerun skips them.
    """
    import h5py
    from tqdm import tqdm

    from .progress import bar_options

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    clips = list(clips)
    shards = []
    bar = tqdm(total=len(clips), unit="clip", desc="pack", **bar_options(progress))
    for start in range(0, len(clips), shard_clips):
        part = clips[start : start + shard_clips]
        shard = out_dir / f"audio_{start // shard_clips:05d}.h5"
        shards.append(shard)
        if shard.exists():
            bar.update(len(part))
            continue
        tmp = shard.with_suffix(".h5.tmp")
        waves, ids = [], []
        for clip in part:
            wave = read(clip) if read is not None else read_audio(Path(data_root) / clip.path)
            waves.append(float_to_int16(wave))
            ids.append(clip.clip_id)
            bar.update(1)
        lengths = np.array([len(w) for w in waves], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = PACK_FORMAT
            f.attrs["version"] = PACK_VERSION
            f.attrs["sample_rate"] = SAMPLE_RATE
            f.create_dataset("audio", data=np.concatenate(waves), chunks=(min(1 << 16, int(lengths.sum())),))
            f.create_dataset("clip_id", data=np.array(ids, dtype=object), dtype=h5py.string_dtype())
            f.create_dataset("offset", data=offsets)
            f.create_dataset("length", data=lengths)
        os.replace(tmp, shard)
    bar.close()
    return shards
