"""`make teacher`: supervised training of a model that later becomes a teacher (or a baseline)."""

from pipeline.paths import run_dir
from pipeline.training import run_training

from .common import base_parser, resolve_config, run_main


def main(argv=None) -> int:
    parser = base_parser(__doc__)
    parser.add_argument("--model", default=None, help="registry name (see pipeline.models.list_models())")
    # torchrun reads a bare --run as an abbreviation of its own --run-path; --run-name passes through
    parser.add_argument("--run", "--run-name", dest="run", default=None, help="run name (default: the model name)")
    parser.add_argument("--fold", type=int, default=None, help="ESC-50 layout: evaluate on this fold")
    parser.add_argument("--crossfit", type=int, default=0, help="train k cross-fitted teachers")
    parser.add_argument("--resume", action="store_true", help="continue a killed run from its last checkpoint")
    parser.add_argument(
        "--init",
        default=None,
        help="start from a checkpoint: a published AST/PSLA file (e.g. audioset_10_10_0.4593.pth) or ours",
    )
    args = parser.parse_args(argv)
    config = resolve_config(args, role="teacher", model=args.model, fold=args.fold, init=args.init)
    run = args.run or config.model
    if args.crossfit:
        from pipeline.training.crossfit import run_crossfit

        summary = run_crossfit(args.dataset, config, run, k=args.crossfit, fold=args.fold, resume=args.resume)
    else:
        summary = run_training(args.dataset, config, run, fold=args.fold, resume=args.resume)
    if not summary:
        return 0  # a rank other than 0 under torchrun: rank 0 reports
    print(
        f"{run} on {args.dataset}: eval mAP {summary['map']:.4f}  mAUC {summary['mauc']:.4f}  "
        f"d' {summary['dprime']:.3f}  accuracy {summary['accuracy']:.4f}  -> {run_dir(args.dataset, run)}/"
    )
    return 0


if __name__ == "__main__":
    run_main(main)
