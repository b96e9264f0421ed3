"""AUDIO= as a list of recordings: one file, a folder (searched recursively) or a manifest.

Each recording gets an ``id`` (a string: a manifest's clip_id, a folder's relative path, a file's
name) and the ``path`` it is read from. A folder keeps the files whose extension libsndfile reads
(wav, flac, ogg, mp3, aiff, ...); anything else there (notes, images) is not audio and is skipped,
while a file with an audio extension that fails to decode is reported as a failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import soundfile as sf


@dataclass(frozen=True)
class Recording:
    id: str
    path: str


def audio_extensions() -> set[str]:
    """Lower-case extensions of the formats this libsndfile build reads (plus their common aliases)."""
    extensions = {name.lower() for name in sf.available_formats()}
    aliases = {"aiff": {"aif", "aifc"}, "ogg": {"oga", "opus"}, "mpeg": {"mp3"}, "wav": {"wave"}}
    for name, more in aliases.items():
        if name in extensions:
            extensions |= more
    return extensions


def _is_manifest(path: Path) -> bool:
    return (path.is_dir() and (path / "clips.csv").is_file()) or (path.is_file() and path.name == "clips.csv")


def list_recordings(audio: str | Path) -> list[Recording]:
    path = Path(audio)
    if not path.exists():
        raise FileNotFoundError(f"{path}: AUDIO not found (a file, a folder or a manifest)")
    if _is_manifest(path):
        from ..manifests import load_manifest

        manifest = load_manifest(path if path.is_dir() else path.parent)
        root = Path(manifest.data_root)
        return [Recording(str(clip.clip_id), str(root / clip.path)) for clip in manifest.clips]
    if path.is_file():
        return [Recording(path.name, str(path))]
    extensions = audio_extensions()
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower().lstrip(".") in extensions)
    if not files:
        raise FileNotFoundError(
            f"{path}: no audio files in this folder or below (extensions read: {', '.join(sorted(extensions))})"
        )
    return [Recording(p.relative_to(path).as_posix(), str(p)) for p in files]
