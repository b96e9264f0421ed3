"""`make inspect`: a human summary of a logit store (the latest one of DATASET by default), and what
its soft targets carry against the dataset's labels (teacher mAP on train vs held-out clips, mean
targets vs the class prior)."""

import argparse

from pipeline.diagnostics import format_diagnostics, soft_target_diagnostics
from pipeline.manifests import load_manifest
from pipeline.paths import latest_store, manifest_dir
from pipeline.store import LogitTable, inspect
from pipeline.store.verify import check_store

from .common import run_main


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="demo", help="name under data_manifests/ (its labels score the targets)")
    parser.add_argument("--store", default=None, help="store path (default: the dataset's latest store)")
    parser.add_argument("--fold", type=int, default=None, help="fold-based data: the teacher's evaluation fold")
    parser.add_argument("--tau", type=float, default=1.0, help="temperature the diagnostics apply to the targets")
    parser.add_argument("--digest", default=None, help="the digest its publisher gave: a store that does not "
                        "reproduce it is reported as a problem")
    args = parser.parse_args(argv)
    path = args.store or latest_store(args.dataset)
    if not path:
        parser.error(f"no store given and none recorded for {args.dataset}: pass LOGITS=<path.zarr>")
    verification = check_store(path, args.digest)  # "completed" says what the writer recorded; the checksums say what is there
    print(inspect(path, verification))
    if not verification.ok:
        print(f"\nWARNING: {len(verification.problems)} integrity problem(s): do not train from this store as it is")
        for problem in verification.problems[:5]:
            print(f"  {problem}")
        return 1
    folder = manifest_dir(args.dataset)
    if (folder / "dataset.json").exists():
        manifest = load_manifest(folder)
        table = LogitTable.open(path, load_views=False, expected_digest=args.digest)
        if table.vocabulary_mids != manifest.mids:
            print(f"\nsoft targets: not scored (the store's vocabulary is not {manifest.name}'s)")
        else:
            print(f"\nsoft targets against {manifest.name}'s labels:")
            print(format_diagnostics(soft_target_diagnostics(table, manifest, fold=args.fold, tau=args.tau)))
    return 0


if __name__ == "__main__":
    run_main(main)
