"""Generate the embedded corpora: data/demo (FSD50K layout) and data/demo-esc50 (ESC-50 layout).

    python -m stages.make_data --out data --size 1.0 --seed 0 --corpus-version 2

A rerun with the same size and seed is a no-op; --force rebuilds regardless.
"""

from __future__ import annotations

import argparse
import os

from pipeline.synthetic_corpus import DEFAULT_VERSION, VERSIONS, generate_corpus

from .common import run_main


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="data", help="parent directory of demo/ and demo-esc50/")
    parser.add_argument("--size", type=float, default=1.0, help="scales clip counts (1.0: 1200 dev, 400 eval, 400 ESC)")
    parser.add_argument("--seed", type=int, default=0, help="the corpus is a function of (size, seed)")
    parser.add_argument(
        "--corpus-version",
        type=int,
        default=DEFAULT_VERSION,
        choices=sorted(VERSIONS),
        help="2: temporal classes are orders of sounds 0.8-2.6 s apart; 1: the earlier corpus",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=min(4, os.cpu_count() or 1),
        help="rendering processes; the output does not depend on this",
    )
    parser.add_argument("--force", action="store_true", help="rebuild even if the corpus is current")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)

    summaries = generate_corpus(
        args.out,
        size=args.size,
        seed=args.seed,
        progress=not args.quiet,
        workers=args.workers,
        force=args.force,
        version=args.corpus_version,
    )
    for name, summary in summaries.items():
        state = "up to date (generated earlier)" if summary["skipped"] else f"generated in {summary['seconds']:.1f} s"
        print(
            f"{name}: {summary['path']} {state}; corpus version {args.corpus_version}, {summary['classes']} classes, "
            f"clips {summary['clips']}"
        )


if __name__ == "__main__":
    run_main(main)
