"""Compute fbank normalisation stats over a dataset's training clips; stored in its dataset.json.

python -m stages.norm_stats --dataset fsd50k --config configs/fsd50k.yaml
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.paths import MANIFESTS_ROOT
from pipeline.recipe import load_config
from pipeline.training.norm_stats import NORM_METHODS, compute_dataset_norm_stats
from stages.common import default_recipe

from .common import run_main


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, help="name under data_manifests/")
    parser.add_argument(
        "--config", help="recipe YAML whose n_mels decides the fbank (default: configs/<dataset>.yaml if present)"
    )
    parser.add_argument("--max-clips", type=int, default=0, help="use a fixed sample of N clips (0: all)")
    parser.add_argument(
        "--method",
        choices=NORM_METHODS,
        default="upstream",
        help="upstream (default): as AST's get_norm_stats.py, the mean of per-batch means and stds of "
        "the training loader's features (padded, masked, mixed as the recipe says); clean: pooled "
        "over every clip's clean, unpadded fbank",
    )
    parser.add_argument("--manifests", default=MANIFESTS_ROOT, help="folder holding <dataset>/")
    args = parser.parse_args(argv)
    config = load_config(args.config or default_recipe(args.dataset))
    try:
        stats = compute_dataset_norm_stats(Path(args.manifests) / args.dataset, config, args.max_clips, args.method)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None
    print(
        f"{args.dataset}: norm_mean {stats['norm_mean']:.4f}, norm_std {stats['norm_std']:.4f} "
        f"({args.method}, {stats['n_mels']} mel bins, {stats['clips']} clips) -> {args.manifests}/{args.dataset}/dataset.json"
    )
    if config.norm_mean is not None or config.norm_std is not None:  # the recipe's published values win
        print(
            "note: the recipe sets norm_mean/norm_std (upstream's published statistics), which runs use; "
            'ARGS="norm_mean=null norm_std=null" makes a run use these instead'
        )


if __name__ == "__main__":
    run_main(main)
