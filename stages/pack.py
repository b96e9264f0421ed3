"""Pack a dataset's audio into int16 HDF5 shards (packed/<dataset>/audio_*.h5); reruns resume.

python -m stages.pack --dataset fsd50k
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.manifests import pack_dataset
from pipeline.paths import MANIFESTS_ROOT, PACKED_ROOT

from .common import run_main


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, help="name under data_manifests/")
    parser.add_argument("--shard-clips", type=int, default=20000, help="clips per HDF5 shard")
    parser.add_argument("--manifests", default=MANIFESTS_ROOT, help="folder holding <dataset>/")
    parser.add_argument("--out-root", default=PACKED_ROOT, help="shards go to <out-root>/<dataset>/")
    args = parser.parse_args(argv)
    try:
        shards = pack_dataset(Path(args.manifests) / args.dataset, args.out_root, args.shard_clips)
    except (FileNotFoundError, ValueError) as error:  # AudioError is a ValueError
        raise SystemExit(f"error: {error}") from None
    print(f"{args.dataset}: {len(shards)} shard(s) in {args.out_root}/{args.dataset}/ (listed in dataset.json)")


if __name__ == "__main__":
    run_main(main)
