"""AudioSet as labs already hold it: one row of a PaSST/EfficientAT mp3 HDF5 file or a PANNs waveform HDF5 file.

Two layouts, as their packing scripts write them:

- ``mp3`` (PaSST ``create_h5pymp3_dataset.py``, read by PaSST and EfficientAT): datasets ``audio_name``
  (fixed-width bytes such as ``Y--4gqARaEJE.mp3``, unbalanced names with a part folder ``00/``), ``mp3``
  (variable-length uint8: the encoded file) and ``target`` (``np.packbits`` of the multi-hot labels over the
  last axis, big bit order, uint8);
- ``waveform`` (PANNs ``pack_waveforms_to_hdf5``): ``audio_name`` (S20, ``Y<id>.wav``), ``waveform`` (one
  fixed-length row per clip, int16 or float32), ``target`` (bool) and a ``sample_rate`` file attribute.

A manifest names such a clip by a locator in its ``path`` column, ``<file>#<row>#<audio_name>``: the file
relative to DATA_ROOT, the HDF5 row (from 0) and the name stored in that row, which the reader compares
before using the row, so a file rewritten in another order never feeds a clip another clip's audio.
mp3 is decoded by libsndfile (soundfile >= 0.12 with libsndfile >= 1.1 reads MPEG layer III).
"""

from __future__ import annotations

import io
import os
import re
import threading
from pathlib import Path

import numpy as np
import soundfile as sf

from .audio import FLOAT_PEAK_LIMIT, AudioError, to_mono_16k

HDF5_SUFFIXES = (".hdf", ".h5", ".hdf5")
LAYOUTS = {"mp3": ("audio_name", "mp3", "target"), "waveform": ("audio_name", "waveform", "target")}
_LOCATOR = re.compile(r"^(?P<file>.+\.(?:hdf|h5|hdf5))#(?P<row>\d+)#(?P<name>.+)$")


def row_locator(file: str, row: int, audio_name: str) -> str:
    return f"{file}#{row}#{audio_name}"


def parse_locator(path: str) -> tuple[str, int, str] | None:
    """(file, row, audio_name) of a clip stored in an HDF5 row; None for an ordinary audio file."""
    match = _LOCATOR.match(path)
    return (match["file"], int(match["row"]), match["name"]) if match else None


def layout_of(handle, source: str) -> str:
    """'mp3' or 'waveform' from the datasets present; AudioError naming what is missing otherwise."""
    for layout, names in LAYOUTS.items():
        if all(name in handle for name in names):
            return layout
    raise AudioError(
        f"{source}: neither AudioSet HDF5 layout (datasets audio_name + mp3 + target, or "
        f"audio_name + waveform + target); found {sorted(handle.keys())}"
    )


def decoded_name(raw) -> str:
    """A stored audio_name (fixed-width bytes, NUL-padded) as text."""
    if isinstance(raw, bytes | np.bytes_):
        return bytes(raw).rstrip(b"\0").decode("utf-8", errors="replace").strip()
    return str(raw).strip()


def _decode_mp3(data: np.ndarray, source: str) -> tuple[np.ndarray, int]:
    """Every sample; an mp3 cut short decodes without an error, so the frames its header declares (the
    Xing/LAME frame count the encoders write) are compared with the frames that decode, as for a WAV."""
    if data.size == 0:
        raise AudioError(f"{source}: empty mp3 (0 bytes)")
    try:
        with sf.SoundFile(io.BytesIO(data.tobytes())) as f:
            declared, sample_rate = f.frames, int(f.samplerate)
            samples = f.read(dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as error:
        raise AudioError(f"{source}: mp3 not decodable ({error})") from None
    if 0 < len(samples) < declared:
        raise AudioError(
            f"{source}: truncated: the mp3 header declares {declared} frames ({declared / sample_rate:.2f} "
            f"s), only {len(samples)} decode ({len(samples) / sample_rate:.2f} s)"
        )
    return samples, sample_rate


def waveform_rate(handle, source: str) -> int:
    rate = handle.attrs.get("sample_rate")
    if rate is None:
        raise AudioError(f"{source}: waveform file without a sample_rate attribute (PANNs writes one)")
    return int(np.asarray(rate).reshape(-1)[0])


def row_data(handle, layout: str, row: int) -> np.ndarray:
    """The row's stored audio as it is in the file: mp3 bytes or waveform samples."""
    return np.asarray(handle["mp3" if layout == "mp3" else "waveform"][row])


def samples_from(data: np.ndarray, layout: str, file_rate: int | None, source: str) -> tuple[np.ndarray, int]:
    """A row's samples as float32 [frames, channels] at their own rate, checked like a WAV's full check
    (NaN/inf, float samples far outside [-1, 1], empty). ``file_rate``: the waveform file's sample_rate."""
    if layout == "mp3":
        samples, sample_rate = _decode_mp3(data.astype(np.uint8, copy=False), source)
    else:
        sample_rate = int(file_rate or 0)
        if data.dtype == np.int16:  # the PCM convention of read_audio: int16 / 32768
            samples = (data.astype(np.float32) / 32768.0)[:, None]
        elif data.dtype.kind == "f":
            samples = data.astype(np.float32)[:, None]
        else:
            raise AudioError(f"{source}: waveform dtype {data.dtype} (expected int16 or float32)")
    if samples.size == 0:
        raise AudioError(f"{source}: empty audio (0 samples)")
    if not np.isfinite(samples).all():
        first = int(np.argmin(np.isfinite(samples).all(axis=1)))
        raise AudioError(f"{source}: NaN or infinite samples (first at {first / sample_rate:.2f} s)")
    peak = float(np.abs(samples).max())
    if peak > FLOAT_PEAK_LIMIT:
        raise AudioError(f"{source}: samples reach {peak:.4g}, far outside [-1, 1]")
    return samples, sample_rate


def header_of(data: np.ndarray, layout: str, file_rate: int | None, source: str) -> tuple[float, int, int]:
    """(duration_s, sample_rate, channels) without decoding (CHECK=header): the mp3 header, or the row length."""
    if layout == "waveform":
        if data.size == 0:
            raise AudioError(f"{source}: empty audio (0 samples)")
        if file_rate is None:  # waveform_rate() gives it for a waveform file
            raise AudioError(f"{source}: waveform file without a sample_rate attribute (PANNs writes one)")
        return data.shape[0] / file_rate, int(file_rate), 1
    if data.size == 0:
        raise AudioError(f"{source}: empty mp3 (0 bytes)")
    try:
        info = sf.info(io.BytesIO(data.astype(np.uint8, copy=False).tobytes()))
    except (sf.LibsndfileError, RuntimeError, TypeError) as error:
        raise AudioError(f"{source}: mp3 header not readable ({error})") from None
    return info.frames / info.samplerate, int(info.samplerate), int(info.channels)


class HDF5Rows:
    """Reads clips by locator; each process opens its own handles on first use (HDF5 handles must not
    cross a fork: a DataLoader or dask worker inherits the parent's, so they are dropped on a new pid and
    never pickled). Threads of one process share the handles: h5py serialises its calls."""

    def __init__(self, data_root: str | os.PathLike):
        self.data_root = Path(data_root)
        self._handles: dict[str, tuple[object, str]] = {}
        self._pid = os.getpid()
        self._lock = threading.Lock()  # stage one's decode threads open files through one reader

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_handles"], state["_lock"] = {}, None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _open(self, file: str):
        import h5py

        if self._pid != os.getpid():  # a fresh lock too: one held by another thread at the fork stays held
            self._handles, self._pid, self._lock = {}, os.getpid(), threading.Lock()
        with self._lock:
            if file not in self._handles:
                path = self.data_root / file
                if not path.is_file():
                    raise AudioError(f"{path}: file not found")
                handle = h5py.File(path, "r")
                self._handles[file] = (handle, layout_of(handle, str(path)))
            return self._handles[file]

    def read(self, locator: str) -> np.ndarray:
        """float32 mono 16 kHz samples of one row, as read_audio gives them for a file."""
        parsed = parse_locator(locator)
        if parsed is None:
            raise AudioError(f"{locator}: not an HDF5 row locator (<file>#<row>#<audio_name>)")
        file, row, name = parsed
        handle, layout = self._open(file)
        source = f"{self.data_root / file} row {row}"
        if row >= len(handle["audio_name"]):
            raise AudioError(f"{source}: the file has only {len(handle['audio_name'])} rows")
        stored = decoded_name(handle["audio_name"][row])
        if stored != name:
            raise AudioError(
                f"{source}: holds {stored!r}, the manifest expects {name!r} (was the file rewritten? "
                "rebuild the manifest)"
            )
        rate = waveform_rate(handle, source) if layout == "waveform" else None
        samples, sample_rate = samples_from(row_data(handle, layout, row), layout, rate, source)
        return to_mono_16k(samples, sample_rate, source=source)
