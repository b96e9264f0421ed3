"""`make cmkd`: the paper's grid (both KD directions, same-family KD, consistency modes,
cross-fitted logits, temperature) with n seeds, and its report under reports/<dataset>/."""

import time
from pathlib import Path

from pipeline.grid import GridSpec, estimate_seconds, estimated_trainings, run_grid
from pipeline.manifests import load_manifest
from pipeline.report import table_text, write_report
from pipeline.training import splits_for

from .common import base_parser, resolve_config, run_main


def main(argv=None) -> int:
    parser = base_parser(__doc__)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--small", action="store_true", help="the demo's grid: both directions only")
    parser.add_argument("--cnn", default=None, help="CNN registry name (default: the recipe's cnn_model)")
    parser.add_argument("--ast", default=None, help="AST registry name (default: the recipe's ast_model)")
    parser.add_argument("--direction", default="ast_to_cnn", help="pair for the consistency/cross-fit/tau cells")
    parser.add_argument("--only", default="", help="comma-separated cells to run (their teachers are added)")
    parser.add_argument("--fold", type=int, default=None, help="fold-based data: the evaluation fold")
    args = parser.parse_args(argv)
    config = resolve_config(args)
    spec = GridSpec(dataset=args.dataset, cnn=args.cnn or config.cnn_model, ast=args.ast or config.ast_model,
                    seeds=args.seeds, small=args.small, direction=args.direction, fold=args.fold,
                    only=tuple(c for c in args.only.split(",") if c))
    train_clips = len(splits_for(load_manifest(Path("data_manifests") / args.dataset), args.fold)[0])
    estimate = estimate_seconds(spec, config, train_clips)
    print(f"CMKD grid on {spec.dataset}: {estimated_trainings(spec)} trainings of {config.epochs} epochs "
          f"({spec.cnn} / {spec.ast}), about {estimate / 60:.0f} min of training by a quick timing here "
          f"(plus evaluation and stage one); finished cells are reused")
    started = time.time()
    results = run_grid(spec, config)
    report = write_report(spec, results, f"reports/{args.dataset}", time.time() - started,
                          key="accuracy" if config.loss == "ce" else "map")
    print("\n" + table_text(report) + f"\n\nreport: {report}")
    return 0


if __name__ == "__main__":
    run_main(main)
