"""The `cmkd` console command and the packaging metadata behind it."""

from __future__ import annotations

import argparse
import importlib
import re
import subprocess
import sys

import pytest
import tomllib
import yaml

import pipeline
from stages import cli
from tests.helpers import REPO_ROOT


def test_help_lists_every_command_with_its_description(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name in (
        "data",
        "manifests",
        "norm-stats",
        "pack",
        "teacher",
        "evaluate",
        "teacher-logits",
        "inspect",
        "student",
        "cmkd",
        "bench",
        "gpu-check",
    ):
        assert re.search(rf"^  {re.escape(name)} +\S", out, re.MULTILINE), name
    assert "Train a student from audio plus a teacher's cached logits" in out


def test_every_command_is_a_driver_with_a_main():
    for name, module in cli.COMMANDS.items():
        assert callable(importlib.import_module(module).main), name


def test_command_runs_its_driver_with_the_remaining_arguments(monkeypatch):
    seen = {}

    def fake_main(argv):
        seen["argv"] = argv
        return 3

    monkeypatch.setattr(importlib.import_module("stages.teacher"), "main", fake_main)
    assert cli.main(["teacher", "--dataset", "demo", "--model", "efficientnet_tiny", "--", "epochs=1"]) == 3
    assert seen["argv"] == ["--dataset", "demo", "--model", "efficientnet_tiny", "--", "epochs=1"]


def test_a_driver_option_help_reaches_the_driver(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["student", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: cmkd student") and "--kd" in out


def test_unknown_command_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["teach"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'teach'" in capsys.readouterr().err


def test_listing_commands_does_not_load_torch():
    code = "import sys; from stages import cli; cli.command_list(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# ------------------------------------------------------------------------------------ packaging


def requirement_names(lines) -> dict[str, str]:
    """{'torch': 'torch==2.11.0', ...} from requirement strings (comments and blanks dropped)."""
    out = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if line:
            out[re.split(r"[\[=<>!~ ]", line, maxsplit=1)[0].lower()] = line
    return out


def test_pyproject_dependencies_match_requirements_txt():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    runtime = requirement_names(project["dependencies"])
    testing = requirement_names(project["optional-dependencies"]["test"])
    pinned = requirement_names((REPO_ROOT / "requirements.txt").read_text().splitlines())
    test_pins = requirement_names(
        line for line in (REPO_ROOT / "requirements-test.txt").read_text().splitlines() if not line.startswith("-r")
    )
    assert runtime == pinned and testing == test_pins  # same packages, same pins
    assert "pytest" not in runtime and "hypothesis" not in runtime


def test_pyproject_entry_point_and_packages():
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    module, function = config["project"]["scripts"]["cmkd"].split(":")
    assert getattr(importlib.import_module(module), function) is cli.main
    assert config["tool"]["setuptools"]["packages"]["find"]["include"] == ["pipeline*", "stages*", "bench*"]
    assert config["project"]["dynamic"] == ["version"]
    assert config["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "pipeline.__version__"}
    assert config["project"]["license"] == {"text": "MIT"} and (REPO_ROOT / "LICENSE").read_text().startswith(
        "MIT License"
    )


def test_citation_names_the_paper():
    text = (REPO_ROOT / "CITATION.cff").read_text()
    citation = yaml.safe_load(text)
    assert citation["preferred-citation"]["year"] == 2022 and citation["type"] == "software"
    assert citation["version"] == pipeline.__version__
    assert "cff-version: 1.2.0" in text and "arXiv:2203.06760" in text
    assert "CMKD: CNN/Transformer-Based Cross-Model Knowledge Distillation for Audio Classification" in text
    for family in ("Gong", "Khurana", "Rouditchenko", "Glass"):
        assert f"family-names: {family}" in text


# ------------------------------------------------------------------------------------ driver options


class _Parsed(Exception):
    def __init__(self, parser):
        self.parser = parser


def driver_parser(module: str, monkeypatch) -> argparse.ArgumentParser:
    """The parser a driver builds inside main(), caught at parse time (nothing runs)."""

    def capture(self, args=None, namespace=None):
        raise _Parsed(self)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    with pytest.raises(_Parsed) as caught:
        importlib.import_module(module).main([])
    return caught.value.parser


def options_of(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {
        action.option_strings[0] if action.option_strings else action.dest: action
        for action in parser._actions
        if not isinstance(action, argparse._HelpAction)
    }


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_every_driver_option_has_help(command, monkeypatch):
    options = options_of(driver_parser(cli.COMMANDS[command], monkeypatch))
    assert [name for name, action in options.items() if not (action.help or "").strip()] == []


def test_student_options_with_a_fixed_set_of_values_have_choices(monkeypatch):
    options = options_of(driver_parser("stages.student", monkeypatch))
    assert tuple(options["--kd"].choices) == ("none", "clean", "replay", "online")
    assert tuple(options["--kd-loss"].choices) == ("auto", "kl", "bce")
    assert tuple(options["--missing"].choices) == ("error", "mask")
    assert options["--tau"].type is float and options["--lambda"].type is float


def test_bad_kd_mode_is_refused_before_anything_runs(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["student", "--kd", "cached"])
    assert exit_info.value.code == 2
    assert "argument --kd: invalid choice: 'cached'" in capsys.readouterr().err


def test_grid_direction_and_store_dtype_have_choices(monkeypatch):
    direction = options_of(driver_parser("stages.cmkd", monkeypatch))["--direction"]
    assert set(direction.choices) == {"ast_to_cnn", "cnn_to_ast", "cnn_to_cnn", "ast_to_ast"}
    assert options_of(driver_parser("stages.teacher_logits", monkeypatch))["--dtype"].choices == ["float16", "float32"]
