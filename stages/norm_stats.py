"""Compute fbank normalisation stats over a dataset's training clips; stored in its dataset.json.

    python -m stages.norm_stats --dataset fsd50k --config configs/fsd50k.yaml
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.recipe import load_config
from pipeline.manifests import compute_dataset_norm_stats
from pipeline.paths import MANIFESTS_ROOT
from stages.common import default_recipe

from .common import run_main


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, help="name under data_manifests/")
    parser.add_argument("--config", help="recipe YAML whose n_mels decides the fbank "
                                         "(default: configs/<dataset>.yaml if present)")
    parser.add_argument("--max-clips", type=int, default=0, help="use a fixed sample of N clips (0: all)")
    parser.add_argument("--manifests", default=MANIFESTS_ROOT, help="folder holding <dataset>/")
    args = parser.parse_args(argv)
    front_end = load_config(args.config or default_recipe(args.dataset)).front_end()
    try:
        stats = compute_dataset_norm_stats(Path(args.manifests) / args.dataset, front_end, args.max_clips)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None
    print(f"{args.dataset}: norm_mean {stats['norm_mean']:.4f}, norm_std {stats['norm_std']:.4f} "
          f"({stats['n_mels']} mel bins, {stats['clips']} clips) -> {args.manifests}/{args.dataset}/dataset.json")


if __name__ == "__main__":
    run_main(main)
