"""A recipe file: base keys, one section per model family, and a section for teachers.

One YAML recipe serves both families of the CMKD grid and both roles, because a CNN and an AST do
not train well with the same learning rate, batch size or input length, and a teacher is trained
to convergence once while a student gets the recipe's (often shorter) student budget::

    lr: 2.0e-3            # base keys: every run
    epochs: 6             # the student budget
    cnn:                  # runs whose model belongs to the CNN family
      batch_size: 16
    ast:                  # runs whose model belongs to the AST family
      lr: 1.0e-3
    teacher:              # teacher trainings (make teacher, the grid's teacher cells)
      epochs: 18
      patience: 4
      ast:                # a family may refine the teacher section
        epochs: 24

Resolution order, later wins: base, family section, ``teacher`` (teachers only), the family's
part of ``teacher``, then the run's own ``key=value`` overrides. The result is one flat
:class:`~pipeline.config.Config`, saved as ``config.yaml`` beside the run, so the run never depends
on the recipe file again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .config import Config, _dump_value, apply_overrides, parse_overrides

FAMILIES = ("cnn", "ast")
ROLES = ("teacher", "student")


def read_yaml(path: str | Path):
    """A YAML file read with safe_load (tags such as ``!!python/object/apply`` are refused, never run);
    a parse or tag error names the file and the line, in one line."""
    try:
        return yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        problem = getattr(error, "problem", None) or (lines[0] if lines else type(error).__name__)
        context = getattr(error, "context", None)
        raise ValueError(f"{path}:{where}: not a valid recipe: {' '.join(filter(None, [context, problem]))}") from None


def model_family(model: str) -> str:
    """The registry's family of a model name ("cnn" or "ast")."""
    from .models import model_entry

    return model_entry(model).family


def _flat_section(data, where: str, allow_nested: tuple[str, ...]) -> tuple[dict[str, str], dict]:
    """Split a mapping into its plain keys (as override strings) and its nested sections."""
    if data is None:
        return {}, {}
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping of key: value, got {type(data).__name__}")
    plain, nested = {}, {}
    for key, value in data.items():
        if isinstance(value, dict):
            if key not in allow_nested:
                raise ValueError(f"{where}: section {key!r} is not allowed here (allowed: {list(allow_nested)})")
            nested[key] = value
        else:
            plain[str(key)] = _dump_value(value)
    return plain, nested


@dataclass(frozen=True)
class Recipe:
    """A parsed recipe file; :meth:`resolve` gives the Config of one run."""

    base: dict[str, str] = field(default_factory=dict)
    families: dict[str, dict[str, str]] = field(default_factory=dict)
    teacher: dict[str, str] = field(default_factory=dict)
    teacher_families: dict[str, dict[str, str]] = field(default_factory=dict)
    path: str = ""

    @classmethod
    def load(cls, path: str | Path | None) -> Recipe:
        if path is None:
            return cls()
        where = str(path)
        data = read_yaml(path)
        base, nested = _flat_section(data, where, (*FAMILIES, "teacher"))
        families = {name: _flat_section(nested[name], f"{where}: {name}", ())[0] for name in FAMILIES if name in nested}
        teacher, teacher_nested = _flat_section(nested.get("teacher"), f"{where}: teacher", FAMILIES)
        teacher_families = {
            name: _flat_section(section, f"{where}: teacher.{name}", ())[0] for name, section in teacher_nested.items()
        }
        recipe = cls(base, families, teacher, teacher_families, where)
        recipe.check_keys()
        return recipe

    def check_keys(self) -> None:
        """Every key of every section must be a Config field (a typo is an error, not ignored)."""
        sections = {
            "": self.base,
            "teacher": self.teacher,
            **{name: keys for name, keys in self.families.items()},
            **{f"teacher.{name}": keys for name, keys in self.teacher_families.items()},
        }
        for name, keys in sections.items():
            try:
                apply_overrides(Config(), keys)
            except ValueError as error:
                raise ValueError(f"{self.path or 'recipe'}{': ' + name if name else ''}: {error}") from None

    def layers(self, family: str, role: str) -> list[dict[str, str]]:
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {role!r}")
        layers = [self.base, self.families.get(family, {})]
        if role == "teacher":
            layers += [self.teacher, self.teacher_families.get(family, {})]
        return layers

    def resolve(self, role: str = "student", overrides: dict[str, str] | list[str] | None = None) -> Config:
        """The flat Config of one run: the model (from the overrides, else the recipe) picks the family."""
        pairs = parse_overrides(overrides)
        model = pairs.get("model") or self.base.get("model") or Config().model
        config = Config()
        for layer in [*self.layers(model_family(model), role), pairs]:
            if layer:
                config = apply_overrides(config, layer)
        return config


def load_config(path: str | Path | None = None, overrides=None, role: str = "student") -> Config:
    """Load a YAML recipe for one run (base keys, then the model family's section, then the teacher
    section when role="teacher"), then apply overrides."""
    return Recipe.load(path).resolve(role, overrides)
