"""How one vocabulary maps onto another by class id (mid): a teacher's or a checkpoint's outputs onto a
dataset's classes. Stage one, stage two and evaluation all pair vocabularies through this one rule."""

from __future__ import annotations

import numpy as np

from .records import Manifest


class VocabularyMismatch(ValueError):
    """Two vocabularies that cannot be paired; the message names both."""


def class_map_for(teacher_mids: list[str], manifest: Manifest, remap: bool, source: str) -> np.ndarray | None:
    """None when the vocabularies are identical; else teacher index per manifest class (remap=True)."""
    if list(teacher_mids) == manifest.mids:
        return None
    if len(set(teacher_mids)) != len(teacher_mids):
        repeated = next(mid for mid in teacher_mids if list(teacher_mids).count(mid) > 1)
        raise VocabularyMismatch(
            f"{source}: the teacher's vocabulary lists {repeated!r} "
            f"{list(teacher_mids).count(repeated)} times; it cannot be mapped to {manifest.name}'s"
        )
    position = {mid: i for i, mid in enumerate(teacher_mids)}
    absent = [mid for mid in manifest.mids if mid not in position]
    same_set = not absent and len(teacher_mids) == len(manifest.mids)
    what = "the same classes in another order" if same_set else f"{len(absent)} of the manifest's classes absent"
    if not remap or absent:
        raise VocabularyMismatch(
            f"{source}: the teacher's vocabulary ({len(teacher_mids)} classes, e.g. {list(teacher_mids)[:3]}) differs "
            f"from {manifest.name}'s ({len(manifest.mids)} classes): {what}"
            + (f", e.g. {absent[:5]}" if absent else "")
            + ("" if absent else "; pass vocab_remap=true to map classes by mid")
        )
    return np.array([position[mid] for mid in manifest.mids])
