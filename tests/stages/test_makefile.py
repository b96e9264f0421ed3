"""`make help`: every target with one line, every variable with its value, generated from `## ` comments."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.helpers import REPO_ROOT

MAKEFILE = (REPO_ROOT / "Makefile").read_text()
INTERNAL = {"SHELL", "PY", "VENV_STAMP", "EMBEDDED", "HELP_VARS", "OMP_WAIT_POLICY"}


def make_help(*assignments: str) -> str:
    if shutil.which("make") is None:
        pytest.fail("GNU make is needed: the Makefile is the project's front door")
    return subprocess.run(
        ["make", "-s", "--no-print-directory", "help", *assignments],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def phony_targets() -> list[str]:
    phony = re.search(r"^\.PHONY:(.*?)(?<!\\)\n", MAKEFILE, re.MULTILINE | re.DOTALL).group(1)
    return phony.replace("\\", " ").split()


def section(text: str, title: str) -> list[str]:
    lines = text.split(title + "\n", 1)[1].split("\n\n")[0].splitlines()
    return [line for line in lines if line.strip()]


def test_every_target_has_one_line():
    targets = {line.split()[0]: line.split(None, 1)[1] for line in section(make_help(), "targets:")}
    assert set(targets) == set(phony_targets())
    assert targets["student"].startswith("stage two") and targets["teacher-logits"].startswith("stage one")
    assert all(len(description) > 10 for description in targets.values())


def test_every_variable_is_listed_with_its_default_and_a_description():
    assigned = set(re.findall(r"^([A-Z_]+) \?=", MAKEFILE, re.MULTILINE)) - INTERNAL
    rows = {line.split()[0]: line.split(None, 2)[1:] for line in section(make_help(), "variables (value now):")}
    assert set(rows) == assigned
    assert rows["DATASET"][0] == "demo" and rows["SEEDS"][0] == "-" and rows["VIEWS"][0] == "0"
    assert rows["DATA_ROOT"][0] == "data/demo" and rows["FORMAT"][0] == "fsd50k"
    assert rows["KD"][0] == "-" and "none | clean | replay | online" in rows["KD"][1]
    assert all(len(value_and_doc) == 2 and value_and_doc[1] for value_and_doc in rows.values())


def test_help_shows_the_values_a_command_line_gives():
    rows = {
        line.split()[0]: line.split()[1]
        for line in section(make_help("DATASET=esc50", "TAU=2"), "variables (value now):")
    }
    assert rows["FORMAT"] == "esc50" and rows["DATA_ROOT"] == "-" and rows["TAU"] == "2"
    assert rows["CONFIG"] == "configs/esc50.yaml"
    audioset = {
        line.split()[0]: line.split()[1]
        for line in section(make_help("DATASET=audioset_balanced"), "variables (value now):")
    }
    assert audioset["FORMAT"] == "audioset"
