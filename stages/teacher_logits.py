"""`make teacher-logits`: run a teacher once over every clip of a dataset into a Zarr store."""

from pathlib import Path

from pipeline.augment import AugmentSettings
from pipeline.config import Config, parse_overrides
from pipeline.paths import run_dir, store_path, write_latest_store
from pipeline.stage_one import StageOneJob, run_stage_one
from pipeline.stage_one.published import FRONT_END_KEYS, split_published_args, teacher_run_for
from pipeline.training.runner import latest_run

from .common import add_cluster_arguments, base_parser, cluster_resources, resolve_config, run_main

# the keys that set the views' augmentation; any other ARGS key (batch_size, ...) leaves the teacher's own
AUGMENT_KEYS = {"mixup", "mixup_alpha", "freqm", "timem", "time_shift", "seed"}


def store_name(teacher: str, dataset: str) -> str:
    """runs/<dataset>/ast/fold1 -> ast-fold1; a checkpoint file elsewhere -> its stem."""
    path, runs = Path(teacher).resolve(), run_dir(dataset, "").resolve()
    return "-".join(path.relative_to(runs).parts) if path.is_relative_to(runs) else path.stem


def main(argv=None) -> int:
    parser = base_parser(__doc__)
    parser.add_argument("--teacher", default=None, help="run dir / checkpoint (default: newest finished run)")
    parser.add_argument("--out", default=None, help="store path (default stores/<dataset>/<teacher run>.zarr)")
    parser.add_argument("--views", type=int, default=0, help="augmented views per clip (0: clean logits only)")
    parser.add_argument(
        "--scheduler",
        default="",
        help="dask scheduler address, 'slurm' for SLURM jobs (--cluster-*), or 'inline' for no cluster",
    )
    parser.add_argument("--workers", type=int, default=0, help="local cluster workers (default: one per core)")
    parser.add_argument("--topk", type=int, default=0, help="compact mode: keep the top-k logits per row")
    parser.add_argument(
        "--dtype",
        default="float16",
        choices=["float16", "float32"],
        help="logit dtype in the store (float16: 2 bytes per class and clip-view)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace a store built by another teacher")
    parser.add_argument(
        "--labels",
        default=None,
        help="a published teacher's vocabulary file (class_labels_indices.csv / vocabulary.csv)",
    )
    parser.add_argument(
        "--model",
        default=None,
        help="registry name of a published file this project does not know (its options in ARGS)",
    )
    add_cluster_arguments(parser)
    parser.add_argument(
        "--changed-audio",
        default="fail",
        choices=("fail", "error"),
        help="a clip whose audio no longer matches its manifest row: fail (a recorded failure, "
        "masked) or error (stop with one line; finished chunks are kept)",
    )
    args = parser.parse_args(argv)
    named = parse_overrides([o for o in args.overrides if o.strip()])
    front_end = {k: float(v) if "norm" in k else int(float(v)) for k, v in named.items() if k in FRONT_END_KEYS}
    if named.get("ast_source_grid"):  # a published AST file renamed or unlisted: its position table's grid
        front_end["ast_source_grid"] = named["ast_source_grid"]
    # a published file's model options (pooling, attention_heads, strides: what the registry lists for
    # its model) go to the import, checked there; the other keys stay recipe keys
    options, named = split_published_args(args.teacher, args.model, named, set(Config.__dataclass_fields__))
    args.overrides = [f"{k}={v}" for k, v in named.items()]
    teacher = (
        teacher_run_for(args.teacher, args.dataset, args.labels, args.model, front_end, options=options)
        if args.teacher
        else latest_run(args.dataset)
    )
    out = args.out or str(store_path(args.dataset, store_name(teacher, args.dataset)))
    config = resolve_config(args)  # ARGS="mixup=0.5 freqm=24 seed=1" set the views' augmentation
    augment = AugmentSettings.from_config(config) if set(named) & AUGMENT_KEYS else None
    # ARGS="batch_size=256": inputs per teacher forward here (default 16 on a CPU, 256 on a GPU)
    batch_size = int(named["batch_size"]) if "batch_size" in named else 0
    job = StageOneJob(
        dataset=args.dataset,
        teacher=teacher,
        out=out,
        views=args.views,
        view_seed=config.seed,
        augment=augment,
        scheduler=args.scheduler,
        workers=args.workers,
        topk=args.topk,
        dtype=args.dtype,
        overwrite=args.overwrite,
        vocab_remap=config.vocab_remap,
        batch_size=batch_size,
        cluster=cluster_resources(args),
        changed_audio=args.changed_audio,
    )
    summary = run_stage_one(job)
    write_latest_store(args.dataset, out)
    print(
        f"{out}: {summary['clips']} clips ({summary['computed_clips']} computed now), "
        f"{summary['failures']} failures, {summary['seconds']:.1f} s, engine {summary['engine']}"
    )
    if summary["cross_fitted"]:
        oof = summary["out_of_fold"]
        print(
            f"cross-fitted store: {summary['teachers']} teachers; each training clip labelled by the teacher "
            f"that held it out (out-of-fold mAP {oof.get('map', float('nan')):.4f}, "
            f"accuracy {oof.get('accuracy', float('nan')):.4f}); other clips by their mean"
        )
    return 0


if __name__ == "__main__":
    run_main(main)
