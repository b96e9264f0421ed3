"""`make families`: train the CNN and the AST at the teacher budget over SEEDS seeds, no KD, and print
their AP per class group. This is the embedded corpus's design check (each family should win its own
group by more than the seed spread), measured before and independently of any KD run."""

import time

from pipeline.config_check import check_config
from pipeline.experiments.grid import GridSpec, run_grid
from pipeline.experiments.report import family_table
from pipeline.manifests import load_manifest
from pipeline.paths import manifest_dir, report_dir
from pipeline.recipe import Recipe
from pipeline.synthetic_corpus import class_groups

from .common import add_jobs_argument, base_parser, default_recipe, run_main


def main(argv=None) -> int:
    parser = base_parser(__doc__)
    parser.add_argument("--seeds", type=int, default=3, help="seeds per family (seed 0 is the grid's teacher run)")
    add_jobs_argument(parser)
    args = parser.parse_args(argv)
    overrides = [o for o in args.overrides if o.strip()]
    recipe = Recipe.load(args.config or default_recipe(args.dataset))
    base = recipe.resolve("student", overrides)
    check_config(recipe.resolve("teacher", overrides), source="the recipe with ARGS")  # before hours of training
    # the grid's equal-design no-KD cells are exactly this: its teachers (seed 0) plus more seeds
    spec = GridSpec(
        dataset=args.dataset,
        cnn=base.cnn_model,
        ast=base.ast_model,
        seeds=args.seeds,
        designs=("equal",),
        only=("equal/cnn", "equal/ast"),
        overrides=overrides,
        jobs=args.jobs,
    )
    manifest = load_manifest(manifest_dir(args.dataset))
    groups = class_groups(manifest.mids)
    if not groups:
        raise SystemExit(f"{args.dataset}: its vocabulary is not the embedded corpus's, so it has no class groups")
    started = time.time()
    results = run_grid(spec, recipe)
    key = "accuracy" if manifest.single_label else "map"
    lines = [
        f"# Families on `{args.dataset}`: {spec.cnn} vs {spec.ast}, teacher budget, no KD",
        "",
        f"{args.seeds} seed(s); eval AP, mean ± sample std over seeds; {(time.time() - started) / 60:.1f} min.",
        "",
        *family_table(results, groups, key, list(range(args.seeds))),
    ]
    out = report_dir(args.dataset) / "families.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines[4:]) + f"\n\nreport: {out}")
    return 0


if __name__ == "__main__":
    run_main(main)
