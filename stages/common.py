"""Argument helpers shared by the stage drivers (kept tiny: the work lives in pipeline/)."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.config import Config, load_config, parse_overrides


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--dataset", default="demo", help="name under data_manifests/")
    parser.add_argument("--config", default=None, help="YAML recipe (default: configs/<dataset>.yaml if present)")
    parser.add_argument("overrides", nargs="*", help="key=value config overrides (ARGS from make)")
    return parser


def resolve_config(args, role: str = "student", **named) -> Config:
    """Recipe (its family section for the model, and its teacher section for role="teacher"), then
    named options (--model, --fold ...), then key=value overrides: later wins."""
    path = args.config or default_recipe(args.dataset)
    pairs = {k: str(v) for k, v in named.items() if v not in (None, "")}
    pairs.update(parse_overrides([o for o in args.overrides if o.strip()]))
    return load_config(path, pairs, role=role)


def default_recipe(dataset: str) -> str | None:
    for name in (dataset, dataset.split("_")[0], "audioset_balanced" if dataset.startswith("audioset") else ""):
        path = Path("configs") / f"{name}.yaml"
        if name and path.exists():
            return str(path)
    return None

