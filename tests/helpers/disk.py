"""A disk that really fills up (the `small_disk` fixture in tests/conftest.py mounts one)."""

from __future__ import annotations

import errno
import os
from pathlib import Path


def fill(disk: Path, leave: int = 0) -> Path:
    """Write a filler file until the disk is full (or only `leave` bytes are left)."""
    filler = disk / "filler"
    with open(filler, "wb") as handle:
        while True:
            free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
            if free <= leave:
                break
            try:
                handle.write(b"\0" * min(1 << 16, max(free - leave, 512)))
                handle.flush()
            except OSError as error:
                assert error.errno == errno.ENOSPC
                break
    return filler
