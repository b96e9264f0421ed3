"""`make inspect`: a human summary of a logit store (the latest one of DATASET by default)."""

import argparse
import sys

from pipeline.distill import latest_store
from pipeline.store import inspect


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="demo", help="dataset whose latest store to show")
    parser.add_argument("--store", default=None, help="store path (.zarr); default: the dataset's latest store")
    args = parser.parse_args(argv)
    path = args.store or latest_store(args.dataset)
    if not path:
        parser.error(f"no store given and none recorded for {args.dataset}: pass LOGITS=<path.zarr>")
    print(inspect(path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
