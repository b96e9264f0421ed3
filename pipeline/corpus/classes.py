"""The class vocabulary of the embedded corpus.

Labels are FSD50K-style (capitalised, underscores); mids are invented under ``/x/demo_`` so they can
never collide with real AudioSet/FSD50K mids. "local" classes are defined by a time-frequency shape a
few hundred milliseconds wide (a CNN's home ground); "temporal" classes share their material with
other classes and differ only in its arrangement over 0.5-4 s (where global attention should help).
A "mirror" is the class built from the same samples in a different order (see :mod:`.patterns`).

=====================  ========  ===================================================  ==================
label                  kind      what it is                                           mirror
=====================  ========  ===================================================  ==================
Steady_tone            local     constant pitch, 1-3 weak partials, 0.4-2.5 s
Harmonic_stack         local     4-10 partials over a 90-600 Hz fundamental
Hollow_buzz            local     odd partials only (square-ish buzz)
Up_chirp               local     log sweep up by 1.5-5x in 0.2-1.5 s
Down_chirp             local     log sweep down by 1.5-5x in 0.2-1.5 s
FM_warble              local     3-12 Hz vibrato of 3-15 % depth
Tremolo_tone           local     10-25 Hz amplitude flutter
Noise_burst            local     0.3-1.5 octave noise band, 0.15-2 s
Whoosh                 local     noise band gliding up or down
Click_buzz             local     regular 25-120 Hz click train
Crackle                local     irregular Poisson clicks
Percussive_hit         local     decaying noise band plus low body partial
Slow_beeps             temporal  one blip repeated every 0.33-0.7 s
Fast_beeps             temporal  the same blip repeated every 0.12-0.24 s
Galloping_beeps        temporal  blips in threes: short, short, long gaps
Accelerating_beeps     temporal  gaps shrink from ~0.4 s to ~0.11 s                   Decelerating_beeps
Decelerating_beeps     temporal  gaps grow from ~0.11 s to ~0.4 s                     Accelerating_beeps
Echoing_beeps          temporal  constant-rate blips whose level decays
Low_then_high          temporal  two tone segments, lower one first                   High_then_low
High_then_low          temporal  two tone segments, higher one first                  Low_then_high
Long_short             temporal  long then short segment of one material              Short_long
Short_long             temporal  short then long segment of one material              Long_short
Swelling_tone          temporal  steady tone rising 15-35 dB over 1.5-4 s             Fading_tone
Fading_tone            temporal  steady tone falling 15-35 dB over 1.5-4 s            Swelling_tone
=====================  ========  ===================================================  ==================

The ESC-50-style corpus uses the 16-class subset :data:`ESC_CLASSES` (both members of every pair it
contains), one class per clip.
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


# Listed by kind for reading; the on-disk vocabulary is sorted by label, as FSD50K's is.
CLASSES: tuple[SoundClass, ...] = (
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
    SoundClass("Slow_beeps", TEMPORAL),
    SoundClass("Fast_beeps", TEMPORAL),
    SoundClass("Galloping_beeps", TEMPORAL),
    SoundClass("Accelerating_beeps", TEMPORAL, mirror="Decelerating_beeps"),
    SoundClass("Decelerating_beeps", TEMPORAL, mirror="Accelerating_beeps"),
    SoundClass("Echoing_beeps", TEMPORAL),
    SoundClass("Low_then_high", TEMPORAL, mirror="High_then_low"),
    SoundClass("High_then_low", TEMPORAL, mirror="Low_then_high"),
    SoundClass("Long_short", TEMPORAL, mirror="Short_long"),
    SoundClass("Short_long", TEMPORAL, mirror="Long_short"),
    SoundClass("Swelling_tone", TEMPORAL, mirror="Fading_tone"),
    SoundClass("Fading_tone", TEMPORAL, mirror="Swelling_tone"),
)

VOCABULARY: tuple[SoundClass, ...] = tuple(sorted(CLASSES, key=lambda c: c.label))

# 8 local + 8 temporal, every mirrored pair kept whole so fold accuracy still tests arrangement
ESC_LABELS: tuple[str, ...] = (
    "Steady_tone", "Harmonic_stack", "Up_chirp", "Down_chirp",
    "Noise_burst", "FM_warble", "Click_buzz", "Percussive_hit",
    "Slow_beeps", "Fast_beeps", "Accelerating_beeps", "Decelerating_beeps",
    "Low_then_high", "High_then_low", "Long_short", "Short_long",
)
# ESC-50 flags a 10-class subset (ESC-10); here a 4-class stand-in, two local and one mirrored pair
ESC10_LABELS: frozenset[str] = frozenset({"Steady_tone", "Percussive_hit", "Low_then_high", "High_then_low"})


def class_by_label(label: str) -> SoundClass:
    for sound_class in CLASSES:
        if sound_class.label == label:
            return sound_class
    raise KeyError(f"unknown corpus class {label!r}")


ESC_CLASSES: tuple[SoundClass, ...] = tuple(class_by_label(label) for label in ESC_LABELS)


def class_groups(mids: list[str]) -> dict[str, list[int]]:
    """{kind: vocabulary indices} for a vocabulary made of this corpus's classes ("local", "temporal");
    {} for any other vocabulary (a real dataset), where per-group results do not apply."""
    kind_of = {c.mid: c.kind for c in CLASSES}
    if not mids or any(mid not in kind_of for mid in mids):
        return {}
    groups: dict[str, list[int]] = {}
    for index, mid in enumerate(mids):
        groups.setdefault(kind_of[mid], []).append(index)
    return groups
