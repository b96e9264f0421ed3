"""`make student`: train a student from audio plus a teacher's cached logits (CMKD stage two)."""

import sys

from pipeline.distill import choose_kd_source, train_student

from .common import base_parser, resolve_config


def main(argv=None) -> int:
    parser = base_parser(__doc__)
    for name in ("model", "logits", "teacher", "kd", "kd-loss", "tau", "missing"):
        parser.add_argument(f"--{name}", default=None)
    # torchrun reads a bare --run as an abbreviation of its own --run-path; --run-name passes through
    parser.add_argument("--run", "--run-name", dest="run", default=None, help="run name")
    parser.add_argument("--lambda", dest="kd_lambda", default=None, help="weight of the task loss")
    parser.add_argument("--fold", type=int, default=None)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)
    kd, logits = choose_kd_source(args.logits, args.kd, args.dataset)
    config = resolve_config(args, model=args.model, fold=args.fold, kd=kd, kd_loss=args.kd_loss,
                            kd_lambda=args.kd_lambda, tau=args.tau, missing=args.missing,
                            logits=logits, teacher=args.teacher)
    run = args.run or (f"{config.model}-kd-{config.kd}" if config.kd != "none" else config.model)

    print(f"student {config.model}: KD={config.kd}" + (f" from {config.logits}" if config.logits else ""))
    summary = train_student(args.dataset, config, run, fold=args.fold, resume=args.resume)
    if not summary:
        return 0  # a rank other than 0 under torchrun: rank 0 reports
    print(f"{run} on {args.dataset}: eval mAP {summary['map']:.4f}  accuracy {summary['accuracy']:.4f}"
          f"  -> runs/{args.dataset}/{run}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
