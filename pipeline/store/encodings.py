"""Format 1.3: copies of the string arrays that readers other than zarr-python can use.

Zarr v3's core data types are numbers, booleans and raw bits; variable-length strings (``string``)
are a zarr-python extension that TensorStore's zarr3 driver (0.1.86) refuses ("string data type is
not one of the supported data types"), and so do zarr-python's fixed-width ``null_terminated_bytes``
and ``fixed_length_utf32`` (checked in tests/store/test_other_readers.py). So every string array a reader
needs keeps its zarr string array and gains a **uint8** twin, ``<name>_utf8``: each value's UTF-8
bytes, zero-padded to the longest value (one extra trailing axis ``<width>_byte``). Every zarr v3
implementation reads it; ``bytes(row).rstrip(b"\\0").decode()`` gives the string back.

xarray (whose zarr v3 backend takes dimensions from ``dimension_names`` and makes an array whose
name equals its dimension an index) gets two index coordinates: ``clip`` (the clip ids, a copy of
``clip_id``) and ``class`` (the vocabulary mids), plus ``class_name``. With them
``ds.logits.sel({"clip": "1314", "class": "/m/0bt9lr"})`` works.

Every array here is derived: the writer fills it from its source, never a caller. The chunk
checksum covers the per-clip ones and the store digest the class ones, and verify checks that each
decodes to its source, so a TensorStore reader sees the same ids as the project's reader.
"""

from __future__ import annotations

import numpy as np

from .format import ARRAY

# per-clip twins written at creation: name -> (source array, width key)
CLIP_TWINS = {
    ARRAY.clip_id_utf8: (ARRAY.clip_id, ARRAY.clip_id),
    ARRAY.split_utf8: (ARRAY.split, ARRAY.split),
    ARRAY.fingerprint_utf8: (ARRAY.fingerprint, ARRAY.fingerprint),
}


def utf8_width(values) -> int:
    """Bytes of the longest value (at least 1, so an all-empty column still has an axis)."""
    return max([1, *(len(str(v).encode("utf-8")) for v in values)])


def check_encodable(values, what: str) -> None:
    """NUL pads the fixed-width copy, so a value holding one could not be told apart from padding."""
    for row, value in enumerate(values):
        if "\x00" in str(value):
            raise ValueError(
                f"{what}[{row}] {str(value)!r} holds a NUL character, which the store's "
                "fixed-width UTF-8 copy uses as padding"
            )


def encode_utf8(values, width: int, what: str = "value") -> np.ndarray:
    """[..., width] uint8: each string's UTF-8 bytes, zero-padded; ValueError when one is too long."""
    array = np.asarray(values, dtype=object)
    flat = array.ravel()
    out = np.zeros((flat.size, width), dtype=np.uint8)
    for i, value in enumerate(flat):
        data = str(value).encode("utf-8")
        if len(data) > width or b"\x00" in data:
            raise ValueError(
                f"{what} {str(value)!r} does not fit the store's {width}-byte UTF-8 column "
                "(longer than every clip id of the store, or holds a NUL)"
            )
        out[i, : len(data)] = np.frombuffer(data, dtype=np.uint8)
    return out.reshape(*array.shape, width)


def decode_utf8(array: np.ndarray) -> np.ndarray:
    """The strings back from [..., width] uint8 (object array of str, shape without the last axis)."""
    array = np.asarray(array, dtype=np.uint8)
    flat = array.reshape(-1, array.shape[-1])
    out = np.array([bytes(row).rstrip(b"\x00").decode("utf-8", errors="replace") for row in flat], dtype=object)
    return out.reshape(array.shape[:-1])


def text_widths(clip_ids, splits, fingerprints, mids, names, min_id_bytes: int = 0) -> dict[str, int]:
    """The fixed widths of a new 1.3 store (recorded in ``layout.text_bytes``)."""
    for what, values in (
        ("clip_ids", clip_ids),
        ("splits", splits),
        ("vocabulary_mids", mids),
        ("vocabulary_names", names),
    ):
        check_encodable(values, what)
    return {
        ARRAY.clip_id: max(utf8_width(clip_ids), int(min_id_bytes)),
        ARRAY.split: utf8_width(splits),
        ARRAY.fingerprint: utf8_width(fingerprints),
        ARRAY.class_: utf8_width(mids),
        ARRAY.class_name: utf8_width(names),
    }


def clip_columns(columns: dict[str, np.ndarray], widths: dict[str, int]) -> dict[str, np.ndarray]:
    """The derived per-clip arrays for rows of the manifest columns (clip_id, split, fingerprint)."""
    out = {ARRAY.clip: np.asarray(columns[ARRAY.clip_id]).astype(str)}
    for name, (source, key) in CLIP_TWINS.items():
        out[name] = encode_utf8(columns[source], widths[key], source)
    return out


def class_columns(mids, names, widths: dict[str, int]) -> dict[str, np.ndarray]:
    return {
        ARRAY.class_: np.array(list(mids), dtype=str),
        ARRAY.class_name: np.array(list(names), dtype=str),
        ARRAY.class_utf8: encode_utf8(list(mids), widths[ARRAY.class_], "mid"),
        ARRAY.class_name_utf8: encode_utf8(list(names), widths[ARRAY.class_name], "class name"),
    }


def twin_problems(arrays: dict[str, np.ndarray], label: str) -> list[str]:
    """Derived per-clip arrays that do not spell their source (rows of one chunk, as read)."""
    problems = []
    if ARRAY.clip in arrays and ARRAY.clip_id in arrays:
        if [str(c) for c in arrays[ARRAY.clip]] != [str(c) for c in arrays[ARRAY.clip_id]]:
            problems.append(f"{label}: array 'clip' differs from clip_id")
    pairs = [(name, source) for name, (source, _) in CLIP_TWINS.items()]
    pairs.append((ARRAY.view_partner_utf8, ARRAY.view_partner))
    for name, source in pairs:
        if name in arrays and source in arrays:
            decoded = decode_utf8(arrays[name])
            if decoded.shape != np.shape(arrays[source]) or [str(v) for v in decoded.ravel()] != [
                str(v) for v in np.asarray(arrays[source]).ravel()
            ]:
                problems.append(f"{label}: {name} does not spell {source} (what TensorStore readers see differs)")
    return problems
