"""`make bench`: measure the pipeline's speed, memory and size claims into bench/results.json and .md."""

import argparse
import os
import sys

# OMP_WAIT_POLICY=PASSIVE is set for every driver in stages/__init__.py, before torch loads
from bench import entry_names, run_bench
from bench.harness import format_value

from .common import run_main


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", default="", help=f"comma-separated entries (default all): {', '.join(entry_names())}")
    parser.add_argument("--quick", action="store_true", help="smoke-run sizes: every entry in a few minutes")
    parser.add_argument("--out", default="bench/results.json", help="results file; the markdown table goes beside it")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for in-process comparisons")
    args = parser.parse_args(argv)
    only = [name.strip() for name in args.only.split(",") if name.strip()] or None
    document = run_bench(only=only, quick=args.quick, out=args.out, threads=args.threads)
    for entry in document["entries"]:
        for figure in entry["figures"]:
            verdict = {True: "ok", False: "MISSED", None: ""}[figure["ok"]]
            print(
                f"{entry['name']:>20}  {format_value(figure['value'], figure['unit']):>16}  {verdict:6}  "
                f"{figure['label']}"
            )
    failed = [e["name"] for e in document["entries"] if e["error"]]
    print(
        f"total {document['run']['total_seconds']:.0f} s; all goals met: {document['all_goals_met']}; "
        f"written {args.out} and {os.path.splitext(args.out)[0]}.md"
    )
    if failed:
        print(f"entries that raised: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    run_main(main)
