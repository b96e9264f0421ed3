"""The class vocabularies of the embedded corpus, version by version.

Labels are FSD50K-style (capitalised, underscores); mids are invented under ``/x/demo_`` so they can
never collide with real AudioSet/FSD50K mids. "local" classes are defined by a time-frequency shape a
few hundred milliseconds wide that can occur anywhere (a CNN's home ground); "temporal" classes are
defined by how sounds are arranged in time. A "mirror" is the class built from the same samples in
another order. All versions share the twelve local classes; they differ in their temporal classes.

Version 1 (:mod:`.patterns`): the arrangement spans 0.1-4 s but can be read inside windows of under
a second (beep rates, gap trends, adjacent pairs, level slopes), so a small CNN sees it too.
Version 2 (:mod:`.relations`, the default): two or three short sounds 0.8-2.4 s apart, and only
their order tells a class from its mirror (why: :mod:`.relations`); 8 such classes beside the 12
local ones. Version 3: version 2's relations plus two pairs that differ in level and in timbre, so
the temporal group has 12 classes too. It was built to weigh the two groups equally in a mean over
classes and measured worse on the corpus's design check (docs/corpus.md), so it is not the default;
it stays reachable so that figure can be reproduced.

=====================  ========  ===  ===================================================  ==================
label                  kind      v    what it is                                           mirror
=====================  ========  ===  ===================================================  ==================
Steady_tone            local     123  constant pitch, 1-3 weak partials, 0.4-2.5 s
Harmonic_stack         local     123  4-10 partials over a 90-600 Hz fundamental
Hollow_buzz            local     123  odd partials only (square-ish buzz)
Up_chirp               local     123  log sweep up by 1.5-5x in 0.2-1.5 s
Down_chirp             local     123  log sweep down by 1.5-5x in 0.2-1.5 s
FM_warble              local     123  3-12 Hz vibrato of 3-15 % depth
Tremolo_tone           local     123  10-25 Hz amplitude flutter
Noise_burst            local     123  0.3-1.5 octave noise band, 0.15-2 s
Whoosh                 local     123  noise band gliding up or down
Click_buzz             local     123  regular 25-120 Hz click train
Crackle                local     123  irregular Poisson clicks
Percussive_hit         local     123  decaying noise band plus low body partial
Slow_beeps             temporal  1    one blip repeated every 0.33-0.7 s
Fast_beeps             temporal  1    the same blip repeated every 0.12-0.24 s
Galloping_beeps        temporal  1    blips in threes: short, short, long gaps
Accelerating_beeps     temporal  1    gaps shrink from ~0.4 s to ~0.11 s                   Decelerating_beeps
Decelerating_beeps     temporal  1    gaps grow from ~0.11 s to ~0.4 s                     Accelerating_beeps
Echoing_beeps          temporal  1    constant-rate blips whose level decays
Low_then_high          temporal  1    two tone segments, lower one first                   High_then_low
High_then_low          temporal  1    two tone segments, higher one first                  Low_then_high
Long_short             temporal  1    long then short segment of one material              Short_long
Short_long             temporal  1    short then long segment of one material              Long_short
Swelling_tone          temporal  1    steady tone rising 15-35 dB over 1.5-4 s             Fading_tone
Fading_tone            temporal  1    steady tone falling 15-35 dB over 1.5-4 s            Swelling_tone
Low_before_high        temporal  23   a low and a high tone 1.5-2.4 s apart, low first     High_before_low
High_before_low        temporal  23   the same two tones, the higher first                 Low_before_high
Long_before_short      temporal  23   a long and a short sound of one material, long first Short_before_long
Short_before_long      temporal  23   the same two sounds, short first                     Long_before_short
Noise_before_tone      temporal  23   a noise band, 1.5-2.4 s later a tone                 Tone_before_noise
Tone_before_noise      temporal  23   the same tone, later the same noise band             Noise_before_tone
Rising_steps           temporal  23   low, middle, high tone, 0.8-1.1 s apart              Falling_steps
Falling_steps          temporal  23   the same three tones, high first                     Rising_steps
Loud_before_soft       temporal  3    a tone, 1.5-2.4 s later the same 8-14 dB softer      Soft_before_loud
Soft_before_loud       temporal  3    the same two tones, the softer first                 Loud_before_soft
Bright_before_dark     temporal  3    one pitch rich in partials, later as a pure sine     Dark_before_bright
Dark_before_bright     temporal  3    the same two tones, the pure one first               Bright_before_dark
=====================  ========  ===  ===================================================  ==================

The ESC-50-style corpus of each version uses a 16-class subset (8 local, 8 temporal with both
members of every pair), one class per clip.
"""

from __future__ import annotations

from dataclasses import dataclass

LOCAL = "local"
TEMPORAL = "temporal"


@dataclass(frozen=True)
class SoundClass:
    label: str  # FSD50K-style display name, also the ESC-50 category once lower-cased
    kind: str  # LOCAL or TEMPORAL
    mirror: str = ""  # the class made of the same samples in another order, if any

    @property
    def mid(self) -> str:
        return "/x/demo_" + self.label.lower()

    @property
    def category(self) -> str:
        """ESC-50 spells categories in lower case (``chirping_birds``)."""
        return self.label.lower()


LOCAL_CLASSES: tuple[SoundClass, ...] = (
    SoundClass("Steady_tone", LOCAL),
    SoundClass("Harmonic_stack", LOCAL),
    SoundClass("Hollow_buzz", LOCAL),
    SoundClass("Up_chirp", LOCAL),
    SoundClass("Down_chirp", LOCAL),
    SoundClass("FM_warble", LOCAL),
    SoundClass("Tremolo_tone", LOCAL),
    SoundClass("Noise_burst", LOCAL),
    SoundClass("Whoosh", LOCAL),
    SoundClass("Click_buzz", LOCAL),
    SoundClass("Crackle", LOCAL),
    SoundClass("Percussive_hit", LOCAL),
)


def _mirrored(first: str, second: str) -> tuple[SoundClass, SoundClass]:
    return SoundClass(first, TEMPORAL, mirror=second), SoundClass(second, TEMPORAL, mirror=first)


PATTERN_CLASSES: tuple[SoundClass, ...] = (  # version 1
    SoundClass("Slow_beeps", TEMPORAL),
    SoundClass("Fast_beeps", TEMPORAL),
    SoundClass("Galloping_beeps", TEMPORAL),
    *_mirrored("Accelerating_beeps", "Decelerating_beeps"),
    SoundClass("Echoing_beeps", TEMPORAL),
    *_mirrored("Low_then_high", "High_then_low"),
    *_mirrored("Long_short", "Short_long"),
    *_mirrored("Swelling_tone", "Fading_tone"),
)

RELATION_CLASSES: tuple[SoundClass, ...] = (  # version 2
    *_mirrored("Low_before_high", "High_before_low"),
    *_mirrored("Long_before_short", "Short_before_long"),
    *_mirrored("Noise_before_tone", "Tone_before_noise"),
    *_mirrored("Rising_steps", "Falling_steps"),
)

LEVEL_AND_TIMBRE_CLASSES: tuple[SoundClass, ...] = (  # version 3, beside version 2's relations
    *_mirrored("Loud_before_soft", "Soft_before_loud"),
    *_mirrored("Bright_before_dark", "Dark_before_bright"),
)

ALL_CLASSES: tuple[SoundClass, ...] = LOCAL_CLASSES + PATTERN_CLASSES + RELATION_CLASSES + LEVEL_AND_TIMBRE_CLASSES
_LOCAL_ESC = (
    "Steady_tone",
    "Harmonic_stack",
    "Up_chirp",
    "Down_chirp",
    "Noise_burst",
    "FM_warble",
    "Click_buzz",
    "Percussive_hit",
)


@dataclass(frozen=True)
class CorpusVersion:
    """What one version of the corpus is made of: its classes and how long its clips are."""

    number: int
    classes: tuple[SoundClass, ...]  # listed by kind for reading
    esc_labels: tuple[str, ...]  # 8 local + 8 temporal, mirrored pairs kept whole
    esc10_labels: frozenset[str]  # ESC-50's ESC-10 flag: here a 4-class stand-in
    clip_seconds: tuple[float, float]  # multi-label clip length range, stretched to fit its events
    relation_margin_s: float = 0.0  # silence kept between a temporal event and either clip edge
    relation_jitter_s: float | None = None  # None: anywhere; else centred in the clip, +- this much

    @property
    def vocabulary(self) -> tuple[SoundClass, ...]:
        """The on-disk vocabulary, sorted by label as FSD50K's is."""
        return tuple(sorted(self.classes, key=lambda c: c.label))

    @property
    def esc_classes(self) -> tuple[SoundClass, ...]:
        return tuple(class_by_label(label) for label in self.esc_labels)


def class_by_label(label: str) -> SoundClass:
    for sound_class in ALL_CLASSES:
        if sound_class.label == label:
            return sound_class
    raise KeyError(f"unknown corpus class {label!r}")


def class_groups(mids: list[str]) -> dict[str, list[int]]:
    """{kind: vocabulary indices} for a vocabulary made of this corpus's classes ("local", "temporal");
    {} for any other vocabulary (a real dataset), where per-group results do not apply."""
    kind_of = {c.mid: c.kind for c in ALL_CLASSES}
    if not mids or any(mid not in kind_of for mid in mids):
        return {}
    groups: dict[str, list[int]] = {}
    for index, mid in enumerate(mids):
        groups.setdefault(kind_of[mid], []).append(index)
    return groups


VERSIONS: dict[int, CorpusVersion] = {
    1: CorpusVersion(
        1,
        LOCAL_CLASSES + PATTERN_CLASSES,
        esc_labels=_LOCAL_ESC
        + (
            "Slow_beeps",
            "Fast_beeps",
            "Accelerating_beeps",
            "Decelerating_beeps",
            "Low_then_high",
            "High_then_low",
            "Long_short",
            "Short_long",
        ),
        esc10_labels=frozenset({"Steady_tone", "Percussive_hit", "Low_then_high", "High_then_low"}),
        clip_seconds=(1.0, 8.0),
    ),
    # 4-6 s clips: the longest relation (3.6 s) fits with both margins, and the demo's input shrinks
    # from 8 s to 6 s (a quarter less compute per step than version 1)
    2: CorpusVersion(
        2,
        LOCAL_CLASSES + RELATION_CLASSES,
        esc_labels=_LOCAL_ESC + tuple(c.label for c in RELATION_CLASSES),
        esc10_labels=frozenset({"Steady_tone", "Percussive_hit", "Low_before_high", "High_before_low"}),
        clip_seconds=(4.0, 6.0),
        relation_margin_s=0.7,
        relation_jitter_s=0.3,
    ),
    # version 2 with 12 temporal classes against 12 local ones (tried; not the default: docs/corpus.md);
    # its ESC-50 subset is version 2's
    3: CorpusVersion(
        3,
        LOCAL_CLASSES + RELATION_CLASSES + LEVEL_AND_TIMBRE_CLASSES,
        esc_labels=_LOCAL_ESC + tuple(c.label for c in RELATION_CLASSES),
        esc10_labels=frozenset({"Steady_tone", "Percussive_hit", "Low_before_high", "High_before_low"}),
        clip_seconds=(4.0, 6.0),
        relation_margin_s=0.7,
        relation_jitter_s=0.3,
    ),
}
DEFAULT_VERSION = 2


def corpus_version(number: int) -> CorpusVersion:
    try:
        return VERSIONS[int(number)]
    except (KeyError, ValueError, TypeError):
        raise ValueError(f"corpus version must be one of {sorted(VERSIONS)}, got {number!r}") from None
