"""Joining a store's rows to another lab's clips: by clip_id, checked by audio fingerprint, or by content.

A store records the fingerprint of every clip's decoded audio (format 1.1), and so does a manifest.
By id (JOIN=id), a clip whose id is in the store but whose fingerprint differs is *not* joined:
the teacher heard other audio. By content (JOIN=fingerprint), a clip joins the store row with its
fingerprint whatever either lab named it, which is how renamed copies find their logits.
Replayed views name their mixup partner by the store's clip id; :func:`replay_partners` says
which partners the receiving manifest has (by the same rule) and how they are called there.
By recording (JOIN=recording), a clip joins the store row with its id whatever audio either side holds:
another lab's encoding of the same recording (AudioSet as mp3 in HDF5 against PANNs' 32 kHz waveforms)
never has the same samples, so the fingerprint can only say how many rows hold identical audio.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

JOINS = ("id", "fingerprint", "recording")


@dataclass
class ClipMatch:
    rows: np.ndarray  # store row per clip, -1 where none joins
    audio_differs: list[str] = field(default_factory=list)  # id in the store, other audio
    by_content: list[str] = field(default_factory=list)  # joined by fingerprint under another store id
    audio_checked: bool = True  # False: one side has no fingerprints, ids joined unchecked
    other_encoding: list[str] = field(default_factory=list)  # JOIN=recording: joined by id, fingerprints differ


def _same_audio(mine: str, theirs: str) -> bool:
    return not mine or not theirs or mine == theirs  # unknown on either side: nothing to compare


def match_clips(table, clip_ids: list[str], fingerprints: list[str], join: str = "id") -> ClipMatch:
    """Store rows for these clips (a LogitTable), following the JOIN rule above."""
    if join not in JOINS:
        raise ValueError(f"JOIN must be one of {JOINS}, got {join!r}")
    stored = table.fingerprints
    have_both = bool(stored) and any(stored) and any(fingerprints)
    if join == "fingerprint" and not have_both:
        raise ValueError(
            "JOIN=fingerprint needs audio fingerprints in the store (format 1.1, built from a "
            "fingerprinted manifest) and in this manifest (rebuild it with `make manifests`)"
        )
    rows = table.rows(clip_ids)
    match = ClipMatch(rows.copy(), audio_checked=have_both)
    if not have_both:
        return match
    by_print: dict[str, int] = {}
    for row, fingerprint in enumerate(stored):
        if fingerprint:
            by_print.setdefault(fingerprint, row)
    for i, (clip_id, fingerprint) in enumerate(zip(clip_ids, fingerprints)):
        row = int(rows[i])
        if row >= 0 and _same_audio(fingerprint, stored[row]):
            continue
        if join == "recording":
            if row >= 0:
                match.other_encoding.append(clip_id)
            continue
        if join == "fingerprint" and fingerprint in by_print:
            match.rows[i] = by_print[fingerprint]
            match.by_content.append(clip_id)
        elif row >= 0:
            match.rows[i] = -1
            match.audio_differs.append(clip_id)
    return match


def replay_partners(table, rows: np.ndarray, manifest_clips, join: str = "id") -> tuple[dict[str, str], np.ndarray]:
    """(store partner id -> this manifest's clip id, lost [len(rows), K] bool) for stored views.

    A view is lost when its partner is not in the manifest under the JOIN rule (absent, other audio,
    or with JOIN=fingerprint no clip of the same content); rows of -1 lose nothing (they have no KD).
    """
    names = table.partner_names
    by_id = {clip.clip_id: clip.fingerprint for clip in manifest_clips}
    by_print: dict[str, str] = {}
    for clip in manifest_clips:
        if clip.fingerprint:
            by_print.setdefault(clip.fingerprint, clip.clip_id)
    stored = table.fingerprints
    store_row_of = {clip_id: row for row, clip_id in enumerate(table.clip_ids)}  # the store's own names
    alias: dict[str, str] = {}
    usable = np.ones(len(names), dtype=bool)
    for code, name in enumerate(names):
        if not name:
            continue  # no mixup in this view
        store_row = store_row_of.get(name, -1)
        theirs = stored[store_row] if (stored and store_row >= 0) else ""
        if name in by_id and (join == "recording" or _same_audio(by_id[name], theirs)):
            alias[name] = name
        elif join == "fingerprint" and theirs in by_print:
            alias[name] = by_print[theirs]
        else:
            usable[code] = False
    codes = table.partner_codes(np.maximum(rows, 0))
    lost = ~usable[codes] & (np.asarray(rows) >= 0)[:, None]
    return alias, lost
