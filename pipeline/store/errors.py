"""The store's exceptions (below every other store module, so none imports another for them)."""


class StoreError(Exception):
    """A store is missing, malformed, incomplete or of an unreadable version."""


class StoreMismatch(StoreError):
    """An existing store was built from another teacher, manifest, front end, vocabulary or layout."""


class StoreLocked(StoreError):
    """Another writer holds the store's lock."""
