"""`make inspect`: a human summary of a logit store (the latest one of DATASET by default), and what
its soft targets carry against the dataset's labels (teacher mAP on train vs held-out clips, mean
targets vs the class prior).

`python -m pipeline.store inspect --verify STORE` (`cmkd store inspect`) prints the same description;
this driver picks the dataset's latest store when none is given and adds the soft-target scores."""

import argparse

from pipeline.experiments.diagnostics import soft_target_report
from pipeline.paths import latest_store
from pipeline.store.cli import cmd_inspect

from .common import add_storage_options_argument, apply_storage_options, run_main


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("store_path", nargs="?", default=None, metavar="STORE", help="the store (same as --store)")
    parser.add_argument("--dataset", default="demo", help="name under data_manifests/ (its labels score the targets)")
    parser.add_argument(
        "--store", default=None, help="store: a directory, .zarr.zip or URL (default: the dataset's latest store)"
    )
    parser.add_argument("--fold", type=int, default=None, help="fold-based data: the teacher's evaluation fold")
    parser.add_argument("--tau", type=float, default=1.0, help="temperature the diagnostics apply to the targets")
    parser.add_argument("--json", action="store_true", help="print the description as JSON (no diagnostics)")
    add_storage_options_argument(parser)
    parser.add_argument(
        "--digest",
        default=None,
        help="the digest its publisher gave: a store that does not reproduce it is reported as a problem",
    )
    args = parser.parse_args(argv)
    apply_storage_options(args)
    path = args.store or args.store_path or latest_store(args.dataset)
    if not path:
        parser.error(f"no store given and none recorded for {args.dataset}: pass LOGITS=<path.zarr>")
    # verification always: "completed" says what the writer recorded; the checksums say what is there
    status = cmd_inspect(argparse.Namespace(store=path, json=args.json, verify=True, digest=args.digest))
    report = (
        # cmd_inspect has just verified every checksum (and the pinned digest): status 0 means it passed
        soft_target_report(path, args.dataset, fold=args.fold, tau=args.tau, digest=args.digest, verify=False)
        if status == 0 and not args.json
        else ""
    )
    if report:
        print(report)
    return status


if __name__ == "__main__":
    run_main(main)
