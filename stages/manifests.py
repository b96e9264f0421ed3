"""Build data_manifests/<dataset>/ from a dataset's official metadata and audio.

python -m stages.manifests --dataset fsd50k --format fsd50k --data-root /data/FSD50K
"""

from __future__ import annotations

import argparse

from pipeline.manifests import FORMATS, build_manifest, summary_line
from pipeline.paths import MANIFESTS_ROOT

from .common import run_main

# The embedded corpora need no DATA_ROOT: `make data` writes them to fixed places.
DEMO_DATASETS = {"demo": ("data/demo", "fsd50k"), "demo-esc50": ("data/demo-esc50", "esc50")}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, help="manifest name: data_manifests/<dataset>/")
    parser.add_argument("--format", choices=FORMATS, help="layout of the metadata (default: from --dataset)")
    parser.add_argument("--data-root", help="folder holding the dataset's metadata and audio")
    parser.add_argument("--labels", help="label CSV (index,mid,display_name) for audioset / ast-json")
    parser.add_argument("--segments", help="comma-separated AudioSet segment CSVs or AST json datafiles")
    parser.add_argument("--out-root", default=MANIFESTS_ROOT, help="folder the manifest goes under")
    parser.add_argument(
        "--check",
        choices=["full", "header"],
        default="full",
        help="audio check: decode every sample (default), or read headers only (CHECK=header)",
    )
    args = parser.parse_args(argv)
    demo_root, demo_format = DEMO_DATASETS.get(args.dataset, (None, None))
    data_root = args.data_root or demo_root
    fmt = args.format or demo_format or (args.dataset if args.dataset in FORMATS else None)
    if data_root is None:
        parser.exit(
            2,
            f"error: dataset {args.dataset!r} needs its location: pass DATA_ROOT=/path/to/{args.dataset} "
            f"(make manifests DATASET={args.dataset} DATA_ROOT=...) or --data-root\n",
        )
    if fmt is None:
        parser.exit(2, f"error: pass --format (one of {', '.join(FORMATS)}) for dataset {args.dataset!r}\n")
    segments = [s.strip() for s in args.segments.split(",") if s.strip()] if args.segments else None
    try:
        manifest = build_manifest(args.dataset, fmt, data_root, args.out_root, args.labels, segments, check=args.check)
    except ValueError as error:  # ManifestError included: it lists every offending row
        raise SystemExit(f"error: {error}\nnothing was written") from None
    print(summary_line(manifest, f"{args.out_root}/{args.dataset}"))


if __name__ == "__main__":
    run_main(main)
