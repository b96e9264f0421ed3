"""The embedded synthetic sound-event corpus, so the whole pipeline runs with no downloads.

``generate_corpus(out_dir)`` writes ``<out_dir>/demo`` in FSD50K's exact layout (multi-label,
1-8 s clips) and ``<out_dir>/demo-esc50`` in ESC-50's (one class per 5-s clip, 5 folds). Classes
are synthesised sound events: some defined by local time-frequency shape, others only by temporal
arrangement of shared material (see :mod:`.classes`). Output is deterministic in (size, seed).
"""

from .build import (GENERATOR_VERSION, generate_corpus, generate_esc50_layout, generate_fsd50k_layout, is_current,
                    read_stamp)
from .classes import CLASSES, ESC_CLASSES, LOCAL, TEMPORAL, VOCABULARY, SoundClass, class_by_label, class_groups
from .clips import Clip, PlacedEvent, render_multilabel_clip, render_single_class_clip
from .events import synthesise_event

__all__ = ["CLASSES", "ESC_CLASSES", "GENERATOR_VERSION", "LOCAL", "TEMPORAL", "VOCABULARY", "Clip", "PlacedEvent",
           "SoundClass", "class_by_label", "class_groups", "generate_corpus", "generate_esc50_layout", "generate_fsd50k_layout",
           "is_current", "read_stamp", "render_multilabel_clip", "render_single_class_clip", "synthesise_event"]
