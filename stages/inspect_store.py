"""`make inspect`: a human summary of a logit store (the latest one of DATASET by default)."""

import argparse

from pipeline.distill import latest_store
from pipeline.store import inspect

from .common import run_main


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="demo")
    parser.add_argument("--store", default=None)
    args = parser.parse_args(argv)
    path = args.store or latest_store(args.dataset)
    if not path:
        parser.error(f"no store given and none recorded for {args.dataset}: pass LOGITS=<path.zarr>")
    print(inspect(path))
    return 0


if __name__ == "__main__":
    run_main(main)
