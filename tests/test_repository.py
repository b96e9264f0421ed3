"""The repository stands on its own: nothing points at files beside the checkout."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# spelled in pieces so this file does not match itself
FORBIDDEN = ("../" + "shared", "shared" + "/metadata", "CMKD" + "_NOTES")


GENERATED = {"data", "runs", "stores", "reports", "packed", "__pycache__"}
SUFFIXES = {".py", ".md", ".yaml", ".yml", ".txt", ".toml", ".cff", ".cfg", ""}


def tracked_text_files() -> list[Path]:
    """Files git would commit; outside a git checkout (an unpacked archive) every non-generated file."""
    try:
        names = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.split()
        files = [ROOT / n for n in names]
    except (OSError, subprocess.CalledProcessError):
        files = [f for f in ROOT.rglob("*") if not any(part.startswith(".") or part in GENERATED
                                                       for part in f.relative_to(ROOT).parts)]
    return [f for f in files if f.suffix in SUFFIXES and f.is_file()]


def test_no_file_points_outside_the_repository():
    files = tracked_text_files()
    assert any(f.name == "Makefile" for f in files) and any(f.name == "README.md" for f in files)
    offenders = [f"{f.relative_to(ROOT)}: {word}" for f in files for word in FORBIDDEN
                 if word in f.read_text(errors="replace")]
    assert offenders == []


def test_format_fixtures_are_in_the_repository():
    fixtures = ROOT / "tests" / "fixtures"
    for name in ("fsd50k/FSD50K.ground_truth/vocabulary.csv", "fsd50k/FSD50K.ground_truth/dev.csv",
                 "fsd50k/FSD50K.ground_truth/eval.csv", "esc50/meta/esc50.csv", "audioset/class_labels_indices.csv",
                 "audioset/balanced_train_segments.csv", "audioset/eval_segments.csv", "ast/audioset_eval_data.json"):
        assert (fixtures / name).is_file(), name
