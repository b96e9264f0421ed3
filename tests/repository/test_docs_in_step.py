"""Prose that states a fact of the code says what the code says: the store format version and the pins here,
the README's layout block in tests/repository/test_repository.py."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib

from pipeline.store.format import FORMAT_ID, FORMAT_VERSION
from tests.helpers import REPO_ROOT

PROSE = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]


def pins(path: Path) -> dict[str, str]:
    """name -> version of every `name==version` line of a requirements file (extras dropped)."""
    out = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)(\[[^\]]*\])?==([^\s;#]+)", line.strip())
        if match:
            out[match.group(1).lower()] = match.group(3)
    return out


def test_every_mention_of_the_current_store_format_names_the_codes_version():
    format_md = (REPO_ROOT / "docs/store-format.md").read_text()
    assert format_md.splitlines()[0].endswith(f"`{FORMAT_ID}` {FORMAT_VERSION}")  # the page's title
    attrs_row = next(line for line in format_md.splitlines() if line.startswith("| `format`, `version` |"))
    assert f'`"{FORMAT_VERSION}"`' in attrs_row
    assert re.search(rf"\*\*{re.escape(FORMAT_VERSION)}\*\* \(this version\)", format_md)
    # example output and prose elsewhere: "cmkd-logits X.Y" always names the current version
    for path in [*PROSE, *sorted((REPO_ROOT / "pipeline").rglob("*.py"))]:
        for version in re.findall(rf"{FORMAT_ID}\"? (\d+\.\d+)", path.read_text()):
            assert version == FORMAT_VERSION, f"{path.relative_to(REPO_ROOT)} says {FORMAT_ID} {version}"


# extras whose package no test installs (no GCS emulator runs here): pinned in pyproject.toml only
UNTESTED_EXTRA_PINS = {"gcsfs"}


def test_pins_quoted_in_prose_and_extras_are_the_pinned_ones():
    runtime = pins(REPO_ROOT / "requirements.txt")
    installed = {**runtime, **pins(REPO_ROOT / "requirements-test.txt"), **pins(REPO_ROOT / "requirements-export.txt")}
    page = (REPO_ROOT / "docs" / "installation.md").read_text()
    why = page.split("## Why these pins", 1)[1].split("\n## ", 1)[0]
    quoted = re.findall(r"\b([a-z][a-z0-9_-]+)(?:/[a-z]+)? (\d+\.\d+\.\d+)\b", why)
    assert len(quoted) >= 8  # the section names the stack's versions
    for name, version in quoted:
        if name in runtime:  # other versions there are the measured alternatives that lost
            assert version == runtime[name] or name == "torch", f"docs pin {name} {version}, not {runtime[name]}"
    for name in ("torch", "torchaudio", "torchvision"):
        assert f"{name} {runtime[name]}" in why
    extras = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for extra, requirements in extras.items():
        for requirement in requirements:
            name, version = re.sub(r"\[.*\]", "", requirement).split("==")
            if name.lower() in UNTESTED_EXTRA_PINS:
                assert name.lower() not in installed
                continue
            assert installed.get(name.lower()) == version, (
                f"[{extra}] pins {requirement}, the requirements files do not"
            )


def test_every_test_file_named_in_prose_code_or_config_exists():
    """A test path quoted anywhere outside tests/ (docs, docstrings, comments, requirements) follows the test
    tree when files move."""
    named = [
        *PROSE,
        REPO_ROOT / "CHANGELOG.md",
        REPO_ROOT / "Makefile",
        REPO_ROOT / "pyproject.toml",
        *sorted(REPO_ROOT.glob("requirements*.txt")),
        *sorted((REPO_ROOT / ".ci").iterdir()),
        *(path for top in ("pipeline", "stages", "bench") for path in sorted((REPO_ROOT / top).rglob("*.py"))),
    ]
    missing = [
        f"{path.relative_to(REPO_ROOT)}: {test_path}"
        for path in named
        for test_path in re.findall(r"\btests/[\w/]+\.py\b", path.read_text())
        if not (REPO_ROOT / test_path).is_file()
    ]
    assert missing == []
