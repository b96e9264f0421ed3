"""A store location pinned: bytes that cannot change between verification and training.

Above :mod:`.remote` (the transport) and :mod:`.verify` (the checks), so neither needs the other.
"""

from __future__ import annotations

from .errors import StoreError
from .location import is_remote
from .remote import copy_folder, local_copy
from .verify import check_store


def open_pinned(location, expected_digest: str | None = None) -> str:
    """This location as bytes that cannot change between verification and training.

    A remote store is downloaded once into the cache (:func:`local_copy`) and everything reads that
    copy, so a server or CDN that later serves other bytes cannot reach the run; a local store is
    returned as is. With `expected_digest`, the copy is verified in full (every chunk re-hashed)
    against it first, and StoreError says why it is not the published store; a copy already in the
    cache that verifies against it is used without downloading again.
    """
    if not is_remote(location):
        path = str(location)
    else:
        name = str(location).rstrip("/").rsplit("/", 1)[-1] or "store.zarr"
        earlier = copy_folder(str(location)) / name
        if expected_digest and earlier.exists() and check_store(earlier, expected_digest).ok:
            return str(earlier)  # a copy made before that still is the published store: no second download
        path = str(local_copy(str(location), f"note: {location}: reading a local copy, {{folder}}"))
    if expected_digest:
        result = check_store(path, expected_digest)
        if not result.ok:
            more = f" (and {len(result.problems) - 1} more)" if len(result.problems) > 1 else ""
            raise StoreError(f"{location}: {result.problems[0]}{more}")
    return str(path)
