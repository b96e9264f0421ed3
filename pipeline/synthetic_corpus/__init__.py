"""The embedded synthetic sound-event corpus, so the whole pipeline runs with no downloads.

``generate_corpus(out_dir)`` writes ``<out_dir>/demo`` in FSD50K's exact layout (multi-label clips)
and ``<out_dir>/demo-esc50`` in ESC-50's (one class per 5-s clip, 5 folds). Classes are synthesised
sound events: some defined by local time-frequency shape, others only by the temporal arrangement of
shared material (see :mod:`.classes`; two versions, :data:`DEFAULT_VERSION` unless asked). Output is
deterministic in (version, size, seed).
"""

from .build import (
    GENERATOR_VERSION,
    generate_corpus,
    generate_esc50_layout,
    generate_fsd50k_layout,
    is_current,
    read_stamp,
)
from .classes import (
    ALL_CLASSES,
    DEFAULT_VERSION,
    LOCAL,
    TEMPORAL,
    VERSIONS,
    CorpusVersion,
    SoundClass,
    class_by_label,
    class_groups,
    corpus_version,
)
from .clips import Clip, PlacedEvent, render_multilabel_clip, render_single_class_clip
from .events import synthesise_event

__all__ = [
    "ALL_CLASSES",
    "DEFAULT_VERSION",
    "GENERATOR_VERSION",
    "LOCAL",
    "TEMPORAL",
    "VERSIONS",
    "Clip",
    "CorpusVersion",
    "PlacedEvent",
    "SoundClass",
    "class_by_label",
    "class_groups",
    "corpus_version",
    "generate_corpus",
    "generate_esc50_layout",
    "generate_fsd50k_layout",
    "is_current",
    "read_stamp",
    "render_multilabel_clip",
    "render_single_class_clip",
    "synthesise_event",
]
