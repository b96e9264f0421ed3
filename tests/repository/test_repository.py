"""The repository stands on its own (nothing points at files beside the checkout) and says what it holds."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.helpers import REPO_ROOT

# spelled in pieces so this file does not match itself
FORBIDDEN = ("../" + "shared", "shared" + "/metadata", "CMKD" + "_NOTES")
GENERATED = {"data", "runs", "stores", "reports", "packed", "__pycache__"}
SUFFIXES = {".py", ".md", ".yaml", ".yml", ".txt", ".toml", ".cff", ".cfg", ""}


def shipped_files() -> list[Path]:
    """Files git would commit; outside a git checkout (an unpacked archive) every non-generated file."""
    try:
        names = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        files = [REPO_ROOT / n for n in names]
    except (OSError, subprocess.CalledProcessError):
        files = [
            f
            for f in REPO_ROOT.rglob("*")
            if not any(part.startswith(".") or part in GENERATED for part in f.relative_to(REPO_ROOT).parts)
        ]
    return [f for f in files if f.is_file()]


def tracked_text_files() -> list[Path]:
    return [f for f in shipped_files() if f.suffix in SUFFIXES]


def test_no_file_points_outside_the_repository():
    files = tracked_text_files()
    assert any(f.name == "Makefile" for f in files) and any(f.name == "README.md" for f in files)
    offenders = [
        f"{f.relative_to(REPO_ROOT)}: {word}"
        for f in files
        for word in FORBIDDEN
        if word in f.read_text(errors="replace")
    ]
    assert offenders == []


def test_format_fixtures_are_in_the_repository():
    fixtures = REPO_ROOT / "tests" / "fixtures"
    for name in (
        "fsd50k/FSD50K.ground_truth/vocabulary.csv",
        "fsd50k/FSD50K.ground_truth/dev.csv",
        "fsd50k/FSD50K.ground_truth/eval.csv",
        "esc50/meta/esc50.csv",
        "audioset/class_labels_indices.csv",
        "audioset/balanced_train_segments.csv",
        "audioset/eval_segments.csv",
        "ast/audioset_eval_data.json",
    ):
        assert (fixtures / name).is_file(), name


def layout_entries() -> dict[str, str]:
    """{'pipeline/audio.py': 'decoding ...', 'stages/': ...} from the README's Layout code block."""
    readme = (REPO_ROOT / "README.md").read_text()
    block = readme.split("## Layout", 1)[1].split("```", 2)[1]
    entries, parent = {}, ""
    for line in block.strip("\n").splitlines():
        name, description = line.split(None, 1)
        if line.startswith("  "):
            entries[parent + name] = description
        else:
            parent = name if name.endswith("/") else ""
            entries[name] = description
    return entries


def test_readme_layout_matches_the_tree():
    entries = layout_entries()
    assert [name for name in entries if not (REPO_ROOT / name).exists()] == []
    shipped = {str(f.relative_to(REPO_ROOT)) for f in shipped_files()}
    top_level = {name.split("/")[0] + ("/" if "/" in name else "") for name in shipped}
    top_level = {name for name in top_level if not name.startswith(".") or name == ".ci/"} - {".gitignore"}
    assert sorted(top_level - set(entries)) == []
    library = {
        p.name + ("/" if p.is_dir() else "")
        for p in (REPO_ROOT / "pipeline").iterdir()
        if p.name not in ("__pycache__", "__init__.py") and (p.is_dir() or p.suffix == ".py")
    }
    assert sorted(f"pipeline/{name}" for name in library if f"pipeline/{name}" not in entries) == []
