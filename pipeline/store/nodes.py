"""Typed access to what a store holds: its arrays by name and the object-valued sections of its attrs.

zarr types ``group[name]`` as an array or a group, and attrs as any JSON value; a store received
from another lab may hold either where ours holds an array or an object. These accessors give the
rest of the package the type it expects, or a one-line :class:`StoreError` naming the store.
A missing array still raises zarr's ``KeyError`` (callers that allow one test ``name in group``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import zarr
from zarr.core.metadata import ArrayV3Metadata
from zarr.storage import FsspecStore, LocalStore, WrapperStore, ZipStore

from .errors import StoreError


def store_label(group: zarr.Group) -> str:
    """Where a group's store lives, for an error message: a folder, a zip file or a remote path."""
    store = group.store
    while isinstance(store, WrapperStore):  # the retrying remote store wraps zarr's FsspecStore
        store = store._store  # zarr documents the wrapped store as `_store`
    if isinstance(store, LocalStore):
        return str(store.root)
    if isinstance(store, ZipStore):
        return str(store.path)
    if isinstance(store, FsspecStore):
        return store.path
    return str(store)


def array_at(group: zarr.Group, name: str) -> zarr.Array:
    """The array `name` of a store (a name from ``format.ARRAY``); a group in its place is a malformed store."""
    node = group[name]
    if not isinstance(node, zarr.Array):
        raise StoreError(f"{store_label(group)}: {name} is not an array")
    return node


def dimension_names(array: zarr.Array) -> tuple[str | None, ...]:
    """An array's dimension names, () when it records none (as every zarr v2 array, which has no field for them)."""
    metadata = array.metadata
    return tuple(metadata.dimension_names or ()) if isinstance(metadata, ArrayV3Metadata) else ()


def attrs_section(attrs: Mapping[str, Any], key: str, where: object) -> dict[str, Any]:
    """The JSON object under attrs `key` ({} when absent or null); anything else is a malformed store."""
    section = attrs.get(key)
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise StoreError(f"{where}: attrs {key} is a {type(section).__name__}, expected an object")
    return section


def attrs_text(attrs: Mapping[str, Any], key: str, where: object) -> str:
    """The string under attrs `key` (a missing key stays zarr's KeyError); another JSON type is a malformed store."""
    value = attrs[key]
    if not isinstance(value, str):
        raise StoreError(f"{where}: attrs {key} is a {type(value).__name__}, expected a string")
    return value
