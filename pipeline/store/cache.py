"""The local logit cache: a store's arrays as .npy files that spawned DataLoader workers memory-map.

Safe to share between runs, never between users, and never trusted on its own word:

* the folder is keyed by the store digest (verified when the table was), the loaded clips and the
  array names, so a replaced store never lands in an old folder by accident;
* the default root is per user (``<tmp>/cmkd-logit-cache-<uid>``), created 0700 and refused when it
  is a symlink, another user's or readable by others, since a planted file would become KD targets;
* an existing file is used only when the sha256 of its data equals that of the arrays just read
  (and verified) from the store; otherwise it is rewritten.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from pathlib import Path

import numpy as np

from .format import StoreError

PRIVATE = 0o700


def default_cache_root() -> Path:
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    return Path(tempfile.gettempdir()) / f"cmkd-logit-cache-{uid}"


def private_dir(path: Path) -> Path:
    """Create `path` 0700 (or accept an existing one that is ours, a real directory, and private)."""
    path.mkdir(mode=PRIVATE, parents=True, exist_ok=True)
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise StoreError(f"logit cache {path} is not a plain directory (a symlink?); remove it or pass cache_dir")
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise StoreError(f"logit cache {path} belongs to uid {info.st_uid}, not you; remove it or pass cache_dir")
    if info.st_mode & 0o077:
        os.chmod(path, PRIVATE)  # ours but too open (an older version made it 0755): close it
    return path


def array_sha256(array: np.ndarray) -> str:
    digest = hashlib.sha256(f"{array.dtype.str}{list(array.shape)}".encode())
    digest.update(np.ascontiguousarray(array).data.cast("B"))  # .data: the array's buffer as a memoryview
    return digest.hexdigest()


def _file_sha256(path: Path) -> str | None:
    try:
        return array_sha256(np.load(path, mmap_mode="r", allow_pickle=False))
    except (OSError, ValueError):
        return None  # unreadable or not a .npy: rewritten


def _write_private(path: Path, array: np.ndarray) -> None:
    draft = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npy")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        np.save(handle, np.ascontiguousarray(array), allow_pickle=False)
    os.replace(draft, path)  # concurrent sharers race harmlessly: same bytes


def share_arrays(arrays: dict[str, np.ndarray], key: str, cache_dir: str | os.PathLike | None = None) -> dict[str, str]:
    """Write (or re-check) each array under <root>/<key>/<name>.npy; returns name -> file path."""
    root = Path(cache_dir) if cache_dir else default_cache_root()
    folder = private_dir(private_dir(root) / key)
    paths = {}
    for name, array in arrays.items():
        target = folder / f"{name}.npy"
        if not target.exists() or _file_sha256(target) != array_sha256(array):
            _write_private(target, array)
        paths[name] = str(target)
    return paths
