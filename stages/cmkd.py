"""`make cmkd`: the paper's grid (teachers trained once; students in the equal and short designs;
both KD directions, same-family KD, prior and shuffled controls, consistency modes, cross-fitted
logits, temperature) with n seeds, and its report under reports/<dataset>/."""

import time

from pipeline.config_check import check_config
from pipeline.experiments.diagnostics import grid_diagnostics
from pipeline.experiments.grid import (
    DESIGNS,
    GridSpec,
    estimate_seconds,
    estimated_trainings,
    run_grid,
    set_aside_stale_grid,
)
from pipeline.experiments.report import table_text, write_report
from pipeline.manifests import load_manifest
from pipeline.paths import manifest_dir, report_dir
from pipeline.recipe import Recipe
from pipeline.training import splits_for

from .common import add_cluster_arguments, add_jobs_argument, base_parser, cluster_resources, default_recipe, run_main


def main(argv=None) -> int:
    parser = base_parser(__doc__)
    parser.add_argument("--seeds", type=int, default=1, help="student seeds per cell (teachers train once)")
    parser.add_argument("--small", action="store_true", help="the demo's grid: both directions and the prior control")
    parser.add_argument(
        "--design",
        default="both",
        choices=[*DESIGNS, "both"],
        help="equal: students get the teacher budget; short: the student budget",
    )
    parser.add_argument("--cnn", default=None, help="CNN registry name (default: the recipe's cnn_model)")
    parser.add_argument("--ast", default=None, help="AST registry name (default: the recipe's ast_model)")
    parser.add_argument(
        "--direction",
        default="ast_to_cnn",
        choices=("ast_to_cnn", "cnn_to_ast", "cnn_to_cnn", "ast_to_ast"),
        help="teacher_to_student pair for the consistency, cross-fitting and temperature cells",
    )
    parser.add_argument(
        "--only", default="", help="comma-separated cells to run (their teachers and baselines are added)"
    )
    parser.add_argument("--fold", type=int, default=None, help="fold-based data: the evaluation fold")
    add_jobs_argument(parser)
    parser.add_argument(
        "--scheduler",
        default="",
        help="run the cells as dask tasks: 'local' (a LocalCluster of --jobs workers), 'slurm' "
        "(SLURM jobs, --cluster-*), or a scheduler address; default: local processes",
    )
    add_cluster_arguments(parser)
    args = parser.parse_args(argv)
    recipe = Recipe.load(args.config or default_recipe(args.dataset))
    base = recipe.resolve("student", [o for o in args.overrides if o.strip()])
    for role in ("student", "teacher"):  # a bad ARGS value fails here, before the timing below
        check_config(recipe.resolve(role, [o for o in args.overrides if o.strip()]), source="the recipe with ARGS")
    spec = GridSpec(
        dataset=args.dataset,
        cnn=args.cnn or base.cnn_model,
        ast=args.ast or base.ast_model,
        seeds=args.seeds,
        small=args.small,
        direction=args.direction,
        fold=args.fold,
        designs=DESIGNS if args.design == "both" else (args.design,),
        only=tuple(c for c in args.only.split(",") if c),
        overrides=[o for o in args.overrides if o.strip()],
        jobs=args.jobs,
        scheduler=args.scheduler,
        cluster=cluster_resources(args),
    )
    manifest = load_manifest(manifest_dir(args.dataset))
    train_clips = len(splits_for(manifest, args.fold)[0])
    set_aside_stale_grid(spec, recipe)  # before the estimate, so it counts only the runs that will be reused
    estimate = estimate_seconds(spec, recipe, train_clips)
    print(
        f"CMKD grid on {spec.dataset} ({', '.join(spec.designs)} design): {estimated_trainings(spec)} trainings to run "
        f"({spec.cnn} / {spec.ast}), about {estimate / 60:.0f} min of training one at a time by a quick timing "
        f"here (plus evaluation and stage one){f', {spec.jobs} side by side' if spec.jobs > 1 else ''}; "
        "finished cells are reused"
    )
    started = time.time()
    results = run_grid(spec, recipe)
    key = "accuracy" if manifest.single_label else "map"
    diagnostics, groups = grid_diagnostics(results, manifest, spec.fold)
    report = write_report(
        spec, results, report_dir(args.dataset), time.time() - started, key=key, diagnostics=diagnostics, groups=groups
    )
    print("\n" + table_text(report) + f"\n\nreport: {report}")
    for store, text in diagnostics.items():
        if "warning:" in text:
            print(f"{store}: " + text.splitlines()[-1])
    return 0


if __name__ == "__main__":
    run_main(main)
